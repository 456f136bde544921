// Matrix multiplication on a packed, register-blocked xsimd micro-kernel (BLIS structure;
// kernel in core/gemm.cpp, the tensor op in core/matmul.cpp).
//
// matmul(a, b, trans_a, trans_b) computes op(a) @ op(b) for the last two dimensions, where op
// transposes when its flag is set; leading (batch) dimensions broadcast like numpy, so
// [B, H, L, d] @ [d, e] and [B, H, L, d] @ [B, H, d, L] both work. Transposes cost nothing
// extra: they are absorbed by how the kernel reads or packs its operands. Threads split the
// batch when it balances, otherwise the output of each product. Results are bit-identical for
// any thread count: each output element is owned by one thread and accumulates over k in a
// fixed order.
#pragma once

#include <cstdint>

#include "core/tensor.hpp"

namespace attnlab {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// Raw GEMM for fused kernels: C = alpha * op(A) op(B) + beta * C, with op(A) M x K, op(B) K x N,
// row-major storage and leading dimensions lda/ldb/ldc (elements between consecutive rows of the
// stored matrix; A is stored K x M when trans_a, B is stored N x K when trans_b). beta == 0
// overwrites C without reading it (NaNs in C do not leak). Small products (below ~4M
// multiply-adds) and calls from inside a parallel_for body run on the calling thread; larger
// ones use the pool. Cheap for attention tiles: a 64 x 64 x 64 product reads A in place and
// packs only B (2.7 us, ~195 GFLOP/s on one Zen 5 core). Keeps two per-thread scratch
// buffers (up to KC x NC = 4 MiB for float) for reuse. Instantiated for float and double.
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
