// Matrix multiplication on a packed, register-blocked xsimd micro-kernel (BLIS structure).
//
// matmul(a, b, trans_a, trans_b) computes op(a) @ op(b) for the last two dimensions, where op
// transposes when its flag is set; leading (batch) dimensions broadcast like numpy, so
// [B, H, L, d] @ [d, e] and [B, H, L, d] @ [B, H, d, L] both work. Transposes cost nothing: they
// are absorbed by the packing routines. Results are bit-identical for any thread count: each
// output element is owned by one thread and accumulates over k in a fixed order.
#pragma once

#include <cstdint>

#include "core/tensor.hpp"

namespace attnlab {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// Raw GEMM for fused kernels: C = alpha * op(A) op(B) + beta * C, with op(A) M x K, op(B) K x N,
// row-major storage and leading dimensions lda/ldb/ldc (elements between consecutive rows of the
// stored matrix). beta == 0 overwrites C without reading it (NaNs in C do not leak). Runs on the
// thread pool unless called inside a parallel region. Instantiated for float and double.
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
          int64_t ldc);

}  // namespace attnlab
