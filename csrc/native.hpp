// Shared declarations of the spikenas._native extension.
//
// The hot loops exist once per instruction set ("portable", "popcnt", "avx2", "avx512"); isa.cpp
// picks the best one the running CPU supports when the module is imported, so an extension built
// for the x86-64 baseline still uses the hardware popcount, AVX2 and AVX-512 where the CPU has them.
// The drivers (gram.cpp, pack.cpp, logdet.cpp) hold the OpenMP loops and call the variant's hot loops.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#if defined(__x86_64__) || defined(_M_X64)
#define SPIKENAS_X86 1
#endif

#define SPIKENAS_ALWAYS_INLINE __attribute__((always_inline)) inline

namespace spikenas {

// One instruction-set variant of every hot loop.
struct Kernels {
  const char* name;

  // out[(i - i0) * ldo + (j - j0)] = sum_{w < words} popcount(rows[i][w] ^ rows[j][w]) for
  // i0 <= i < i1, j0 <= j < j1 and j >= i (0 on the diagonal); entries with j < i are unspecified.
  // rows: row r starts at rows + r * stride.
  // Either j0 >= i1 (a block above the diagonal) or (i0, i1) == (j0, j1) (a diagonal block).
  void (*hamming_block)(const uint64_t* rows, size_t stride, size_t words, int i0, int i1, int j0, int j1,
                        uint32_t* out, int ldo);

  // The sparse path (gram.cpp, columns.hpp): the rows' bits as columns, then per row a bit-sliced
  // count of the columns at its set bits, so the cost follows the spikes, not B * B / 2 word pairs.
  //
  // expand_columns: writes the kColumnsPerWord * words columns of a chunk of `words` words of rows
  // r < b (row r starts at rows + r * stride) to e, lw uint64 words each (see columns.hpp).
  void (*expand_columns)(const uint64_t* rows, size_t stride, int b, size_t words, uint64_t* e, size_t lw);
  // Adds, for rows i0 <= i < i1, the columns at the set bits of x[i * words + w] (w < words),
  // restricted to the 256 slots of `run`, to the state of (i, run) at
  // state + (i * runs + run) * kStateWords; k (2, 4, 8 or 16) columns per word are loaded
  // whatever the bits, see columns_per_word.
  void (*accumulate_columns)(const uint64_t* e, size_t lw, const uint64_t* x, size_t words, int i0, int i1, int k,
                             int run, int runs, uint64_t* state);
  // counts[s] = the column sum of slot s (< 256) in one (row, run) state.
  void (*read_columns)(const uint64_t* state, uint32_t* counts);
  // Slot of row r within its group of 32 (a permutation of 0..31).
  const uint8_t* slots;

  // Cost model of the two paths, in nanoseconds on one core (measured: bench/calibrate_gram.py).
  double dense_ns_per_word_pair;  // hamming_block, per (row pair, word)
  double sparse_ns_per_column;    // accumulate_columns, per (set bit, run of 256 slots)
  double expand_ns_per_row_word;  // expand_columns, per (row, word)

  // Number of set bits in words[0..count).
  uint64_t (*popcount_words)(const uint64_t* words, size_t count);

  // Packs 64 * nwords elements of elem_bytes (1, 2, 4 or 8) bytes each: bit k of dst[w] is set iff
  // (element 64 w + k) & mask != 0.
  void (*pack_words)(const void* src, int elem_bytes, uint64_t mask, size_t nwords, uint64_t* dst);

  // c[i][j] -= sum_{kk < k} l[i][kk] * u[kk][j] for i < m, j < nn; row-major, leading dimension ld.
  void (*gemm_sub)(double* c, const double* l, const double* u, size_t ld, int m, int nn, int k);

  // LU with partial pivoting of a column-major m x kb panel p (kb <= m, leading dimension m):
  // row k is swapped with row piv[k] >= k, the pivots u_kk go to diag[k]; returns the swap count.
  int (*lu_panel)(double* p, int m, int kb, int* piv, double* diag);

  // u[k][j] -= sum_{kk < k} l[k][kk] u[kk][j] for k < kb, j < nn: solves with the unit lower
  // triangle of the kb x kb block l (row-major, leading dimension ld) in place.
  void (*trsm_lower)(const double* l, double* u, size_t ld, int kb, int nn);
};

// The variant in use.
const Kernels& active_kernels();
// Every variant this CPU can run, worst first; *count receives their number.
const Kernels* const* supported_kernels(int* count);
// Selects a supported variant by name; false if the name is unknown or this CPU cannot run it.
bool select_kernels(const char* name);

// The variants, defined in kernels_portable.cpp, kernels_x86.cpp and kernels_avx512.cpp.
extern const Kernels kPortableKernels;
#ifdef SPIKENAS_X86
extern const Kernels kPopcntKernels;
extern const Kernels kAvx2Kernels;
extern const Kernels kAvx512Kernels;  // needs AVX512F, AVX512BW, AVX512VL and AVX512_VPOPCNTDQ
#endif

// Packs the first `count` (<= 64) elements of src into one word, bit k for element k.
template <class T>
inline uint64_t pack_partial_word(const T* src, T mask, size_t count) {
  uint64_t word = 0;
  for (size_t k = 0; k < count; ++k) word |= static_cast<uint64_t>((src[k] & mask) != 0) << k;
  return word;
}

// Popcount without the popcnt instruction (exact for every 64-bit value).
SPIKENAS_ALWAYS_INLINE uint64_t popcount_swar(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return (x * 0x0101010101010101ULL) >> 56;
}

// Words of one chunk of a row pair in hamming_block: 2 KiB per row segment, so the segments of a
// 32-row macro tile (see gram.cpp) stay in L2.
constexpr size_t kChunkWords = 256;

// hamming_block for scalar popcounts: 2 x 2 row pairs per pass over a chunk of words.
// Pop::count(uint64_t) is the popcount; instantiated inside each variant's target function.
template <class Pop>
SPIKENAS_ALWAYS_INLINE void hamming_block_scalar(const uint64_t* rows, size_t stride, size_t words, int i0,
                                                 int i1, int j0, int j1, uint32_t* out, int ldo) {
  for (int i = i0; i < i1; ++i)
    for (int j = j0; j < j1; ++j) out[static_cast<size_t>(i - i0) * ldo + (j - j0)] = 0;
  for (size_t w0 = 0; w0 < words; w0 += kChunkWords) {
    const size_t kc = words - w0 < kChunkWords ? words - w0 : kChunkWords;
    for (int i = i0; i < i1; i += 2) {
      const bool two_i = i + 1 < i1;
      const uint64_t* a0 = rows + static_cast<size_t>(i) * stride + w0;
      const uint64_t* a1 = two_i ? a0 + stride : a0;
      for (int j = j0 > i ? j0 : i; j < j1; j += 2) {
        const bool two_j = j + 1 < j1;
        const uint64_t* b0 = rows + static_cast<size_t>(j) * stride + w0;
        const uint64_t* b1 = two_j ? b0 + stride : b0;
        uint64_t c00 = 0, c01 = 0, c10 = 0, c11 = 0;
        for (size_t w = 0; w < kc; ++w) {
          const uint64_t x0 = a0[w], x1 = a1[w], y0 = b0[w], y1 = b1[w];
          c00 += Pop::count(x0 ^ y0);
          c01 += Pop::count(x0 ^ y1);
          c10 += Pop::count(x1 ^ y0);
          c11 += Pop::count(x1 ^ y1);
        }
        uint32_t* o = out + static_cast<size_t>(i - i0) * ldo + (j - j0);
        o[0] += static_cast<uint32_t>(c00);
        if (two_j) o[1] += static_cast<uint32_t>(c01);
        if (two_i) {
          o[ldo] += static_cast<uint32_t>(c10);
          if (two_j) o[ldo + 1] += static_cast<uint32_t>(c11);
        }
      }
    }
  }
}

// Slots in row order, for the variants whose expand_columns keeps it.
inline constexpr uint8_t kIdentitySlots[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                               16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

// Eight bytes -> eight bits (bit k set iff byte k & mask8 != 0), branch-free.
SPIKENAS_ALWAYS_INLINE uint64_t pack_byte_octet(const uint8_t* src, uint64_t mask8) {
  uint64_t x = 0;
  for (int k = 0; k < 8; ++k) x |= static_cast<uint64_t>(src[k]) << (8 * k);
  x &= mask8;
  // High bit of each byte := byte nonzero; the sum cannot carry across bytes.
  x = (((x & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | x) & 0x8080808080808080ULL;
  // Gathers the eight high bits, byte k -> bit 56 + k, into the top byte.
  return ((x >> 7) * 0x0102040810204080ULL) >> 56;
}

// pack_words without vector instructions.
SPIKENAS_ALWAYS_INLINE void pack_words_scalar(const void* src, int elem_bytes, uint64_t mask,
                                              size_t nwords, uint64_t* dst) {
  switch (elem_bytes) {
    case 1: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      const uint64_t mask8 = (mask & 0xFF) * 0x0101010101010101ULL;
      for (size_t w = 0; w < nwords; ++w, s += 64) {
        uint64_t word = 0;
        for (int o = 0; o < 8; ++o) word |= pack_byte_octet(s + 8 * o, mask8) << (8 * o);
        dst[w] = word;
      }
      break;
    }
    case 2: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (size_t w = 0; w < nwords; ++w) dst[w] = pack_partial_word<uint16_t>(s + 64 * w, uint16_t(mask), 64);
      break;
    }
    case 4: {
      const uint32_t* s = static_cast<const uint32_t*>(src);
      for (size_t w = 0; w < nwords; ++w) dst[w] = pack_partial_word<uint32_t>(s + 64 * w, uint32_t(mask), 64);
      break;
    }
    default: {
      const uint64_t* s = static_cast<const uint64_t*>(src);
      for (size_t w = 0; w < nwords; ++w) dst[w] = pack_partial_word<uint64_t>(s + 64 * w, mask, 64);
      break;
    }
  }
}

// gemm_sub without FMA: c -= l u, row by row (the j loop vectorises with the baseline SSE2).
SPIKENAS_ALWAYS_INLINE void gemm_sub_scalar(double* c, const double* l, const double* u, size_t ld,
                                            int m, int nn, int k) {
  for (int i = 0; i < m; ++i) {
    double* crow = c + static_cast<size_t>(i) * ld;
    const double* lrow = l + static_cast<size_t>(i) * ld;
    for (int kk = 0; kk < k; ++kk) {
      const double lv = lrow[kk];
      const double* urow = u + static_cast<size_t>(kk) * ld;
      for (int j = 0; j < nn; ++j) crow[j] -= lv * urow[j];
    }
  }
}

// lu_panel in plain C++: pivot search, then the column updates, which vectorise along the column.
SPIKENAS_ALWAYS_INLINE int lu_panel_generic(double* p, int m, int kb, int* piv, double* diag) {
  int swaps = 0;
  for (int k = 0; k < kb; ++k) {
    double* col = p + static_cast<size_t>(k) * m;
    int best_row = k;
    double best = std::fabs(col[k]);
    for (int r = k + 1; r < m; ++r) {
      const double v = std::fabs(col[r]);
      if (v > best) {
        best = v;
        best_row = r;
      }
    }
    piv[k] = best_row;
    if (best_row != k) {
      for (int c = 0; c < kb; ++c) std::swap(p[static_cast<size_t>(c) * m + k], p[static_cast<size_t>(c) * m + best_row]);
      ++swaps;
    }
    const double pivot = col[k];
    diag[k] = pivot;
    if (pivot == 0.0) continue;  // the column is zero from row k down: nothing to eliminate
    for (int r = k + 1; r < m; ++r) col[r] /= pivot;
    for (int c = k + 1; c < kb; ++c) {
      double* pc = p + static_cast<size_t>(c) * m;
      const double u = pc[k];
      for (int r = k + 1; r < m; ++r) pc[r] -= u * col[r];
    }
  }
  return swaps;
}

// trsm_lower in plain C++ (the j loop vectorises).
SPIKENAS_ALWAYS_INLINE void trsm_lower_generic(const double* l, double* u, size_t ld, int kb, int nn) {
  for (int k = 0; k < kb; ++k) {
    const double* uk = u + static_cast<size_t>(k) * ld;
    for (int i = k + 1; i < kb; ++i) {
      const double lv = l[static_cast<size_t>(i) * ld + k];
      double* ui = u + static_cast<size_t>(i) * ld;
      for (int j = 0; j < nn; ++j) ui[j] -= lv * uk[j];
    }
  }
}

// Drivers (gram.cpp, pack.cpp, logdet.cpp). threads >= 1.
enum class KernelKind { hamming, sahd, sahd_rate };

// Which path computes Hamming counts: chosen by the cost model, or forced (tests, benchmarks).
enum class GramPath { automatic, dense, sparse };
void set_gram_path(GramPath path);
GramPath gram_path();
// What the cost model picks for one layer call of b rows of `words` words (dense or sparse).
GramPath auto_gram_path(const uint64_t* rows, int b, size_t words);

void pack_rows(const void* src, int elem_bytes, uint64_t mask, int64_t rows, int64_t n, uint64_t* dst,
               int threads);
void hamming_gram(const uint64_t* packed, int64_t items, int b, size_t words, int32_t* out, int threads);
void spike_gram(const uint64_t* packed, int64_t items, int64_t groups, int b, size_t words, int64_t n,
                KernelKind kind, double alpha, double eps, double* out, int threads);
void slogdet(const void* matrices, bool single_precision, int64_t count, int n, double* sign,
             double* logabs, int threads);
// The factor of slogdet's singularity tolerance (kernels.logdet.reference.SINGULAR_FACTOR).
double singular_factor();

}  // namespace spikenas
