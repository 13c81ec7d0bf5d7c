// Measured fp32 FMA throughput of one core: 12 independent FMA chains (enough to cover the FMA
// latency on current x86 cores) in 256-bit (AVX2) and 512-bit (AVX-512F) registers, timed in thread
// CPU time so that other processes on a shared machine do not count. Prints GFLOP/s per core for
// each width. Built by bench/step-profile.mjs with `gcc -O2 -mavx2 -mfma -mavx512f`.
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// 12 accumulators in registers (a 4-cycle FMA latency x 2 FMA pipes needs at least 8 in flight;
// AVX2 has 16 ymm registers, so 12 + the two operands fit without spills).
#define CHAINS 12
#define DECL(T, set) T a0 = set(0), a1 = set(1), a2 = set(2), a3 = set(3), a4 = set(4), a5 = set(5), \
  a6 = set(6), a7 = set(7), a8 = set(8), a9 = set(9), a10 = set(10), a11 = set(11)
#define STEP(F) a0 = F(a0, m, c); a1 = F(a1, m, c); a2 = F(a2, m, c); a3 = F(a3, m, c); \
  a4 = F(a4, m, c); a5 = F(a5, m, c); a6 = F(a6, m, c); a7 = F(a7, m, c); a8 = F(a8, m, c); \
  a9 = F(a9, m, c); a10 = F(a10, m, c); a11 = F(a11, m, c)
#define SUM(A) A(A(A(a0, a1), A(a2, a3)), A(A(A(a4, a5), A(a6, a7)), A(A(a8, a9), A(a10, a11))))

__attribute__((noinline)) static float run256(long iters) {
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#define S256(i) _mm256_set1_ps((float)(i))
  DECL(__m256, S256);
  for (long n = 0; n < iters; n++) {
    __asm__ volatile("" ::: "memory");
    STEP(_mm256_fmadd_ps);
  }
  return _mm256_cvtss_f32(SUM(_mm256_add_ps));
}

__attribute__((target("avx512f"), noinline)) static float run512(long iters) {
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define S512(i) _mm512_set1_ps((float)(i))
  DECL(__m512, S512);
  for (long n = 0; n < iters; n++) {
    __asm__ volatile("" ::: "memory");
    STEP(_mm512_fmadd_ps);
  }
  return _mm512_reduce_add_ps(SUM(_mm512_add_ps));
}

int main(void) {
  const long iters = 20000000;
  double best256 = 0, best512 = 0;
  float sink = 0;
  for (int r = 0; r < 3; r++) {
    double t0 = cpu_s();
    sink += run256(iters);
    double g = 2.0 * 8 * CHAINS * iters / (cpu_s() - t0) / 1e9;
    if (g > best256) best256 = g;
    if (__builtin_cpu_supports("avx512f")) {
      t0 = cpu_s();
      sink += run512(iters);
      g = 2.0 * 16 * CHAINS * iters / (cpu_s() - t0) / 1e9;
      if (g > best512) best512 = g;
    }
  }
  printf("{\"avx2GflopsPerCore\": %.1f, \"avx512GflopsPerCore\": %.1f, \"sink\": %g}\n", best256, best512, sink > 0 ? 1.0 : 0.0);
  return 0;
}
