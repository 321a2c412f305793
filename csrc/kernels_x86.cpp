// The x86-64 variants "popcnt" (hardware popcount) and "avx2" (AVX2 Harley-Seal popcount, AVX2
// packing, FMA matrix update). Each function carries its own target attribute, so this file builds
// with the baseline flags and only runs these instructions after isa.cpp has checked the CPU.
#include "columns.hpp"
#include "native.hpp"

#ifdef SPIKENAS_X86
#include <immintrin.h>

#define SPIKENAS_POPCNT __attribute__((target("popcnt")))
#define SPIKENAS_POPCNT_FLAT __attribute__((target("popcnt"), flatten))
#define SPIKENAS_AVX2 __attribute__((target("avx2,fma,popcnt,bmi")))

namespace spikenas {
namespace {

// Not always_inline: the generic template that calls it has no target of its own; the flatten
// attribute of the callers below inlines both into code built for popcnt.
struct HardwarePopcount {
  SPIKENAS_POPCNT static inline uint64_t count(uint64_t x) {
    return static_cast<uint64_t>(__builtin_popcountll(x));
  }
};

// ---- popcnt -------------------------------------------------------------------------------------

SPIKENAS_POPCNT_FLAT void hamming_block_popcnt(const uint64_t* rows, size_t stride, size_t words, int i0, int i1,
                                               int j0, int j1, uint32_t* out, int ldo) {
  hamming_block_scalar<HardwarePopcount>(rows, stride, words, i0, i1, j0, j1, out, ldo);
}

SPIKENAS_POPCNT_FLAT void expand_columns_popcnt(const uint64_t* rows, size_t stride, int b, size_t words,
                                                uint64_t* e, size_t lw) {
  expand_columns_generic(rows, stride, b, words, e, lw);
}

SPIKENAS_POPCNT_FLAT void accumulate_columns_popcnt(const uint64_t* e, size_t lw, const uint64_t* x, size_t words,
                                                    int i0, int i1, int k, int run, int runs, uint64_t* state) {
  ColumnCounter<PortableOps>::accumulate_any(e, lw, x, words, i0, i1, k, run, runs, state);
}

SPIKENAS_POPCNT_FLAT void read_columns_popcnt(const uint64_t* state, uint32_t* counts) {
  ColumnCounter<PortableOps>::read(state, counts);
}

SPIKENAS_POPCNT_FLAT uint64_t popcount_words_popcnt(const uint64_t* words, size_t count) {
  uint64_t total = 0;
  for (size_t w = 0; w < count; ++w) total += HardwarePopcount::count(words[w]);
  return total;
}

void pack_words_portable(const void* src, int elem_bytes, uint64_t mask, size_t nwords, uint64_t* dst) {
  pack_words_scalar(src, elem_bytes, mask, nwords, dst);
}

void gemm_sub_portable(double* c, const double* l, const double* u, size_t ld, int m, int nn, int k) {
  gemm_sub_scalar(c, l, u, ld, m, nn, k);
}

// ---- avx2 ---------------------------------------------------------------------------------------

SPIKENAS_AVX2 SPIKENAS_ALWAYS_INLINE __m256i load(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Bytewise popcount (0..8 per byte) with the nibble lookup table.
SPIKENAS_AVX2 SPIKENAS_ALWAYS_INLINE __m256i popcount_bytes(__m256i v) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
}

// Popcount of each 64-bit lane.
SPIKENAS_AVX2 SPIKENAS_ALWAYS_INLINE __m256i popcount_lanes(__m256i v) {
  return _mm256_sad_epu8(popcount_bytes(v), _mm256_setzero_si256());
}

// Carry-save adder: (high, low) = a + b + c bitwise.
SPIKENAS_AVX2 SPIKENAS_ALWAYS_INLINE void csa(__m256i& high, __m256i& low, __m256i a, __m256i b,
                                              __m256i c) {
  const __m256i u = _mm256_xor_si256(a, b);
  high = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
  low = _mm256_xor_si256(u, c);
}

SPIKENAS_AVX2 SPIKENAS_ALWAYS_INLINE __m256i xor_at(const uint64_t* a, const uint64_t* b, size_t w) {
  return _mm256_xor_si256(load(a + w), load(b + w));
}

// sum_w popcount(a[w] ^ b[w]) for w < n: Harley-Seal carry-save tree over 16 vectors (64 words),
// then one vector at a time, then word by word (Mula, Kurz & Lemire, "Faster population counts
// using AVX2 instructions", 2018).
SPIKENAS_AVX2 SPIKENAS_ALWAYS_INLINE uint64_t xor_popcount_avx2(const uint64_t* a, const uint64_t* b,
                                                                size_t n) {
  __m256i total = _mm256_setzero_si256();
  __m256i ones = total, twos = total, fours = total, eights = total;
  __m256i twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteens;
  size_t w = 0;
  for (; w + 64 <= n; w += 64) {
    csa(twos_a, ones, ones, xor_at(a, b, w + 0), xor_at(a, b, w + 4));
    csa(twos_b, ones, ones, xor_at(a, b, w + 8), xor_at(a, b, w + 12));
    csa(fours_a, twos, twos, twos_a, twos_b);
    csa(twos_a, ones, ones, xor_at(a, b, w + 16), xor_at(a, b, w + 20));
    csa(twos_b, ones, ones, xor_at(a, b, w + 24), xor_at(a, b, w + 28));
    csa(fours_b, twos, twos, twos_a, twos_b);
    csa(eights_a, fours, fours, fours_a, fours_b);
    csa(twos_a, ones, ones, xor_at(a, b, w + 32), xor_at(a, b, w + 36));
    csa(twos_b, ones, ones, xor_at(a, b, w + 40), xor_at(a, b, w + 44));
    csa(fours_a, twos, twos, twos_a, twos_b);
    csa(twos_a, ones, ones, xor_at(a, b, w + 48), xor_at(a, b, w + 52));
    csa(twos_b, ones, ones, xor_at(a, b, w + 56), xor_at(a, b, w + 60));
    csa(fours_b, twos, twos, twos_a, twos_b);
    csa(eights_b, fours, fours, fours_a, fours_b);
    csa(sixteens, eights, eights, eights_a, eights_b);
    total = _mm256_add_epi64(total, popcount_lanes(sixteens));
  }
  // 8 c8 + 4 c4 + 2 c2 + c1 <= 120 per byte: weigh the bytewise counts before one horizontal sum
  // (the 16-bit shifts cannot carry across bytes, each count being <= 8).
  __m256i weighted = _mm256_slli_epi16(popcount_bytes(eights), 3);
  weighted = _mm256_add_epi8(weighted, _mm256_slli_epi16(popcount_bytes(fours), 2));
  weighted = _mm256_add_epi8(weighted, _mm256_slli_epi16(popcount_bytes(twos), 1));
  weighted = _mm256_add_epi8(weighted, popcount_bytes(ones));
  total = _mm256_add_epi64(_mm256_slli_epi64(total, 4), _mm256_sad_epu8(weighted, _mm256_setzero_si256()));
  for (; w + 4 <= n; w += 4) total = _mm256_add_epi64(total, popcount_lanes(xor_at(a, b, w)));
  const __m128i half = _mm_add_epi64(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
  uint64_t count = static_cast<uint64_t>(_mm_cvtsi128_si64(half)) +
                   static_cast<uint64_t>(_mm_extract_epi64(half, 1));
  for (; w < n; ++w) count += static_cast<uint64_t>(__builtin_popcountll(a[w] ^ b[w]));
  return count;
}

// Longer chunks than the scalar variant (8 KiB per row, 256 KiB for the 32 rows of a macro tile):
// the carry-save tree restarts once per chunk.
constexpr size_t kAvx2ChunkWords = 1024;

SPIKENAS_AVX2 void hamming_block_avx2(const uint64_t* rows, size_t stride, size_t words, int i0, int i1, int j0,
                                      int j1, uint32_t* out, int ldo) {
  for (int i = i0; i < i1; ++i)
    for (int j = j0; j < j1; ++j) out[static_cast<size_t>(i - i0) * ldo + (j - j0)] = 0;
  for (size_t w0 = 0; w0 < words; w0 += kAvx2ChunkWords) {
    const size_t kc = words - w0 < kAvx2ChunkWords ? words - w0 : kAvx2ChunkWords;
    for (int i = i0; i < i1; ++i) {
      const uint64_t* a = rows + static_cast<size_t>(i) * stride + w0;
      uint32_t* o = out + static_cast<size_t>(i - i0) * ldo;
      for (int j = j0 > i ? j0 : i + 1; j < j1; ++j)
        o[j - j0] += static_cast<uint32_t>(xor_popcount_avx2(a, rows + static_cast<size_t>(j) * stride + w0, kc));
    }
  }
}

// ---- avx2: the sparse path ----------------------------------------------------------------------

// Where expand_columns_avx2 leaves row r of a group of 32: the byte transpose below interleaves
// rows 4m, 4m + 1 in the low 128-bit lane and 4m + 2, 4m + 3 in the high one (m = 0..7).
constexpr uint8_t kAvx2Slots[32] = {0,  1,  16, 17, 2,  3,  18, 19, 4,  5,  20, 21, 6,  7,  22, 23,
                                    8,  9,  24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31};

// a[m] holds one word of rows 4m .. 4m + 3 (64-bit lanes in row order), m = 0..7. Writes that
// word's 64 columns for the group: the 32-bit mask at out + t * lw (uint64 units) = bit t of the 32
// rows, bit k for the row in slot k.
SPIKENAS_AVX2 SPIKENAS_ALWAYS_INLINE void emit_columns(const __m256i a[8], uint32_t* out, size_t lw) {
  // Per 128-bit lane (two rows p, q): bytes p0 q0 p1 q1 ... p7 q7.
  const __m256i pair = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,  //
                                        0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  __m256i p[8];
  for (int m = 0; m < 8; ++m) p[m] = _mm256_shuffle_epi8(a[m], pair);
  // 16-bit units (byte q of 2 rows) -> 32-bit units (4 rows) -> 64-bit (8 rows) -> 128-bit (16 rows).
  __m256i u[8];
  for (int m = 0; m < 4; ++m) {
    u[m] = _mm256_unpacklo_epi16(p[2 * m], p[2 * m + 1]);      // bytes 0..3 of its rows
    u[m + 4] = _mm256_unpackhi_epi16(p[2 * m], p[2 * m + 1]);  // bytes 4..7
  }
  __m256i v[8];
  for (int h = 0; h < 2; ++h) {
    const __m256i* y = u + 4 * h;
    const __m256i lo01 = _mm256_unpacklo_epi32(y[0], y[1]), hi01 = _mm256_unpackhi_epi32(y[0], y[1]);
    const __m256i lo23 = _mm256_unpacklo_epi32(y[2], y[3]), hi23 = _mm256_unpackhi_epi32(y[2], y[3]);
    v[4 * h + 0] = _mm256_unpacklo_epi64(lo01, lo23);
    v[4 * h + 1] = _mm256_unpackhi_epi64(lo01, lo23);
    v[4 * h + 2] = _mm256_unpacklo_epi64(hi01, hi23);
    v[4 * h + 3] = _mm256_unpackhi_epi64(hi01, hi23);
  }
  // v[q]: byte q of the 32 rows in slot order; bit t of byte q is column 8 q + t. The 16-bit shift
  // brings each byte's own bit t to its bit 7 (the low byte's bits do not reach bit 15).
  for (int q = 0; q < 8; ++q)
    for (int t = 0; t < 8; ++t)
      out[(8 * q + t) * 2 * lw] = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_slli_epi16(v[q], 7 - t)));
}

SPIKENAS_AVX2 void expand_columns_avx2(const uint64_t* rows, size_t stride, int b, size_t words, uint64_t* e,
                                       size_t lw) {
  const __m256i zero = _mm256_setzero_si256();
  const int groups = (b + 31) / 32;
  if (static_cast<size_t>(groups) < 2 * lw || b % 32 != 0)  // slots without a row: zero everywhere
    std::memset(e, 0, kColumnsPerWord * words * lw * sizeof(uint64_t));
  else  // every slot is written below but the zero columns
    for (size_t w = 0; w < words; ++w) std::memset(e + (kColumnsPerWord * w + 64) * lw, 0, lw * sizeof(uint64_t));
  for (int g = 0; g < groups; ++g) {
    const uint64_t* row[32];
    for (int r = 0; r < 32; ++r) row[r] = 32 * g + r < b ? rows + static_cast<size_t>(32 * g + r) * stride : nullptr;
    uint32_t* out = reinterpret_cast<uint32_t*>(e) + g;  // the group's 32 bits of every column
    size_t w = 0;
    for (; w + 4 <= words; w += 4) {
      __m256i a[4][8];  // [word][m]
      for (int m = 0; m < 8; ++m) {
        __m256i r4[4];
        for (int t = 0; t < 4; ++t) r4[t] = row[4 * m + t] ? load(row[4 * m + t] + w) : zero;
        // 4 x 4 transpose of 64-bit words: rows 4m.. in, words w.. out.
        const __m256i t0 = _mm256_unpacklo_epi64(r4[0], r4[1]), t1 = _mm256_unpackhi_epi64(r4[0], r4[1]);
        const __m256i t2 = _mm256_unpacklo_epi64(r4[2], r4[3]), t3 = _mm256_unpackhi_epi64(r4[2], r4[3]);
        a[0][m] = _mm256_permute2x128_si256(t0, t2, 0x20);
        a[1][m] = _mm256_permute2x128_si256(t1, t3, 0x20);
        a[2][m] = _mm256_permute2x128_si256(t0, t2, 0x31);
        a[3][m] = _mm256_permute2x128_si256(t1, t3, 0x31);
      }
      for (int d = 0; d < 4; ++d) emit_columns(a[d], out + 2 * kColumnsPerWord * (w + d) * lw, lw);
    }
    for (; w < words; ++w) {
      __m256i a[8];
      for (int m = 0; m < 8; ++m) {
        uint64_t x[4];
        for (int t = 0; t < 4; ++t) x[t] = row[4 * m + t] ? row[4 * m + t][w] : 0;
        a[m] = _mm256_setr_epi64x(static_cast<long long>(x[0]), static_cast<long long>(x[1]),
                                  static_cast<long long>(x[2]), static_cast<long long>(x[3]));
      }
      emit_columns(a, out + 2 * kColumnsPerWord * w * lw, lw);
    }
  }
}

// Not always_inline (the generic ColumnCounter has no target of its own); the flatten attribute of
// accumulate_columns_avx2 inlines them into code built for AVX2.
struct Avx2Ops {
  using V = __m256i;
  SPIKENAS_AVX2 static inline V load(const uint64_t* p) { return _mm256_loadu_si256(reinterpret_cast<const V*>(p)); }
  SPIKENAS_AVX2 static inline void store(uint64_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<V*>(p), v); }
  SPIKENAS_AVX2 static inline V zero() { return _mm256_setzero_si256(); }
  SPIKENAS_AVX2 static inline V xor_(V a, V b) { return _mm256_xor_si256(a, b); }
  SPIKENAS_AVX2 static inline V and_(V a, V b) { return _mm256_and_si256(a, b); }
  SPIKENAS_AVX2 static inline V or_(V a, V b) { return _mm256_or_si256(a, b); }
  SPIKENAS_AVX2 static inline V bit16(V a, int b) {
    return _mm256_and_si256(_mm256_srli_epi16(a, b), _mm256_set1_epi16(1));
  }
  SPIKENAS_AVX2 static inline V add16(V a, V b) { return _mm256_add_epi16(a, b); }
  SPIKENAS_AVX2 static inline V shl16(V a, int p) { return _mm256_slli_epi16(a, p); }
  SPIKENAS_AVX2 static inline uint64_t tzcnt(uint64_t x) { return _tzcnt_u64(x); }
};

SPIKENAS_AVX2 __attribute__((flatten)) void accumulate_columns_avx2(const uint64_t* e, size_t lw, const uint64_t* x,
                                                                    size_t words, int i0, int i1, int k, int run,
                                                                    int runs, uint64_t* state) {
  ColumnCounter<Avx2Ops>::accumulate_any(e, lw, x, words, i0, i1, k, run, runs, state);
}

SPIKENAS_AVX2 __attribute__((flatten)) void read_columns_avx2(const uint64_t* state, uint32_t* counts) {
  ColumnCounter<Avx2Ops>::read(state, counts);
}

SPIKENAS_AVX2 uint64_t popcount_words_avx2(const uint64_t* words, size_t count) {
  uint64_t total = 0;
  for (size_t w = 0; w < count; ++w) total += static_cast<uint64_t>(__builtin_popcountll(words[w]));
  return total;
}

// Bits of a zero-compare mask, inverted: one bit per element that is nonzero.
SPIKENAS_AVX2 void pack_words_avx2(const void* src, int elem_bytes, uint64_t mask, size_t nwords,
                                   uint64_t* dst) {
  const __m256i zero = _mm256_setzero_si256();
  switch (elem_bytes) {
    case 1: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      const __m256i m = _mm256_set1_epi8(static_cast<char>(mask));
      for (size_t w = 0; w < nwords; ++w, s += 64) {
        const uint32_t lo = static_cast<uint32_t>(
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(load(s), m), zero)));
        const uint32_t hi = static_cast<uint32_t>(
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(load(s + 32), m), zero)));
        dst[w] = ~(static_cast<uint64_t>(lo) | static_cast<uint64_t>(hi) << 32);
      }
      break;
    }
    case 2: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      const __m256i m = _mm256_set1_epi16(static_cast<short>(mask));
      for (size_t w = 0; w < nwords; ++w, s += 64) {
        uint64_t zeros = 0;
        for (int half = 0; half < 2; ++half) {
          const uint16_t* p = s + 32 * half;
          const __m256i c0 = _mm256_cmpeq_epi16(_mm256_and_si256(load(p), m), zero);
          const __m256i c1 = _mm256_cmpeq_epi16(_mm256_and_si256(load(p + 16), m), zero);
          // packs interleaves the 128-bit lanes (c0 lo, c1 lo, c0 hi, c1 hi); the permute restores order.
          const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packs_epi16(c0, c1), 0xD8);
          zeros |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(bytes))) << (32 * half);
        }
        dst[w] = ~zeros;
      }
      break;
    }
    case 4: {
      const uint32_t* s = static_cast<const uint32_t*>(src);
      const __m256i m = _mm256_set1_epi32(static_cast<int>(mask));
      for (size_t w = 0; w < nwords; ++w, s += 64) {
        uint64_t zeros = 0;
        for (int k = 0; k < 8; ++k) {
          const __m256i c = _mm256_cmpeq_epi32(_mm256_and_si256(load(s + 8 * k), m), zero);
          zeros |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(c))))
                   << (8 * k);
        }
        dst[w] = ~zeros;
      }
      break;
    }
    default: {
      const uint64_t* s = static_cast<const uint64_t*>(src);
      const __m256i m = _mm256_set1_epi64x(static_cast<long long>(mask));
      for (size_t w = 0; w < nwords; ++w, s += 64) {
        uint64_t zeros = 0;
        for (int k = 0; k < 16; ++k) {
          const __m256i c = _mm256_cmpeq_epi64(_mm256_and_si256(load(s + 4 * k), m), zero);
          zeros |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(c))))
                   << (4 * k);
        }
        dst[w] = ~zeros;
      }
      break;
    }
  }
}

// R rows of c -= l u with FMA: 8 columns (two vectors per row) at a time, then 4, then single.
template <int R>
SPIKENAS_AVX2 SPIKENAS_ALWAYS_INLINE void gemm_sub_rows(double* c, const double* l, const double* u,
                                                        size_t ld, int nn, int k) {
  int j = 0;
  for (; j + 8 <= nn; j += 8) {
    __m256d acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_pd();
    for (int kk = 0; kk < k; ++kk) {
      const __m256d u0 = _mm256_loadu_pd(u + kk * ld + j);
      const __m256d u1 = _mm256_loadu_pd(u + kk * ld + j + 4);
      for (int r = 0; r < R; ++r) {
        const __m256d lv = _mm256_broadcast_sd(l + r * ld + kk);
        acc0[r] = _mm256_fmadd_pd(lv, u0, acc0[r]);
        acc1[r] = _mm256_fmadd_pd(lv, u1, acc1[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      double* cr = c + r * ld + j;
      _mm256_storeu_pd(cr, _mm256_sub_pd(_mm256_loadu_pd(cr), acc0[r]));
      _mm256_storeu_pd(cr + 4, _mm256_sub_pd(_mm256_loadu_pd(cr + 4), acc1[r]));
    }
  }
  for (; j + 4 <= nn; j += 4) {
    __m256d acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_pd();
    for (int kk = 0; kk < k; ++kk) {
      const __m256d u0 = _mm256_loadu_pd(u + kk * ld + j);
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_pd(_mm256_broadcast_sd(l + r * ld + kk), u0, acc[r]);
    }
    for (int r = 0; r < R; ++r) {
      double* cr = c + r * ld + j;
      _mm256_storeu_pd(cr, _mm256_sub_pd(_mm256_loadu_pd(cr), acc[r]));
    }
  }
  for (; j < nn; ++j) {
    for (int r = 0; r < R; ++r) {
      double acc = 0.0;
      for (int kk = 0; kk < k; ++kk) acc = __builtin_fma(l[r * ld + kk], u[kk * ld + j], acc);
      c[r * ld + j] -= acc;
    }
  }
}

// Column blocks of U (k x kGemmCols, 16 KiB at k = 32) stay in L1 while all row groups pass.
constexpr int kGemmCols = 64;

SPIKENAS_AVX2 void gemm_sub_avx2(double* c, const double* l, const double* u, size_t ld, int m, int nn,
                                 int k) {
  for (int j0 = 0; j0 < nn; j0 += kGemmCols) {
    const int cols = nn - j0 < kGemmCols ? nn - j0 : kGemmCols;
    int i = 0;
    for (; i + 4 <= m; i += 4) gemm_sub_rows<4>(c + i * ld + j0, l + i * ld, u + j0, ld, cols, k);
    for (; i < m; ++i) gemm_sub_rows<1>(c + i * ld + j0, l + i * ld, u + j0, ld, cols, k);
  }
}

int lu_panel_portable(double* p, int m, int kb, int* piv, double* diag) {
  return lu_panel_generic(p, m, kb, piv, diag);
}

void trsm_lower_portable(const double* l, double* u, size_t ld, int kb, int nn) {
  trsm_lower_generic(l, u, ld, kb, nn);
}

// The generic loops again, vectorised for AVX2 (no FMA contraction: ISO C++ mode).
SPIKENAS_AVX2 int lu_panel_avx2(double* p, int m, int kb, int* piv, double* diag) {
  return lu_panel_generic(p, m, kb, piv, diag);
}

SPIKENAS_AVX2 void trsm_lower_avx2(const double* l, double* u, size_t ld, int kb, int nn) {
  trsm_lower_generic(l, u, ld, kb, nn);
}

}  // namespace

const Kernels kPopcntKernels = {"popcnt",
                                hamming_block_popcnt,
                                expand_columns_popcnt,
                                accumulate_columns_popcnt,
                                read_columns_popcnt,
                                kIdentitySlots,
                                0.67,  // measured by bench/calibrate_gram.py on an AMD EPYC (Zen 3)
                                4.6,
                                39.0,
                                popcount_words_popcnt,
                                pack_words_portable,
                                gemm_sub_portable,
                                lu_panel_portable,
                                trsm_lower_portable};
const Kernels kAvx2Kernels = {"avx2",
                              hamming_block_avx2,
                              expand_columns_avx2,
                              accumulate_columns_avx2,
                              read_columns_avx2,
                              kAvx2Slots,
                              0.22,  // measured by bench/calibrate_gram.py on an AMD EPYC (Zen 3)
                              1.5,
                              12.0,
                              popcount_words_avx2,
                              pack_words_avx2,
                              gemm_sub_avx2,
                              lu_panel_avx2,
                              trsm_lower_avx2};

}  // namespace spikenas

#endif  // SPIKENAS_X86
