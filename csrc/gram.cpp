// Hamming Gram drivers: macro tiles on and above the block diagonal, OpenMP over (item, tile) and,
// when there are too few tiles for the threads, over parts of the G axis as well. The lower
// triangle is mirrored from the upper one.
#include <algorithm>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "native.hpp"

namespace spikenas {
namespace {

struct Tile {
  int64_t item;  // index over the leading (candidate) dims
  int i0, i1, j0, j1;
};

// Edge of a macro tile: the largest of 32, 16, 8 rows that still gives each thread about eight
// tiles to balance (the word chunks of 32 rows, 64 or 256 KiB, stay in L2).
int tile_rows(int64_t items, int b, int threads) {
  int tb = 32;
  while (tb > 8) {
    const int64_t t = (b + tb - 1) / tb;
    if (items * t * (t + 1) / 2 >= 8 * static_cast<int64_t>(threads)) break;
    tb /= 2;
  }
  return tb;
}

// Tiles on and above the block diagonal, the (full) off-diagonal ones first and the (half-empty)
// diagonal ones last, which balances a dynamic schedule.
std::vector<Tile> upper_tiles(int64_t items, int b, int tb) {
  std::vector<Tile> tiles;
  const int t = (b + tb - 1) / tb;
  for (int diagonal = 0; diagonal < 2; ++diagonal)
    for (int64_t item = 0; item < items; ++item)
      for (int ti = 0; ti < t; ++ti)
        for (int tj = diagonal ? ti : ti + 1; tj < (diagonal ? ti + 1 : t); ++tj)
          tiles.push_back({item, ti * tb, std::min(b, (ti + 1) * tb), tj * tb, std::min(b, (tj + 1) * tb)});
  return tiles;
}

// Adds one layer call's kernel values of row i of a tile, columns j0 + c for c in [c_begin, c_end):
// acc[c] += f(h[c], r_i, r_{j0 + c}), with the same operations in the same order as
// kernels.gram.reference.kernel_from_hamming (the loop vectorises; scale 1 is exact).
#if defined(SPIKENAS_X86) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
// One division per pair: AVX2's four lanes where the CPU has them (an ifunc picks at load time).
__attribute__((target_clones("avx2", "default")))
#endif
void add_kernel_row(KernelKind kind, const uint32_t* h, const double* rates, double ri, int c_begin, int c_end,
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

// Writes the upper-triangle entries of a tile's block (leading dimension tb) to k[i][j] and k[j][i].
void store_symmetric(const double* block, int tb, const Tile& tile, int b, double* k) {
  for (int i = tile.i0; i < tile.i1; ++i) {
    for (int j = std::max(tile.j0, i); j < tile.j1; ++j) {
      const double v = block[static_cast<size_t>(i - tile.i0) * tb + (j - tile.j0)];
      k[static_cast<size_t>(i) * b + j] = v;
      k[static_cast<size_t>(j) * b + i] = v;
    }
  }
}

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace

void hamming_gram(const uint64_t* packed, int64_t items, int b, size_t words, int32_t* out, int threads) {
  const Kernels& kernels = active_kernels();
  const int tb = tile_rows(items, b, threads);
  const std::vector<Tile> tiles = upper_tiles(items, b, tb);
  std::vector<uint32_t> scratch(static_cast<size_t>(threads) * tb * tb);
#pragma omp parallel num_threads(threads)
  {
    uint32_t* block = scratch.data() + static_cast<size_t>(thread_index()) * tb * tb;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < static_cast<int64_t>(tiles.size()); ++t) {
      const Tile& tile = tiles[t];
      kernels.hamming_block(packed + tile.item * b * words, words, tile.i0, tile.i1, tile.j0, tile.j1, block,
                            tb);
      int32_t* h = out + tile.item * b * b;
      for (int i = tile.i0; i < tile.i1; ++i) {
        h[static_cast<size_t>(i) * b + i] = 0;
        for (int j = std::max(tile.j0, i + 1); j < tile.j1; ++j) {
          const int32_t v = static_cast<int32_t>(block[static_cast<size_t>(i - tile.i0) * tb + (j - tile.j0)]);
          h[static_cast<size_t>(i) * b + j] = v;
          h[static_cast<size_t>(j) * b + i] = v;
        }
      }
    }
  }
}

void spike_gram(const uint64_t* packed, int64_t items, int64_t groups, int b, size_t words, int64_t n,
                KernelKind kind, double alpha, double eps, double* out, int threads) {
  const Kernels& kernels = active_kernels();
  const int64_t rows = items * groups * b;
  const double nd = static_cast<double>(n);
  std::vector<double> rates(static_cast<size_t>(rows));  // firing rate of each row, count / n
  const int tb = tile_rows(items, b, threads);
  const std::vector<Tile> tiles = upper_tiles(items, b, tb);
  const int64_t ntiles = static_cast<int64_t>(tiles.size());
  // G is split into parts only when the tiles alone cannot occupy the threads: each (tile, part)
  // then sums its layer calls into its own block and the parts are added in order afterwards.
  // Otherwise a tile sums all G layer calls in order, so K does not depend on the thread count.
  int64_t parts = 1;
  if (ntiles < 2 * threads) parts = std::max<int64_t>(1, std::min<int64_t>(groups, (2 * threads + ntiles - 1) / ntiles));
  const size_t block_size = static_cast<size_t>(tb) * tb;
  std::vector<double> partial(parts > 1 ? static_cast<size_t>(ntiles * parts) * block_size : 0);
  std::vector<uint32_t> hscratch(static_cast<size_t>(threads) * block_size);
  std::vector<double> kscratch(parts > 1 ? 0 : static_cast<size_t>(threads) * block_size);

#pragma omp parallel num_threads(threads)
  {
    const size_t thread = static_cast<size_t>(thread_index());
    uint32_t* hblock = hscratch.data() + thread * block_size;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      rates[r] = static_cast<double>(kernels.popcount_words(packed + r * words, words)) / nd;
    // (the implicit barrier of the loop above publishes every rate before the tiles start)
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntiles * parts; ++task) {
      const Tile& tile = tiles[task / parts];
      const int64_t part = task % parts;
      const int64_t g0 = groups * part / parts, g1 = groups * (part + 1) / parts;
      double* acc = parts > 1 ? partial.data() + static_cast<size_t>(task) * block_size
                              : kscratch.data() + thread * block_size;
      std::fill(acc, acc + block_size, 0.0);
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t slice = tile.item * groups + g;
        kernels.hamming_block(packed + slice * b * words, words, tile.i0, tile.i1, tile.j0, tile.j1, hblock, tb);
        const double* r = rates.data() + slice * b;
        for (int i = tile.i0; i < tile.i1; ++i) {
          const size_t row = static_cast<size_t>(i - tile.i0) * tb;
          add_kernel_row(kind, hblock + row, r + tile.j0, r[i], std::max(tile.j0, i) - tile.j0, tile.j1 - tile.j0,
                         nd, alpha, eps, acc + row);
        }
      }
      if (parts == 1) store_symmetric(acc, tb, tile, b, out + tile.item * b * b);
    }
  }
  if (parts == 1) return;

#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < ntiles; ++t) {
    double* first = partial.data() + static_cast<size_t>(t * parts) * block_size;
    for (int64_t part = 1; part < parts; ++part) {
      const double* other = first + part * block_size;
      for (size_t at = 0; at < block_size; ++at) first[at] += other[at];
    }
    store_symmetric(first, tb, tiles[t], b, out + tiles[t].item * b * b);
  }
}

}  // namespace spikenas
