// Hamming Gram drivers. Each slice (one layer call of one candidate: B packed rows) gets its exact
// Hamming counts by one of two paths, chosen per (slice, word range) by the variant's cost model:
//
// - dense: popcounts of XORed row pairs over 32-row tiles on and above the diagonal,
//   B (B - 1) / 2 word pairs per word of the rows, whatever the spikes;
// - sparse (columns.hpp): the chunk's bits are transposed into columns (one bit per row), then
//   row i adds the columns at its set bits (or, for a row that fires more than half the time, at
//   its zero bits) to a bit-sliced counter of 256 rows, which gives |a_i & a_j| for 256 j at
//   once. The work follows the number of spikes: at firing rates of a few percent it is 2-4x less
//   than the dense path's on AVX2 (bench/calibrate_gram.py, README).
//
// Slices are split along their words when there are fewer of them than threads (and so that a
// part's column sums fit the sparse counters), and the integer parts are added; the kernel matrix
// then sums the slices' kernels in G order for every entry, so K does not depend on the thread
// count, the path or the batching.
#include <algorithm>
#include <atomic>
#include <vector>

#include "columns.hpp"
#include "native.hpp"

namespace spikenas {
namespace {

std::atomic<GramPath> forced_path{GramPath::automatic};  // set_gram_path

// Rows per tile of the dense path; a tile's word chunks (kAvx2ChunkWords or kChunkWords) stay in L2.
constexpr int kTileRows = 32;

// Words per chunk of the sparse path: a multiple of every 16 / k of ColumnCounter::accumulate, and
// for B <= 256 its columns (65 x 8 x 32 bytes) fit L1 while every row adds its columns.
constexpr size_t kSparseChunkWords = 8;

// Per-thread buffers, grown on demand.
struct Scratch {
  std::vector<uint32_t> counts;   // c_i over the word range
  std::vector<uint64_t> columns;  // sparse: the columns of one chunk
  std::vector<uint64_t> chunk;    // sparse: [b][chunk words] the rows' words, complemented where chosen
  std::vector<uint64_t> state;    // sparse: [b][runs] column counters
  std::vector<uint32_t> sums;     // sparse: [256] one state's counts
  std::vector<uint32_t> block;    // dense: one tile
};

// This thread's buffers: kept between calls (OpenMP's pool threads persist), so their pages are not
// faulted in again for every layer call.
Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

template <class T>
T* sized(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// counts[i] = set bits of row i (< b) over `words` words; row i starts at rows + i * stride.
void row_counts(const Kernels& kernels, const uint64_t* rows, int b, size_t stride, size_t words, uint32_t* counts) {
  for (int i = 0; i < b; ++i)
    counts[i] = static_cast<uint32_t>(kernels.popcount_words(rows + static_cast<size_t>(i) * stride, words));
}

// True when the cost model expects the sparse path to be faster for this word range.
bool model_prefers_sparse(const Kernels& kernels, int b, size_t words, const uint32_t* counts) {
  if (b < 2) return false;
  const int runs = (b + 255) / 256;
  double columns = 0;  // (set bit, run) column additions
  for (int i = 0; i < b - 1; ++i) {
    const double c = counts[i];
    columns += std::min(c, 64.0 * static_cast<double>(words) - c) * (runs - i / 256);
  }
  const double sparse = columns * kernels.sparse_ns_per_column +
                        static_cast<double>(words) * b * kernels.expand_ns_per_row_word;
  const double dense = 0.5 * b * (b - 1) * static_cast<double>(words) * kernels.dense_ns_per_word_pair;
  return sparse < dense;
}

void dense_range(const Kernels& kernels, const uint64_t* rows, int b, size_t stride, size_t words, Scratch& s,
                 int32_t* h) {
  uint32_t* block = sized(s.block, static_cast<size_t>(kTileRows) * kTileRows);
  for (int i0 = 0; i0 < b; i0 += kTileRows) {
    const int i1 = std::min(b, i0 + kTileRows);
    for (int j0 = i0; j0 < b; j0 += kTileRows) {
      const int j1 = std::min(b, j0 + kTileRows);
      kernels.hamming_block(rows, stride, words, i0, i1, j0, j1, block, kTileRows);
      for (int i = i0; i < i1; ++i)
        for (int j = std::max(j0, i + 1); j < j1; ++j)
          h[static_cast<size_t>(i) * b + j] =
              static_cast<int32_t>(block[static_cast<size_t>(i - i0) * kTileRows + (j - j0)]);
    }
  }
}

// Hamming counts from column sums: H(i, j) = c_i + c_j - 2 |a_i & a_j| = c_i - c_j + 2 |~a_i & a_j|
// (the second for rows firing more than half the time, which count their zero bits). Both hold
// over whole words, padding bits included, so the two paths count the same bits.
void sparse_range(const Kernels& kernels, const uint64_t* rows, int b, size_t stride, size_t words,
                  const uint32_t* counts, Scratch& s, int32_t* h) {
  const int runs = (b + 255) / 256;
  const size_t lw = 4 * static_cast<size_t>(runs);
  const size_t chunk = kSparseChunkWords;
  uint64_t* columns = sized(s.columns, kColumnsPerWord * chunk * lw);
  uint64_t* x = sized(s.chunk, static_cast<size_t>(b) * chunk);
  uint64_t* state = sized(s.state, static_cast<size_t>(b) * runs * kStateWords);
  uint32_t* sums = sized(s.sums, 256);
  std::fill(state, state + static_cast<size_t>(b) * runs * kStateWords, uint64_t{0});
  std::vector<uint64_t> flip(static_cast<size_t>(b));
  for (int i = 0; i < b; ++i) flip[i] = 2 * static_cast<uint64_t>(counts[i]) > 64 * words ? ~uint64_t{0} : 0;
  std::vector<int> k(static_cast<size_t>((b + 31) / 32));  // columns per word, per group of 32 rows
  for (int i0 = 0; i0 < b; i0 += 32) {
    double added = 0;
    const int i1 = std::min(b, i0 + 32);
    for (int i = i0; i < i1; ++i) added += flip[i] ? 64.0 * static_cast<double>(words) - counts[i] : counts[i];
    k[i0 / 32] = columns_per_word(added / (static_cast<double>(i1 - i0) * static_cast<double>(words)));
  }
  for (size_t c0 = 0; c0 < words; c0 += chunk) {
    const size_t cw = std::min(chunk, words - c0);
    kernels.expand_columns(rows + c0, stride, b, cw, columns, lw);
    for (int i = 0; i + 1 < b; ++i)
      for (size_t w = 0; w < cw; ++w)
        x[static_cast<size_t>(i) * cw + w] = rows[static_cast<size_t>(i) * stride + c0 + w] ^ flip[i];
    // Rows need the runs holding their j >= i; the last row none.
    for (int i0 = 0; i0 + 1 < b; i0 += 32) {
      const int i1 = std::min(b - 1, i0 + 32);
      for (int run = i0 / 256; run < runs; ++run)
        kernels.accumulate_columns(columns, lw, x, cw, i0, i1, k[i0 / 32], run, runs, state);
    }
  }
  for (int i = 0; i + 1 < b; ++i) {
    const int64_t ci = counts[i];
    const bool complement = flip[i] != 0;
    for (int run = (i / 32) * 32 / 256; run < runs; ++run) {
      kernels.read_columns(state + (static_cast<size_t>(i) * runs + run) * kStateWords, sums);
      for (int j = std::max(i + 1, 256 * run); j < std::min(b, 256 * (run + 1)); ++j) {
        const int64_t both = sums[(j % 256) / 32 * 32 + kernels.slots[j % 32]];  // |a_i & a_j| or |~a_i & a_j|
        const int64_t cj = counts[j];
        h[static_cast<size_t>(i) * b + j] =
            static_cast<int32_t>(complement ? ci - cj + 2 * both : ci + cj - 2 * both);
      }
    }
  }
}

// h[i * b + j] (j > i) = Hamming distance of rows i and j over `words` words; other entries untouched.
void range_hamming(const Kernels& kernels, const uint64_t* rows, int b, size_t stride, size_t words, Scratch& s,
                   int32_t* h) {
  uint32_t* counts = sized(s.counts, static_cast<size_t>(b));
  row_counts(kernels, rows, b, stride, words, counts);
  const GramPath path = forced_path.load(std::memory_order_relaxed);
  // (HammingBatches keeps ranges short enough for the sparse counters; the check guards that.)
  const bool sparse = 64 * static_cast<uint64_t>(words) <= kMaxColumnSum &&
                      (path == GramPath::automatic ? model_prefers_sparse(kernels, b, words, counts)
                                                   : path == GramPath::sparse);
  if (sparse)
    sparse_range(kernels, rows, b, stride, words, counts, s, h);
  else
    dense_range(kernels, rows, b, stride, words, s, h);
}

// Computes the upper triangles (j > i) of the Hamming matrices of slices [first, first + count)
// into h ([count][b][b]; the diagonal is set to 0, the lower triangle is left alone).
class HammingBatches {
 public:
  HammingBatches(const uint64_t* packed, int64_t slices, int b, size_t words, int threads)
      : packed_(packed), b_(b), words_(words), threads_(threads) {
    const int64_t plane = static_cast<int64_t>(b) * b;
    // At least one slice per thread; at most ~16 MiB of int32 Hamming counts per batch.
    batch_ = std::min<int64_t>(slices, std::max<int64_t>(threads, (int64_t{4} << 20) / plane));
    parts_ = 1;
    if (batch_ < threads) {
      parts_ = std::min<int64_t>((threads + batch_ - 1) / batch_,
                                 std::max<int64_t>(1, static_cast<int64_t>(words / 4)));
    }
    // A part's column sums must fit the sparse path's counters.
    const int64_t longest = static_cast<int64_t>(kMaxColumnSum / 64 / 4 * 4);
    parts_ = std::max<int64_t>(parts_, (static_cast<int64_t>(words) + longest - 1) / longest);
    // The calling thread's buffers, reused by its next call.
    thread_local std::vector<int32_t> h, partial;
    h_ = sized(h, static_cast<size_t>(batch_ * plane));
    partial_ = parts_ > 1 ? sized(partial, static_cast<size_t>(batch_ * parts_ * plane)) : nullptr;
  }

  int64_t batch() const { return batch_; }

  const int32_t* run(int64_t first, int64_t count) {
    const Kernels& kernels = active_kernels();
    const size_t plane = static_cast<size_t>(b_) * b_;
#pragma omp parallel num_threads(threads_)
    {
      Scratch& s = thread_scratch();
#pragma omp for schedule(dynamic, 1)
      for (int64_t task = 0; task < count * parts_; ++task) {
        const int64_t slice = task / parts_, part = task % parts_;
        // Word ranges on multiples of 4 words (the AVX2 column expansion's step).
        const size_t w0 = std::min(words_, static_cast<size_t>(words_ * part / parts_ / 4 * 4));
        const size_t w1 = part + 1 == parts_
                              ? words_
                              : std::min(words_, static_cast<size_t>(words_ * (part + 1) / parts_ / 4 * 4));
        int32_t* target = parts_ > 1 ? partial_ + static_cast<size_t>(task) * plane
                                     : h_ + static_cast<size_t>(slice) * plane;
        const uint64_t* rows = packed_ + static_cast<size_t>(first + slice) * b_ * words_;
        if (w1 > w0) {
          range_hamming(kernels, rows + w0, b_, words_, w1 - w0, s, target);
        } else {  // an empty part (fewer than 4 words per part)
          for (int i = 0; i < b_; ++i)
            std::fill(target + static_cast<size_t>(i) * b_ + i + 1, target + static_cast<size_t>(i + 1) * b_, 0);
        }
      }
// Sums the parts row by row (so that one slice still spreads over the threads).
#pragma omp for schedule(static)
      for (int64_t task = 0; task < count * b_; ++task) {
        const int64_t slice = task / b_;
        const int i = static_cast<int>(task % b_);
        int32_t* out = h_ + static_cast<size_t>(slice) * plane + static_cast<size_t>(i) * b_;
        out[i] = 0;
        if (parts_ == 1) continue;
        const int32_t* part0 = partial_ + static_cast<size_t>(slice * parts_) * plane + static_cast<size_t>(i) * b_;
        for (int j = i + 1; j < b_; ++j) out[j] = part0[j];
        for (int64_t part = 1; part < parts_; ++part)
          for (int j = i + 1; j < b_; ++j) out[j] += part0[part * plane + j];
      }
    }
    return h_;
  }

 private:
  const uint64_t* packed_;
  int b_;
  size_t words_;
  int threads_;
  int64_t batch_ = 1, parts_ = 1;
  int32_t* h_;
  int32_t* partial_;
};

// Adds one layer call's kernel values of row i, columns c in [c_begin, c_end):
// acc[c] += f(h[c], r_i, r_c), with the same operations in the same order as
// kernels.gram.reference.kernel_from_hamming (the loop vectorises; scale 1 is exact).
#if defined(SPIKENAS_X86) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
// One division per pair: AVX2's four lanes where the CPU has them (an ifunc picks at load time).
__attribute__((target_clones("avx2", "default")))
#endif
void add_kernel_row(KernelKind kind, const int32_t* h, const double* rates, double ri, int c_begin, int c_end,
                    double n, double alpha, double eps, double* acc) {
  if (kind == KernelKind::hamming) {
    for (int c = c_begin; c < c_end; ++c) acc[c] += n - static_cast<double>(h[c]);
    return;
  }
  const double scale = kind == KernelKind::sahd ? n : 1.0;
  for (int c = c_begin; c < c_end; ++c) {
    const double rj = rates[c];
    const double expected = (ri * (1 - rj) + (1 - ri) * rj) * scale;
    acc[c] += n - alpha * static_cast<double>(h[c]) / (expected + eps);
  }
}

}  // namespace

void set_gram_path(GramPath path) { forced_path.store(path); }
GramPath gram_path() { return forced_path.load(); }

GramPath auto_gram_path(const uint64_t* rows, int b, size_t words) {
  const Kernels& kernels = active_kernels();
  std::vector<uint32_t> counts(static_cast<size_t>(b));
  row_counts(kernels, rows, b, words, words, counts.data());
  return model_prefers_sparse(kernels, b, words, counts.data()) ? GramPath::sparse : GramPath::dense;
}

void hamming_gram(const uint64_t* packed, int64_t items, int b, size_t words, int32_t* out, int threads) {
  HammingBatches batches(packed, items, b, words, threads);
  const size_t plane = static_cast<size_t>(b) * b;
  for (int64_t first = 0; first < items; first += batches.batch()) {
    const int64_t count = std::min(batches.batch(), items - first);
    const int32_t* h = batches.run(first, count);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t task = 0; task < count * b; ++task) {
      const int64_t slice = task / b;
      const int i = static_cast<int>(task % b);
      const int32_t* src = h + slice * plane;
      int32_t* dst = out + (first + slice) * plane;
      dst[static_cast<size_t>(i) * b + i] = 0;
      for (int j = i + 1; j < b; ++j) {
        const int32_t v = src[static_cast<size_t>(i) * b + j];
        dst[static_cast<size_t>(i) * b + j] = v;
        dst[static_cast<size_t>(j) * b + i] = v;
      }
    }
  }
}

void spike_gram(const uint64_t* packed, int64_t items, int64_t groups, int b, size_t words, int64_t n,
                KernelKind kind, double alpha, double eps, double* out, int threads) {
  const Kernels& kernels = active_kernels();
  const int64_t slices = items * groups;
  const int64_t rows = slices * b;
  const double nd = static_cast<double>(n);
  const size_t plane = static_cast<size_t>(b) * b;
  std::vector<double> rates(static_cast<size_t>(rows));  // firing rate of each row, count / n
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static) nowait
    for (int64_t r = 0; r < rows; ++r)
      rates[r] = static_cast<double>(kernels.popcount_words(packed + r * words, words)) / nd;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < items * b; ++r) std::fill(out + r * b, out + (r + 1) * b, 0.0);
  }
  if (slices == 0) return;

  HammingBatches batches(packed, slices, b, words, threads);
  for (int64_t first = 0; first < slices; first += batches.batch()) {
    const int64_t count = std::min(batches.batch(), slices - first);
    const int32_t* h = batches.run(first, count);
    // Rows of the kernel matrices this batch touches; each adds its slices in G order.
    const int64_t item0 = first / groups, item1 = (first + count - 1) / groups + 1;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
    for (int64_t task = 0; task < (item1 - item0) * b; ++task) {
      const int64_t item = item0 + task / b;
      const int i = static_cast<int>(task % b);
      const int64_t s0 = std::max(first, item * groups), s1 = std::min(first + count, (item + 1) * groups);
      double* acc = out + item * plane + static_cast<size_t>(i) * b;
      for (int64_t slice = s0; slice < s1; ++slice) {
        const double* r = rates.data() + slice * b;
        add_kernel_row(kind, h + (slice - first) * plane + static_cast<size_t>(i) * b, r, r[i], i, b, nd, alpha,
                       eps, acc);
      }
    }
  }
// The lower triangle, row by row: row j takes column j of the rows above it.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t task = 0; task < items * b; ++task) {
    double* k = out + (task / b) * plane;
    const int j = static_cast<int>(task % b);
    for (int i = 0; i < j; ++i) k[static_cast<size_t>(j) * b + i] = k[static_cast<size_t>(i) * b + j];
  }
}

}  // namespace spikenas
