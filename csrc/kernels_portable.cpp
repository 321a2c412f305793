// The "portable" variant: plain C++ for any CPU (SWAR popcount on x86 without popcnt).
#include "columns.hpp"
#include "native.hpp"

namespace spikenas {
namespace {

struct PortablePopcount {
  static SPIKENAS_ALWAYS_INLINE uint64_t count(uint64_t x) {
#ifdef SPIKENAS_X86
    return popcount_swar(x);  // __builtin_popcountll would call libgcc's table lookup here
#else
    return static_cast<uint64_t>(__builtin_popcountll(x));
#endif
  }
};

void hamming_block(const uint64_t* rows, size_t stride, size_t words, int i0, int i1, int j0, int j1,
                   uint32_t* out, int ldo) {
  hamming_block_scalar<PortablePopcount>(rows, stride, words, i0, i1, j0, j1, out, ldo);
}

void expand_columns(const uint64_t* rows, size_t stride, int b, size_t words, uint64_t* e, size_t lw) {
  expand_columns_generic(rows, stride, b, words, e, lw);
}

void accumulate_columns(const uint64_t* e, size_t lw, const uint64_t* x, size_t words, int i0, int i1, int k, int run,
                        int runs, uint64_t* state) {
  ColumnCounter<PortableOps>::accumulate_any(e, lw, x, words, i0, i1, k, run, runs, state);
}

void read_columns(const uint64_t* state, uint32_t* counts) {
  ColumnCounter<PortableOps>::read(state, counts);
}

uint64_t popcount_words(const uint64_t* words, size_t count) {
  uint64_t total = 0;
  for (size_t w = 0; w < count; ++w) total += PortablePopcount::count(words[w]);
  return total;
}

void pack_words(const void* src, int elem_bytes, uint64_t mask, size_t nwords, uint64_t* dst) {
  pack_words_scalar(src, elem_bytes, mask, nwords, dst);
}

void gemm_sub(double* c, const double* l, const double* u, size_t ld, int m, int nn, int k) {
  gemm_sub_scalar(c, l, u, ld, m, nn, k);
}

int lu_panel(double* p, int m, int kb, int* piv, double* diag) { return lu_panel_generic(p, m, kb, piv, diag); }

void trsm_lower(const double* l, double* u, size_t ld, int kb, int nn) { trsm_lower_generic(l, u, ld, kb, nn); }

}  // namespace

const Kernels kPortableKernels = {"portable",     hamming_block, expand_columns, accumulate_columns, read_columns,
                                  kIdentitySlots, 1.18, 6.6, 32.0, popcount_words, pack_words,
                                  gemm_sub,       lu_panel,      trsm_lower};

}  // namespace spikenas
