// Batched sign and log|det| through a blocked LU with partial pivoting in float64.
//
// Right-looking, blocks of kBlock columns: unblocked panel factorisation, triangular solve for the
// block row of U, then the trailing update A22 -= L21 U12 by the variant's gemm_sub (FMA on AVX2).
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

// Factorises a (n x n, row-major) in place; writes u_kk to diag and returns the number of swaps.
int lu_factor(double* a, int n, double* diag, const Kernels& kernels, int threads) {
  const size_t ld = static_cast<size_t>(n);
  int swaps = 0;
  for (int k0 = 0; k0 < n; k0 += kBlock) {
    const int k1 = k0 + kBlock < n ? k0 + kBlock : n;
    for (int k = k0; k < k1; ++k) {
      int p = k;
      double best = std::fabs(a[k * ld + k]);
      for (int i = k + 1; i < n; ++i) {
        const double v = std::fabs(a[i * ld + k]);
        if (v > best) {
          best = v;
          p = i;
        }
      }
      if (p != k) {
        // Columns left of k0 hold finished multipliers that the determinant never reads again.
        double* rk = a + k * ld;
        double* rp = a + p * ld;
        for (int c = k0; c < n; ++c) std::swap(rk[c], rp[c]);
        ++swaps;
      }
      const double pivot = a[k * ld + k];
      diag[k] = pivot;
      if (pivot == 0.0) continue;  // the column is zero from row k down: nothing to eliminate
      const double* rk = a + k * ld;
      for (int i = k + 1; i < n; ++i) {
        double* ri = a + i * ld;
        const double l = ri[k] / pivot;
        ri[k] = l;
        for (int c = k + 1; c < k1; ++c) ri[c] -= l * rk[c];
      }
    }
    if (k1 == n) break;
    // U12 := L11^-1 A12 (unit lower triangular L11).
    for (int k = k0; k < k1; ++k) {
      const double* rk = a + k * ld;
      for (int i = k + 1; i < k1; ++i) {
        double* ri = a + i * ld;
        const double l = ri[k];
        for (int c = k1; c < n; ++c) ri[c] -= l * rk[c];
      }
    }
    // A22 -= L21 U12, split over row bands when this matrix has the threads to itself.
    const int m = n - k1;
    double* c = a + k1 * ld + k1;
    const double* l = a + k1 * ld + k0;
    const double* u = a + k0 * ld + k1;
    const int bands = threads > 1 && m >= 64 ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(bands) if (bands > 1)
    for (int band = 0; band < bands; ++band) {
      // Bands of whole 4-row groups, so every row goes through the same micro-kernel shape.
      const int groups = (m + 3) / 4;
      const int r0 = std::min(m, 4 * (groups * band / bands));
      const int r1 = std::min(m, 4 * (groups * (band + 1) / bands));
      if (r1 > r0) kernels.gemm_sub(c + r0 * ld, l + r0 * ld, u, ld, r1 - r0, m, k1 - k0);
    }
  }
  return swaps;
}

// Sign and log|det| from the factor a (n x n, row-major, U in the upper triangle). Numerically
// singular, some |u_kk| <= n^2 eps max_ij |u_ij| (the worst-case rounding error of the LU, exact
// zero pivots included), gives sign 0 and -inf; a non-finite factor gives NaN, NaN; the same rule as
// kernels.logdet.reference.
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
  const double tol = static_cast<double>(n) * n * DBL_EPSILON * scale;
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

void slogdet(const void* matrices, bool single_precision, int64_t count, int n, double* sign,
             double* logabs, int threads) {
  const Kernels& kernels = active_kernels();
  const size_t size = static_cast<size_t>(n) * n;
  const int outer = count >= threads ? threads : 1;
  const int inner = outer == 1 ? threads : 1;
  std::vector<double> work(static_cast<size_t>(outer) * (size + n));
#pragma omp parallel for schedule(dynamic, 1) num_threads(outer) if (outer > 1)
  for (int64_t m = 0; m < count; ++m) {
#ifdef _OPENMP
    double* a = work.data() + static_cast<size_t>(outer > 1 ? omp_get_thread_num() : 0) * (size + n);
#else
    double* a = work.data();
#endif
    double* diag = a + size;
    if (single_precision) {
      const float* src = static_cast<const float*>(matrices) + m * size;
      for (size_t e = 0; e < size; ++e) a[e] = src[e];
    } else {
      const double* src = static_cast<const double*>(matrices) + m * size;
      for (size_t e = 0; e < size; ++e) a[e] = src[e];
    }
    const int swaps = lu_factor(a, n, diag, kernels, inner);
    sign_and_log(a, diag, n, swaps, sign + m, logabs + m);
  }
}

}  // namespace spikenas
