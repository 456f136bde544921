// The table of GEMM kernels one SIMD path provides (core/gemm_kernels.cpp; core/simd_dispatch.hpp).
#pragma once

#include <cstdint>

#include "core/simd_dispatch.hpp"

namespace attnlab {

template <class T>
using GemmFn = void (*)(bool trans_a,
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
                        int64_t ldc);

struct GemmKernels {
  GemmFn<float> f32;
  GemmFn<double> f64;
};

ATTNLAB_DECLARE_KERNELS(GemmKernels, gemm_kernels)

}  // namespace attnlab
