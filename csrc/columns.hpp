// Column counters of the sparse Hamming path (gram.cpp), shared by the instruction-set variants.
//
// For row i and every row j at once, |a_i & a_j| = the number of set bits t of a_i where a_j is
// set too. The rows' bits are transposed into columns, one bit per row, so that each set bit of
// a_i adds one column to a counter of 256 rows j (a "run" of slots), kept in bit-sliced form:
//
// - columns: for a chunk of words, column 65 w + t holds bit t of word w of every row, lw uint64
//   words per column (lw = 4 runs, bit `slot % 64` of word `slot / 64`); column 65 w + 64 is zero
//   and stands in for the set bits a word does not have. Row r sits in slot
//   32 (r / 32) + slots[r % 32], a permutation within groups of 32 chosen by the variant;
// - state of one (row i, run): Harley-Seal's carry-save planes of weight 1, 2, 4, 8, a ripple
//   counter of its sixteens in planes of weight 16 .. 128, and sixteen vectors of 16-bit lanes
//   counting units of 16 (lane l of vector b: slot 16 l + b), into which the ripple counter is
//   emptied every 15 blocks of 16 columns, before it can overflow.
//
// Ops is the vector type of a variant: 256 bits as __m256i (AVX2) or as four uint64 (portable).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "native.hpp"

namespace spikenas {

constexpr size_t kColumnsPerWord = 65;  // 64 bit columns and the zero column
constexpr size_t kStateWords = 100;     // uint64 words of one (row, run) state, see below
constexpr size_t kPlaneAt = 0;          // planes of weight 1, 2, 4, 8: words 0 .. 15
constexpr size_t kRippleAt = 16;        // planes of weight 16 .. 128: words 16 .. 31
constexpr size_t kLanesAt = 32;         // 16 vectors of 16-bit lanes, units of 16: words 32 .. 95
constexpr size_t kBlocksAt = 96;        // blocks of 16 columns added since the ripple counter was emptied
constexpr int kBlocksPerEmpty = 15;     // the ripple counter holds 15 units of 16 per slot
// Bits one sparse range may count per slot: 65535 units of 16 in a 16-bit lane.
constexpr uint64_t kMaxColumnSum = uint64_t{65535} * 16;

template <class Ops>
struct ColumnCounter {
  using V = typename Ops::V;

  static inline void csa(V& high, V& low, V a, V b, V c) {
    const V u = Ops::xor_(a, b);
    high = Ops::or_(Ops::and_(a, b), Ops::and_(u, c));
    low = Ops::xor_(u, c);
  }

  // Adds the 4-bit ripple values (weights 16 .. 128, in units of 16) to the 16-bit lanes.
  static inline void empty_ripple(uint64_t* state) {
    V planes[4];
    for (int p = 0; p < 4; ++p) planes[p] = Ops::load(state + kRippleAt + 4 * p);
    for (int b = 0; b < 16; ++b) {
      V value = Ops::bit16(planes[0], b);
      for (int p = 1; p < 4; ++p) value = Ops::add16(value, Ops::shl16(Ops::bit16(planes[p], b), p));
      uint64_t* lanes = state + kLanesAt + 4 * b;
      Ops::store(lanes, Ops::add16(Ops::load(lanes), value));
    }
    for (int p = 0; p < 4; ++p) Ops::store(state + kRippleAt + 4 * p, Ops::zero());
  }

  // Adds a vector of weight 16 to the ripple counter (it cannot overflow, see empty_ripple's use).
  static inline void add_sixteens(V carry, uint64_t* state) {
    for (int p = 0; p < 4; ++p) {
      uint64_t* at = state + kRippleAt + 4 * p;
      const V plane = Ops::load(at);
      Ops::store(at, Ops::xor_(plane, carry));
      carry = Ops::and_(plane, carry);
    }
  }

  static inline void end_block(uint64_t& blocks, uint64_t* state) {
    if (++blocks == kBlocksPerEmpty) {
      empty_ripple(state);
      blocks = 0;
    }
  }

  // Adds the columns next(k), ..., next(k + 7) to ones and twos; returns the carries of weight 8.
  // (The order in which next is called does not matter: each call takes one column of its word.)
  template <class Next>
  static inline V add_eight(Next& next, int k, V& ones, V& twos, V& fours) {
    V twos_a, twos_b, fours_a, fours_b, eights;
    csa(twos_a, ones, ones, next(k), next(k + 1));
    csa(twos_b, ones, ones, next(k + 2), next(k + 3));
    csa(fours_a, twos, twos, twos_a, twos_b);
    csa(twos_a, ones, ones, next(k + 4), next(k + 5));
    csa(twos_b, ones, ones, next(k + 6), next(k + 7));
    csa(fours_b, twos, twos, twos_a, twos_b);
    csa(eights, fours, fours, fours_a, fours_b);
    return eights;
  }

  // Adds the 16 columns next(0), ..., next(15) (Harley-Seal).
  template <class Next>
  static inline void add_block(Next&& next, V& ones, V& twos, V& fours, V& eights, uint64_t& blocks,
                               uint64_t* state) {
    const V eights_a = add_eight(next, 0, ones, twos, fours);
    const V eights_b = add_eight(next, 8, ones, twos, fours);
    V sixteens;
    csa(sixteens, eights, eights, eights_a, eights_b);
    add_sixteens(sixteens, state);
    end_block(blocks, state);
  }

  // Adds one column (the bits past a word's first K), rippling through the planes.
  static inline void add_one(V carry, V& ones, V& twos, V& fours, V& eights, uint64_t& blocks, uint64_t* state) {
    V* planes[4] = {&ones, &twos, &fours, &eights};
    for (V* plane : planes) {
      const V next = Ops::and_(*plane, carry);
      *plane = Ops::xor_(*plane, carry);
      carry = next;
    }
    // A carry of weight 16 is one more unit than a block adds; count it as a block of its own.
    add_sixteens(carry, state);
    end_block(blocks, state);
  }

  // accumulate_columns with K columns per word taken unconditionally (a word's zero column, at
  // tzcnt(0) = 64, standing in for missing bits), so that a block of 16 columns covers 16 / K words.
  // LW: lw when known at compile time (one run), else 0.
  template <int K, size_t LW>
  static void accumulate(const uint64_t* e, size_t lw_runtime, const uint64_t* x, size_t words, int i0, int i1,
                         int run, int runs, uint64_t* state) {
    constexpr int kWordsPerBlock = 16 / K;
    const size_t lw = LW != 0 ? LW : lw_runtime;
    for (int i = i0; i < i1; ++i) {
      uint64_t* st = state + (static_cast<size_t>(i) * runs + run) * kStateWords;
      uint64_t blocks = st[kBlocksAt];
      V ones = Ops::load(st + kPlaneAt), twos = Ops::load(st + kPlaneAt + 4);
      V fours = Ops::load(st + kPlaneAt + 8), eights = Ops::load(st + kPlaneAt + 12);
      const uint64_t* xi = x + static_cast<size_t>(i) * words;
      for (size_t w0 = 0; w0 < words; w0 += kWordsPerBlock) {
        uint64_t bits[kWordsPerBlock];
        const uint64_t* column[kWordsPerBlock];
        for (int g = 0; g < kWordsPerBlock; ++g) {
          const size_t w = w0 + g < words ? w0 + g : 0;  // past the end: no bits, word 0's zero column
          bits[g] = w0 + g < words ? xi[w] : 0;
          column[g] = e + kColumnsPerWord * w * lw + 4 * run;
        }
        add_block(
            [&](int k) {
              uint64_t& b = bits[k / K];
              const V v = Ops::load(column[k / K] + Ops::tzcnt(b) * lw);
              b &= b - 1;
              return v;
            },
            ones, twos, fours, eights, blocks, st);
        for (int g = 0; g < kWordsPerBlock; ++g)
          for (; bits[g] != 0; bits[g] &= bits[g] - 1)
            add_one(Ops::load(column[g] + Ops::tzcnt(bits[g]) * lw), ones, twos, fours, eights, blocks, st);
      }
      st[kBlocksAt] = blocks;
      Ops::store(st + kPlaneAt, ones);
      Ops::store(st + kPlaneAt + 4, twos);
      Ops::store(st + kPlaneAt + 8, fours);
      Ops::store(st + kPlaneAt + 12, eights);
    }
  }

  // accumulate_columns with k columns per word (2, 4, 8 or 16) taken whatever the word's bits.
  static void accumulate_any(const uint64_t* e, size_t lw, const uint64_t* x, size_t words, int i0, int i1, int k,
                             int run, int runs, uint64_t* state) {
    if (i1 <= i0 || words == 0) return;
    if (lw == 4)
      accumulate_k<4>(k, e, lw, x, words, i0, i1, run, runs, state);
    else
      accumulate_k<0>(k, e, lw, x, words, i0, i1, run, runs, state);
  }

  // read_columns: counts[s] for the 256 slots s of a (row, run) state.
  static void read(const uint64_t* state, uint32_t* counts) {
    alignas(32) uint16_t low[16][16], high[16][16];  // [bit b][lane l]: slot 16 l + b
    V planes[4], ripple[4];
    for (int p = 0; p < 4; ++p) {
      planes[p] = Ops::load(state + kPlaneAt + 4 * p);
      ripple[p] = Ops::load(state + kRippleAt + 4 * p);
    }
    for (int b = 0; b < 16; ++b) {
      V lo = Ops::bit16(planes[0], b), hi = Ops::bit16(ripple[0], b);
      for (int p = 1; p < 4; ++p) {
        lo = Ops::add16(lo, Ops::shl16(Ops::bit16(planes[p], b), p));
        hi = Ops::add16(hi, Ops::shl16(Ops::bit16(ripple[p], b), p));
      }
      // units of 16: ripple + lanes <= kMaxColumnSum / 16 = 65535, so no lane carries
      hi = Ops::add16(hi, Ops::load(state + kLanesAt + 4 * b));
      Ops::store(reinterpret_cast<uint64_t*>(low[b]), lo);
      Ops::store(reinterpret_cast<uint64_t*>(high[b]), hi);
    }
    for (int l = 0; l < 16; ++l)
      for (int b = 0; b < 16; ++b) counts[16 * l + b] = low[b][l] + 16 * static_cast<uint32_t>(high[b][l]);
  }

  template <size_t LW>
  static void accumulate_k(int k, const uint64_t* e, size_t lw, const uint64_t* x, size_t words, int i0, int i1,
                           int run, int runs, uint64_t* state) {
    switch (k) {
      case 2: accumulate<2, LW>(e, lw, x, words, i0, i1, run, runs, state); break;
      case 4: accumulate<4, LW>(e, lw, x, words, i0, i1, run, runs, state); break;
      case 8: accumulate<8, LW>(e, lw, x, words, i0, i1, run, runs, state); break;
      default: accumulate<16, LW>(e, lw, x, words, i0, i1, run, runs, state); break;
    }
  }
};

// Columns per word the sparse path takes unconditionally for rows adding `mean` columns per word
// on average: about the mean plus one standard deviation, as a divisor of 16.
inline int columns_per_word(double mean) { return mean <= 1 ? 2 : mean <= 2.5 ? 4 : mean <= 6.5 ? 8 : 16; }

// Four uint64 as the 256-bit vector (any CPU; the loops vectorise with SSE2).
struct PortableOps {
  struct V {
    uint64_t w[4];
  };
  static inline V load(const uint64_t* p) { return {{p[0], p[1], p[2], p[3]}}; }
  static inline void store(uint64_t* p, V v) { std::memcpy(p, v.w, sizeof v.w); }
  static inline V zero() { return {{0, 0, 0, 0}}; }
  static inline V xor_(V a, V b) { return {{a.w[0] ^ b.w[0], a.w[1] ^ b.w[1], a.w[2] ^ b.w[2], a.w[3] ^ b.w[3]}}; }
  static inline V and_(V a, V b) { return {{a.w[0] & b.w[0], a.w[1] & b.w[1], a.w[2] & b.w[2], a.w[3] & b.w[3]}}; }
  static inline V or_(V a, V b) { return {{a.w[0] | b.w[0], a.w[1] | b.w[1], a.w[2] | b.w[2], a.w[3] | b.w[3]}}; }
  // Bit b of each 16-bit lane, as 0 or 1 in that lane.
  static inline V bit16(V a, int b) {
    constexpr uint64_t ones = 0x0001000100010001ULL;
    return {{(a.w[0] >> b) & ones, (a.w[1] >> b) & ones, (a.w[2] >> b) & ones, (a.w[3] >> b) & ones}};
  }
  // Lane values stay below 2^16 (counts of at most kMaxColumnSum), so no lane carries.
  static inline V add16(V a, V b) { return {{a.w[0] + b.w[0], a.w[1] + b.w[1], a.w[2] + b.w[2], a.w[3] + b.w[3]}}; }
  static inline V shl16(V a, int p) { return {{a.w[0] << p, a.w[1] << p, a.w[2] << p, a.w[3] << p}}; }
  static inline uint64_t tzcnt(uint64_t x) { return x == 0 ? 64 : static_cast<uint64_t>(__builtin_ctzll(x)); }
};

// expand_columns in plain C++, rows in order (kIdentitySlots).
inline void expand_columns_generic(const uint64_t* rows, size_t stride, int b, size_t words, uint64_t* e,
                                   size_t lw) {
  std::memset(e, 0, kColumnsPerWord * words * lw * sizeof(uint64_t));
  for (int r = 0; r < b; ++r) {
    const uint64_t* row = rows + static_cast<size_t>(r) * stride;
    const uint64_t bit = uint64_t{1} << (r % 64);
    for (size_t w = 0; w < words; ++w) {
      uint64_t* column = e + kColumnsPerWord * w * lw + r / 64;
      for (uint64_t x = row[w]; x != 0; x &= x - 1) column[static_cast<size_t>(__builtin_ctzll(x)) * lw] |= bit;
    }
  }
}

}  // namespace spikenas
