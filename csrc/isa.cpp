// Run-time choice of the instruction-set variant: the best one this CPU supports, until
// select_kernels picks another (module.cpp does so for $SPIKENAS_NATIVE_ISA).
#include <cstring>

#include "native.hpp"

namespace spikenas {
namespace {

struct Registry {
  const Kernels* supported[4];
  int count = 0;
  const Kernels* active = nullptr;

  Registry() {
    supported[count++] = &kPortableKernels;
#ifdef SPIKENAS_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("popcnt")) {
      supported[count++] = &kPopcntKernels;
      if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi")) {
        supported[count++] = &kAvx2Kernels;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq"))
          supported[count++] = &kAvx512Kernels;
      }
    }
#endif
    active = supported[count - 1];
  }

  bool select(const char* name) {
    for (int k = 0; k < count; ++k) {
      if (std::strcmp(supported[k]->name, name) == 0) {
        active = supported[k];
        return true;
      }
    }
    return false;
  }
};

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

const Kernels& active_kernels() { return *registry().active; }

const Kernels* const* supported_kernels(int* count) {
  *count = registry().count;
  return registry().supported;
}

bool select_kernels(const char* name) { return registry().select(name); }

}  // namespace spikenas
