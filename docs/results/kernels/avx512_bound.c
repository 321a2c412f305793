/* Throughput limits of one core for the avx512 Hamming kernel (docs/results/kernels/avx512.md).
 *
 *   gcc -O2 docs/results/kernels/avx512_bound.c -o /tmp/avx512_bound && /tmp/avx512_bound
 *
 * Prints: the clock while 512-bit code runs (a chain of dependent VPADDQ zmm, latency 1 cycle) and
 * while scalar code runs (dependent IMUL r64, latency 3); the throughput of independent VPOPCNTQ zmm
 * per cycle; the read + popcount bandwidth for working sets from L1 to DRAM. Min over 5 repeats. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define AVX512 __attribute__((target("avx512f,avx512vpopcntdq")))

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

AVX512 static double vpaddq_ns(long n) {
  __m512i x = _mm512_set1_epi64(1), one = _mm512_set1_epi64(1);
  const double t0 = now();
  for (long i = 0; i < n; ++i)
    __asm__ volatile("vpaddq %1, %0, %0\n\tvpaddq %1, %0, %0\n\tvpaddq %1, %0, %0\n\tvpaddq %1, %0, %0"
                     : "+v"(x)
                     : "v"(one));
  return (now() - t0) / (4.0 * n);
}

static double imul_ns(long n) {
  uint64_t x = 3;
  const double t0 = now();
  for (long i = 0; i < n; ++i) __asm__ volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0" : "+r"(x));
  return (now() - t0) / (12.0 * n); /* 3 cycles per imul */
}

AVX512 static double vpopcntq_ns(long n) {
  const double t0 = now();
  for (long i = 0; i < n; ++i)
    __asm__ volatile(
        "vpopcntq %%zmm1, %%zmm2\n\tvpopcntq %%zmm1, %%zmm3\n\tvpopcntq %%zmm1, %%zmm4\n\tvpopcntq %%zmm1, %%zmm5\n\t"
        "vpopcntq %%zmm1, %%zmm6\n\tvpopcntq %%zmm1, %%zmm7\n\tvpopcntq %%zmm1, %%zmm8\n\tvpopcntq %%zmm1, %%zmm9\n\t"
        "vpopcntq %%zmm1, %%zmm10\n\tvpopcntq %%zmm1, %%zmm11\n\tvpopcntq %%zmm1, %%zmm12\n\tvpopcntq %%zmm1, %%zmm13\n\t"
        "vpopcntq %%zmm1, %%zmm14\n\tvpopcntq %%zmm1, %%zmm15\n\tvpopcntq %%zmm1, %%zmm16\n\tvpopcntq %%zmm1, %%zmm17"
        ::: "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "xmm14", "xmm15", "xmm16", "xmm17");
  return (now() - t0) / (16.0 * n);
}

AVX512 static uint64_t popcount(const uint64_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t w = 0; w + 32 <= n; w += 32) {
    a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_loadu_si512(p + w)));
    a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_loadu_si512(p + w + 8)));
    a2 = _mm512_add_epi64(a2, _mm512_popcnt_epi64(_mm512_loadu_si512(p + w + 16)));
    a3 = _mm512_add_epi64(a3, _mm512_popcnt_epi64(_mm512_loadu_si512(p + w + 24)));
  }
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

int main(void) {
  double add = 1e9, mul = 1e9, pop = 1e9;
  for (int r = 0; r < 5; ++r) {
    const double a = vpaddq_ns(100000000), m = imul_ns(100000000), p = vpopcntq_ns(25000000);
    add = a < add ? a : add;
    mul = m < mul ? m : mul;
    pop = p < pop ? p : pop;
  }
  printf("clock, 512-bit code: %.2f GHz; scalar code: %.2f GHz\n", 1e-9 / add, 1e-9 / mul);
  printf("VPOPCNTQ zmm: %.3f ns each, %.2f per 512-bit cycle\n", pop * 1e9, add / pop);
  const size_t sizes[] = {16 << 10, 1 << 20, 42 << 20, 512 << 20};
  for (int s = 0; s < 4; ++s) {
    const size_t n = sizes[s] / 8;
    uint64_t* p = aligned_alloc(64, sizes[s]);
    for (size_t i = 0; i < n; ++i) p[i] = i * 0x9E3779B97F4A7C15ULL;
    const size_t reps = sizes[s] < (1 << 30) / 2 ? (1 << 30) / sizes[s] : 2;
    double best = 1e9;
    uint64_t sink = 0;
    for (int r = 0; r < 5; ++r) {
      const double t0 = now();
      for (size_t k = 0; k < reps; ++k) {
        __asm__ volatile("" : : "r"(p) : "memory");
        sink += popcount(p, n);
      }
      const double t = (now() - t0) / reps;
      best = t < best ? t : best;
    }
    printf("read + popcount, %6zu KiB: %6.1f GB/s (%d)\n", sizes[s] >> 10, sizes[s] / best / 1e9, (int)(sink & 1));
    free(p);
  }
  return 0;
}
