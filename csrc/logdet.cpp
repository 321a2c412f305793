// Batched sign and log|det| through a blocked LU with partial pivoting in float64.
//
// Right-looking, blocks of kBlock columns: panel factorisation (column-major copy), triangular
// solve for the block row of U, then the trailing update A22 -= L21 U12 by the variant's gemm_sub
// (an FMA micro-kernel on AVX2).
// Matrices are spread over the threads; a batch smaller than the thread count splits each
// trailing update over the threads instead.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "native.hpp"

namespace spikenas {
namespace {

constexpr int kBlock = 32;
// kernels.logdet.reference.SINGULAR_FACTOR
constexpr double kSingularFactor = 256.0;

// Per-thread scratch of the factorisation of one n x n matrix.
struct Workspace {
  double* a;      // n x n, row-major
  double* diag;   // n pivots
  double* panel;  // n x kBlock, column-major
  int* piv;       // kBlock
};

// Factorises ws.a in place (U in the upper triangle); writes u_kk to ws.diag and returns the
// number of row swaps. The panel is factorised in a column-major copy, where the pivot search and
// the column updates run along contiguous memory; its swaps are then applied to the columns right
// of it (the columns left of it hold finished multipliers that the determinant never reads).
int lu_factor(const Workspace& ws, int n, const Kernels& kernels, int threads) {
  const size_t ld = static_cast<size_t>(n);
  double* a = ws.a;
  int swaps = 0;
  for (int k0 = 0; k0 < n; k0 += kBlock) {
    const int k1 = k0 + kBlock < n ? k0 + kBlock : n;
    const int kb = k1 - k0, m = n - k0;
    for (int r = 0; r < m; ++r)
      for (int c = 0; c < kb; ++c) ws.panel[static_cast<size_t>(c) * m + r] = a[(k0 + r) * ld + k0 + c];
    swaps += kernels.lu_panel(ws.panel, m, kb, ws.piv, ws.diag + k0);
    for (int r = 0; r < m; ++r)
      for (int c = 0; c < kb; ++c) a[(k0 + r) * ld + k0 + c] = ws.panel[static_cast<size_t>(c) * m + r];
    if (k1 == n) break;
    for (int k = 0; k < kb; ++k) {
      if (ws.piv[k] == k) continue;
      double* rk = a + (k0 + k) * ld;
      double* rp = a + (k0 + ws.piv[k]) * ld;
      for (int c = k1; c < n; ++c) std::swap(rk[c], rp[c]);
    }
    // U12 := L11^-1 A12, then A22 -= L21 U12, split over row bands when this matrix has the
    // threads to itself.
    kernels.trsm_lower(a + k0 * ld + k0, a + k0 * ld + k1, ld, kb, n - k1);
    const int rows = n - k1;
    double* c = a + k1 * ld + k1;
    const double* l = a + k1 * ld + k0;
    const double* u = a + k0 * ld + k1;
    const int bands = threads > 1 && rows >= 64 ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(bands) if (bands > 1)
    for (int band = 0; band < bands; ++band) {
      const int groups = (rows + 3) / 4;  // bands of whole 4-row micro-kernel groups
      const int r0 = std::min(rows, 4 * (groups * band / bands));
      const int r1 = std::min(rows, 4 * (groups * (band + 1) / bands));
      if (r1 > r0) kernels.gemm_sub(c + r0 * ld, l + r0 * ld, u, ld, r1 - r0, rows, kb);
    }
  }
  return swaps;
}

// Sign and log|det| from the factor a (n x n, row-major, U in the upper triangle). Numerically
// singular, some |u_kk| <= 256 n eps max_ij |u_ij| (exact zero pivots included), gives sign 0 and
// -inf; a non-finite factor gives NaN, NaN: the rule of kernels.logdet.reference.
void sign_and_log(const double* a, const double* diag, int n, int swaps, double* sign, double* logabs) {
  const size_t ld = static_cast<size_t>(n);
  double scale = 0.0;
  for (int i = 0; i < n; ++i)
    for (int j = i; j < n; ++j) scale = std::max(scale, std::fabs(a[i * ld + j]));
  bool finite = std::isfinite(scale);
  for (int i = 0; i < n && finite; ++i)
    for (int j = i; j < n; ++j) finite = finite && std::isfinite(a[i * ld + j]);
  if (!finite) {
    *sign = *logabs = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  const double tol = kSingularFactor * n * DBL_EPSILON * scale;
  double s = swaps % 2 ? -1.0 : 1.0, total = 0.0;
  for (int k = 0; k < n; ++k) {
    const double v = std::fabs(diag[k]);
    if (v <= tol) {
      *sign = 0.0;
      *logabs = -std::numeric_limits<double>::infinity();
      return;
    }
    if (diag[k] < 0) s = -s;
    total += std::log(v);
  }
  *sign = s;
  *logabs = total;
}

}  // namespace

double singular_factor() { return kSingularFactor; }

void slogdet(const void* matrices, bool single_precision, int64_t count, int n, double* sign,
             double* logabs, int threads) {
  const Kernels& kernels = active_kernels();
  const size_t size = static_cast<size_t>(n) * n;
  const int outer = count >= threads ? threads : 1;
  const int inner = outer == 1 ? threads : 1;
  const size_t doubles = size + n + static_cast<size_t>(n) * kBlock;
  std::vector<double> work(static_cast<size_t>(outer) * doubles);
  std::vector<int> pivots(static_cast<size_t>(outer) * kBlock);
#pragma omp parallel for schedule(dynamic, 1) num_threads(outer) if (outer > 1)
  for (int64_t m = 0; m < count; ++m) {
#ifdef _OPENMP
    const size_t thread = outer > 1 ? static_cast<size_t>(omp_get_thread_num()) : 0;
#else
    const size_t thread = 0;
#endif
    double* base = work.data() + thread * doubles;
    const Workspace ws{base, base + size, base + size + n, pivots.data() + thread * kBlock};
    if (single_precision) {
      const float* src = static_cast<const float*>(matrices) + m * size;
      for (size_t e = 0; e < size; ++e) ws.a[e] = src[e];
    } else {
      const double* src = static_cast<const double*>(matrices) + m * size;
      for (size_t e = 0; e < size; ++e) ws.a[e] = src[e];
    }
    const int swaps = lu_factor(ws, n, kernels, inner);
    sign_and_log(ws.a, ws.diag, n, swaps, sign + m, logabs + m);
  }
}

}  // namespace spikenas
