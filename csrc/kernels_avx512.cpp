// The x86-64 variant "avx512": VPOPCNTQ (AVX512_VPOPCNTDQ) popcounts of 512-bit vectors for the
// dense Hamming tiles and the row counts. Everything else is the avx2 variant's: packing is bound by
// memory bandwidth (AVX512BW mask compares measured no faster), the sparse path adds 256-bit columns
// and the LU helpers are small. Every function carries its own target attribute, so this file
// builds with the baseline flags; isa.cpp registers the variant only where the CPU reports
// AVX512F, AVX512BW, AVX512VL and AVX512_VPOPCNTDQ.
#include "native.hpp"

#ifdef SPIKENAS_X86
#include <immintrin.h>

#define SPIKENAS_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,popcnt")))

namespace spikenas {
namespace {

// Rows of the register tile of hamming_block_avx512: kTileI x kTileJ row pairs share the loads of
// kTileI + kTileJ row vectors (4 x 4: 16 accumulators and 8 operands of the 32 zmm registers).
constexpr int kTileI = 4;
constexpr int kTileJ = 4;

// Words per chunk of a row pair: 4 KiB per row segment, so a macro tile's 64 row segments
// (gram.cpp's 32-row tiles) stay in L2 and the kTileI rows of one pass stay in L1.
constexpr size_t kAvx512ChunkWords = 2 * kChunkWords;

// Sum of the 8 lanes. Zero-masked extracts: GCC 12's _mm512_reduce_add_epi64 and _mm512_castsi512_si256
// fill an undefined vector that draws -Wmaybe-uninitialized.
SPIKENAS_AVX512 SPIKENAS_ALWAYS_INLINE uint64_t sum_lanes(__m512i v) {
  const __m256i half =
      _mm256_add_epi64(_mm512_maskz_extracti64x4_epi64(0xF, v, 0), _mm512_maskz_extracti64x4_epi64(0xF, v, 1));
  const __m128i quarter = _mm_add_epi64(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(quarter)) + static_cast<uint64_t>(_mm_extract_epi64(quarter, 1));
}

// counts[r][c] = sum_{w < n} popcount(a[r][w] ^ b[c][w]): 8 words per vector, the last n % 8 by a
// masked load (zero past the end, which XORs to zero).
template <int RI, int RJ>
SPIKENAS_AVX512 SPIKENAS_ALWAYS_INLINE void xor_popcount_tile(const uint64_t* const a[RI],
                                                              const uint64_t* const b[RJ], size_t n,
                                                              uint64_t counts[RI][RJ]) {
  __m512i acc[RI][RJ];
  for (int r = 0; r < RI; ++r)
    for (int c = 0; c < RJ; ++c) acc[r][c] = _mm512_setzero_si512();
  size_t w = 0;
  for (; w + 8 <= n; w += 8) {
    __m512i x[RI], y[RJ];
    for (int r = 0; r < RI; ++r) x[r] = _mm512_loadu_si512(a[r] + w);
    for (int c = 0; c < RJ; ++c) y[c] = _mm512_loadu_si512(b[c] + w);
    for (int r = 0; r < RI; ++r)
      for (int c = 0; c < RJ; ++c)
        acc[r][c] = _mm512_add_epi64(acc[r][c], _mm512_popcnt_epi64(_mm512_xor_si512(x[r], y[c])));
  }
  if (w < n) {
    const __mmask8 tail = static_cast<__mmask8>((1u << (n - w)) - 1);
    __m512i x[RI], y[RJ];
    for (int r = 0; r < RI; ++r) x[r] = _mm512_maskz_loadu_epi64(tail, a[r] + w);
    for (int c = 0; c < RJ; ++c) y[c] = _mm512_maskz_loadu_epi64(tail, b[c] + w);
    for (int r = 0; r < RI; ++r)
      for (int c = 0; c < RJ; ++c)
        acc[r][c] = _mm512_add_epi64(acc[r][c], _mm512_popcnt_epi64(_mm512_xor_si512(x[r], y[c])));
  }
  for (int r = 0; r < RI; ++r)
    for (int c = 0; c < RJ; ++c) counts[r][c] = sum_lanes(acc[r][c]);
}

// kTileI x kTileJ row pairs per pass over a chunk; at the edges of the block the last row stands in
// for the missing ones and their counts are dropped.
SPIKENAS_AVX512 void hamming_block_avx512(const uint64_t* rows, size_t stride, size_t words, int i0, int i1, int j0,
                                          int j1, uint32_t* out, int ldo) {
  for (int i = i0; i < i1; ++i)
    for (int j = j0; j < j1; ++j) out[static_cast<size_t>(i - i0) * ldo + (j - j0)] = 0;
  for (size_t w0 = 0; w0 < words; w0 += kAvx512ChunkWords) {
    const size_t kc = words - w0 < kAvx512ChunkWords ? words - w0 : kAvx512ChunkWords;
    for (int i = i0; i < i1; i += kTileI) {
      const int ni = i1 - i < kTileI ? i1 - i : kTileI;
      const uint64_t* a[kTileI];
      for (int r = 0; r < kTileI; ++r) a[r] = rows + static_cast<size_t>(i + (r < ni ? r : ni - 1)) * stride + w0;
      for (int j = j0 > i ? j0 : i; j < j1; j += kTileJ) {
        const int nj = j1 - j < kTileJ ? j1 - j : kTileJ;
        const uint64_t* b[kTileJ];
        for (int c = 0; c < kTileJ; ++c) b[c] = rows + static_cast<size_t>(j + (c < nj ? c : nj - 1)) * stride + w0;
        uint64_t counts[kTileI][kTileJ];
        xor_popcount_tile<kTileI, kTileJ>(a, b, kc, counts);
        for (int r = 0; r < ni; ++r) {
          uint32_t* o = out + static_cast<size_t>(i - i0 + r) * ldo + (j - j0);
          for (int c = 0; c < nj; ++c) o[c] += static_cast<uint32_t>(counts[r][c]);
        }
      }
    }
  }
}

SPIKENAS_AVX512 uint64_t popcount_words_avx512(const uint64_t* words, size_t count) {
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  size_t w = 0;
  for (; w + 32 <= count; w += 32)
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm512_add_epi64(acc[k], _mm512_popcnt_epi64(_mm512_loadu_si512(words + w + 8 * k)));
  for (; w + 8 <= count; w += 8)
    acc[0] = _mm512_add_epi64(acc[0], _mm512_popcnt_epi64(_mm512_loadu_si512(words + w)));
  if (w < count) {
    const __mmask8 tail = static_cast<__mmask8>((1u << (count - w)) - 1);
    acc[1] = _mm512_add_epi64(acc[1], _mm512_popcnt_epi64(_mm512_maskz_loadu_epi64(tail, words + w)));
  }
  const __m512i sum = _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]));
  return sum_lanes(sum);
}

// The avx2 variant's function pointers and slots, read from its constant-initialized table (so
// this table, initialized at load time, can copy them in any initialization order).
Kernels make_avx512_kernels() {
  Kernels k = kAvx2Kernels;
  k.name = "avx512";
  k.hamming_block = hamming_block_avx512;
  k.popcount_words = popcount_words_avx512;
  // Measured by bench/calibrate_gram.py on one core of an Intel Xeon (family 6, model 207); the
  // sparse path's constants are those of the avx2 functions measured on the same core.
  k.dense_ns_per_word_pair = 0.085;
  k.sparse_ns_per_column = 0.99;
  k.expand_ns_per_row_word = 8.6;
  return k;
}

}  // namespace

const Kernels kAvx512Kernels = make_avx512_kernels();

}  // namespace spikenas

#endif  // SPIKENAS_X86
