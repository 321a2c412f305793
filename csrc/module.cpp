// pybind11 bindings of spikenas._native. Data crosses as NumPy buffers (zero-copy views of torch CPU
// tensors, made by kernels/_cpp.py), so this extension never includes torch headers; outputs are
// preallocated by the caller. Long calls release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "native.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using namespace spikenas;

namespace {

// Bumped whenever a signature below changes; kernels/_cpp.py refuses a stale build.
constexpr int kAbiVersion = 2;

// Pointer to a C-contiguous array of `expected` items of `itemsize` bytes; ValueError naming `name`.
void* buffer(py::array& a, const char* name, py::ssize_t itemsize, int64_t expected, bool writable) {
  const std::string n(name);
  if (!(a.flags() & py::array::c_style)) throw py::value_error(n + " must be C-contiguous");
  if (a.itemsize() != itemsize)
    throw py::value_error(n + " must have " + std::to_string(itemsize) + "-byte items, got " +
                          std::to_string(a.itemsize()));
  if (a.size() != expected)
    throw py::value_error(n + " must have " + std::to_string(expected) + " items, got " + std::to_string(a.size()));
  if (!writable) return const_cast<void*>(a.data());
  if (!a.writeable()) throw py::value_error(n + " must be writeable");
  return a.mutable_data();
}

int thread_count(int threads) {
  if (threads > 0) return threads;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

KernelKind parse_kind(const std::string& kind) {
  if (kind == "sahd") return KernelKind::sahd;
  if (kind == "sahd_rate") return KernelKind::sahd_rate;
  if (kind == "hamming") return KernelKind::hamming;
  throw py::value_error("kind must be one of 'sahd', 'sahd_rate', 'hamming', got '" + kind + "'");
}

void check_positive(int64_t value, const char* name) {
  if (value < 0) throw py::value_error(std::string(name) + " must be >= 0");
}

int spike_bytes(py::array& src) {
  const py::ssize_t bytes = src.itemsize();
  if (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8)
    throw py::value_error("spikes must have 1-, 2-, 4- or 8-byte items, got " + std::to_string(bytes));
  return static_cast<int>(bytes);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "Bit-packed spike kernels (popcount Hamming Gram, packing, batched LU log-det).";
  m.attr("ABI_VERSION") = kAbiVersion;
  m.attr("SINGULAR_FACTOR") = singular_factor();

  const char* forced = std::getenv("SPIKENAS_NATIVE_ISA");
  if (forced != nullptr && *forced != '\0' && !select_kernels(forced))
    throw py::import_error(std::string("SPIKENAS_NATIVE_ISA=") + forced +
                           " is not a variant this CPU supports; unset it or use one of supported_impls()");

  m.def(
      "popcount_impl", [] { return std::string(active_kernels().name); },
      "Name of the instruction-set variant in use: 'portable', 'popcnt', 'avx2' or 'avx512'.");
  m.def(
      "supported_impls",
      [] {
        int count = 0;
        const Kernels* const* all = supported_kernels(&count);
        py::list names;
        for (int k = 0; k < count; ++k) names.append(all[k]->name);
        return names;
      },
      "Variants this CPU can run, worst first.");
  m.def(
      "set_impl",
      [](const std::string& name) {
        if (!select_kernels(name.c_str()))
          throw py::value_error("impl '" + name + "' is unknown or unsupported on this CPU");
      },
      py::arg("name"), "Use another supported variant (for tests and comparisons).");
  m.def(
      "set_gram_path",
      [](const std::string& path) {
        if (path == "auto")
          set_gram_path(GramPath::automatic);
        else if (path == "dense")
          set_gram_path(GramPath::dense);
        else if (path == "sparse")
          set_gram_path(GramPath::sparse);
        else
          throw py::value_error("gram path must be one of 'auto', 'dense', 'sparse', got '" + path + "'");
      },
      py::arg("path"),
      "How Hamming counts are computed: 'auto' (the cost model picks per layer call), or always "
      "'dense' (XOR popcounts of row pairs) or 'sparse' (column sums at the set bits). For tests and benchmarks.");
  m.def(
      "gram_path",
      [] {
        switch (gram_path()) {
          case GramPath::dense: return std::string("dense");
          case GramPath::sparse: return std::string("sparse");
          default: return std::string("auto");
        }
      },
      "The path set by set_gram_path ('auto' unless changed).");
  m.def(
      "preferred_gram_path",
      [](py::array packed, int b, int64_t words) {
        if (b < 1 || words < 1) throw py::value_error("need b >= 1 and words >= 1");
        const auto* p = static_cast<const uint64_t*>(buffer(packed, "packed", 8, b * words, false));
        return std::string(auto_gram_path(p, b, static_cast<size_t>(words)) == GramPath::sparse ? "sparse" : "dense");
      },
      py::arg("packed"), py::arg("b"), py::arg("words"),
      "The path the cost model picks for one layer call, packed [b, words] (the active variant's constants).");
  m.def(
      "openmp_threads", [] { return thread_count(0); }, "OpenMP's default thread count (1 without OpenMP).");

  m.def(
      "pack_bits",
      [](py::array src, int64_t rows, int64_t n, uint64_t mask, py::array out, int threads) {
        check_positive(rows, "rows");
        if (n < 1) throw py::value_error("n must be >= 1");
        const int bytes = spike_bytes(src);
        const void* s = buffer(src, "spikes", bytes, rows * n, false);
        auto* o = static_cast<uint64_t*>(buffer(out, "out", 8, rows * ((n + 63) / 64), true));
        py::gil_scoped_release release;
        pack_rows(s, bytes, mask, rows, n, o, thread_count(threads));
      },
      py::arg("spikes"), py::arg("rows"), py::arg("n"), py::arg("mask"), py::arg("out"), py::arg("threads") = 0,
      "Packs [rows, n] elements (nonzero after & mask) into out [rows, ceil(n/64)] 64-bit words.");

  m.def(
      "hamming_gram",
      [](py::array packed, int64_t items, int b, int64_t words, py::array out, int threads) {
        check_positive(items, "items");
        if (b < 1 || words < 0) throw py::value_error("need b >= 1 and words >= 0");
        if (words * 64 > INT32_MAX) throw py::value_error("rows longer than 2**31 bits overflow int32 distances");
        const auto* p = static_cast<const uint64_t*>(buffer(packed, "packed", 8, items * b * words, false));
        auto* o = static_cast<int32_t*>(buffer(out, "out", 4, items * b * b, true));
        py::gil_scoped_release release;
        hamming_gram(p, items, b, static_cast<size_t>(words), o, thread_count(threads));
      },
      py::arg("packed"), py::arg("items"), py::arg("b"), py::arg("words"), py::arg("out"), py::arg("threads") = 0,
      "Hamming distances: packed [items, b, words] -> out int32 [items, b, b].");

  m.def(
      "spike_gram",
      [](py::array packed, int64_t items, int64_t groups, int b, int64_t words, int64_t n, const std::string& kind,
         double alpha, double eps, py::array out, int threads) {
        check_positive(items, "items");
        check_positive(groups, "groups");
        if (b < 1 || words < 1 || n < 1 || n > 64 * words)
          throw py::value_error("need b, words, n >= 1, n <= 64 words");
        const KernelKind k = parse_kind(kind);
        const auto* p = static_cast<const uint64_t*>(buffer(packed, "packed", 8, items * groups * b * words, false));
        auto* o = static_cast<double*>(buffer(out, "out", 8, items * b * b, true));
        py::gil_scoped_release release;
        spike_gram(p, items, groups, b, static_cast<size_t>(words), n, k, alpha, eps, o, thread_count(threads));
      },
      py::arg("packed"), py::arg("items"), py::arg("groups"), py::arg("b"), py::arg("words"), py::arg("n"),
      py::arg("kind"), py::arg("alpha"), py::arg("eps"), py::arg("out"), py::arg("threads") = 0,
      "Kernel matrix summed over groups: packed [items, groups, b, words] -> out float64 [items, b, b].");

  m.def(
      "spike_gram_dense",
      [](py::array src, uint64_t mask, int64_t items, int64_t groups, int b, int64_t n, const std::string& kind,
         double alpha, double eps, py::array out, int threads) {
        check_positive(items, "items");
        check_positive(groups, "groups");
        if (b < 1 || n < 1) throw py::value_error("need b >= 1 and n >= 1");
        const KernelKind k = parse_kind(kind);
        const int bytes = spike_bytes(src);
        const int64_t rows = items * groups * b;
        const void* s = buffer(src, "spikes", bytes, rows * n, false);
        auto* o = static_cast<double*>(buffer(out, "out", 8, items * b * b, true));
        const int64_t words = (n + 63) / 64;
        py::gil_scoped_release release;
        const int t = thread_count(threads);
        // The packed copy is 8 * elem_bytes times smaller than the spikes; no float copy is made.
        std::vector<uint64_t> packed(static_cast<size_t>(rows * words));
        pack_rows(s, bytes, mask, rows, n, packed.data(), t);
        spike_gram(packed.data(), items, groups, b, static_cast<size_t>(words), n, k, alpha, eps, o, t);
      },
      py::arg("spikes"), py::arg("mask"), py::arg("items"), py::arg("groups"), py::arg("b"), py::arg("n"),
      py::arg("kind"), py::arg("alpha"), py::arg("eps"), py::arg("out"), py::arg("threads") = 0,
      "spike_gram from unpacked spikes [items, groups, b, n] (nonzero after & mask), packed on the fly.");

  m.def(
      "slogdet",
      [](py::array matrices, int64_t count, int n, py::array sign, py::array logabs, int threads) {
        check_positive(count, "count");
        if (n < 1) throw py::value_error("n must be >= 1");
        if (matrices.dtype().kind() != 'f' || (matrices.itemsize() != 4 && matrices.itemsize() != 8))
          throw py::value_error("matrices must be float32 or float64");
        const bool single = matrices.itemsize() == 4;
        const void* a = buffer(matrices, "matrices", matrices.itemsize(), count * n * n, false);
        auto* s = static_cast<double*>(buffer(sign, "sign", 8, count, true));
        auto* l = static_cast<double*>(buffer(logabs, "logabs", 8, count, true));
        py::gil_scoped_release release;
        slogdet(a, single, count, n, s, l, thread_count(threads));
      },
      py::arg("matrices"), py::arg("count"), py::arg("n"), py::arg("sign"), py::arg("logabs"),
      py::arg("threads") = 0,
      "Sign and log|det| of [count, n, n] matrices by LU with partial pivoting; numerically singular "
      "(a pivot <= SINGULAR_FACTOR * n * eps * max|U|) gives sign 0 and -inf.");
}
