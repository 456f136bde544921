// gemm() (core/matmul.hpp) on the running SIMD path's kernel (core/gemm_kernels.cpp).
#include "core/gemm_kernels.hpp"
#include "core/matmul.hpp"

namespace attnlab {
namespace {

const GemmKernels& gemm_table() {
  static const GemmKernels& table = ATTNLAB_KERNELS(gemm_kernels);
  return table;
}

GemmFn<float> gemm_fn(float) {
  return gemm_table().f32;
}
GemmFn<double> gemm_fn(double) {
  return gemm_table().f64;
}

}  // namespace

template <class T>
void gemm(bool trans_a,
          bool trans_b,
          int64_t M,
          int64_t N,
          int64_t K,
          T alpha,
          const T* A,
          int64_t lda,
          const T* B,
          int64_t ldb,
          T beta,
          T* C,
          int64_t ldc) {
  gemm_fn(T())(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template void gemm<float>(bool,
                          bool,
                          int64_t,
                          int64_t,
                          int64_t,
                          float,
                          const float*,
                          int64_t,
                          const float*,
                          int64_t,
                          float,
                          float*,
                          int64_t);
template void gemm<double>(bool,
                           bool,
                           int64_t,
                           int64_t,
                           int64_t,
                           double,
                           const double*,
                           int64_t,
                           const double*,
                           int64_t,
                           double,
                           double*,
                           int64_t);

}  // namespace attnlab
