// The ceiling of a register-blocked GEMM micro-kernel on this core: C[MR x 16 NV] += A B with the
// A and B slivers resident in L1 (kc = 128 or 512 rows), no packing, no edges, no memory traffic
// beyond L1. Whatever a full GEMM loses below this rate is the memory hierarchy's (docs/
// benchmarks.md, "GEMM: the ceiling on this CPU"). AVX-512 only; not part of the build:
//
//   g++ -O3 -march=native experiments/probes/gemm_microkernel_ceiling.cpp -o /tmp/ceiling
//   taskset -c 0 /tmp/ceiling
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

// The shape of attnlab's micro-kernel (core/gemm_kernels.cpp): MR broadcast rows of A times NV
// vectors of B, MR x NV accumulators.
template <int MR, int NV>
__attribute__((noinline)) void micro_kernel(long kc, const float* a, const float* b, float* c) {
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (long k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + k * NV * 16 + v * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[k * MR + i]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      float* dst = c + i * NV * 16 + v * 16;
      _mm512_storeu_ps(dst, _mm512_add_ps(acc[i][v], _mm512_loadu_ps(dst)));
    }
}

template <int MR, int NV>
void run(long kc) {
  float* a = static_cast<float*>(aligned_alloc(64, sizeof(float) * kc * MR * 16));
  float* b = static_cast<float*>(aligned_alloc(64, sizeof(float) * kc * NV * 16));
  static float c[MR * NV * 16];
  for (long i = 0; i < kc * MR; ++i) a[i] = 1e-3f;
  for (long i = 0; i < kc * NV * 16; ++i) b[i] = 1e-3f;
  const long calls = (1L << 31) / (kc * MR * NV * 16 * 2) * 20;  // about 43 GFLOP
  const auto t0 = std::chrono::steady_clock::now();
  for (long r = 0; r < calls; ++r) micro_kernel<MR, NV>(kc, a, b, c);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("MR=%2d NV=%d kc=%3ld: %6.1f GFLOP/s\n", MR, NV, kc,
              calls * kc * MR * NV * 16 * 2 / s / 1e9);
  std::free(a);
  std::free(b);
}

int main() {
  run<8, 2>(128);
  run<12, 2>(128);
  run<14, 2>(128);
  run<8, 3>(128);
  run<6, 4>(128);
  run<4, 4>(128);
  run<8, 2>(512);
  run<12, 2>(512);
}
