// GEMM: the GotoBLAS/BLIS loop structure with an xsimd register-blocked micro-kernel.
//
//   for pc over K in KC slices:            pack op(B)[pc, :] into NR-wide slivers (all of N)
//     parallel for ic over M in MC blocks  (x groups of NR-slivers when M alone is too short)
//       pack op(A)[ic, pc] into MR-tall slivers
//       for jr over the slivers of B:      the B sliver stays in L1 ...
//         for ir over the slivers of A:    ... while A slivers stream from L2
//           micro-kernel: C[MR x NR] (+)= A_sliver B_sliver, MR x NV vector accumulators
//
// Transposes only change the packing reads. Edges are zero-padded in the packed buffers and
// written back through a small tile, so the micro-kernel never has scalar fringe code. Each C
// element is produced by one task, accumulating k in a fixed order: results do not depend on the
// thread count. See research/autodiff.md section 3.9.
#include "core/matmul.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/parallel.hpp"
#include "core/simd.hpp"

namespace attnlab {
namespace gemm_detail {

// Register blocking: MR rows x NV vectors. On AVX-512 (32 zmm): 12 x 2 -> 24 accumulators, 2 B
// loads and one broadcast; the tile is 12 x 32 floats or 12 x 16 doubles.
template <class T>
struct Blocking {
  static constexpr int64_t W = simd::width<T>();
  static constexpr int64_t MR = 12;
  static constexpr int64_t NV = 2;
  static constexpr int64_t NR = NV * W;
  static constexpr int64_t KC = 256;  // A sliver (12 KiB) + B sliver (32 KiB) fit the 48 KiB L1
  static constexpr int64_t MC = 144;  // packed A block (144 KiB for float) stays in L2
};

template <class T>
struct AlignedBuffer {
  std::unique_ptr<T[], void (*)(void*)> data{nullptr, std::free};
  int64_t size = 0;
  T* get(int64_t n) {
    if (n > size) {
      const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(T) + 63) / 64 * 64;
      data.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
      if (!data)
        throw std::bad_alloc();
      size = n;
    }
    return data.get();
  }
};

// op(A)(i, k) and op(B)(k, j) for row-major storage with leading dimensions.
template <class T>
inline T at_a(const T* a, int64_t lda, bool trans, int64_t i, int64_t k) {
  return trans ? a[k * lda + i] : a[i * lda + k];
}

// Packs op(A)[i0 : i0+mc, k0 : k0+kc] into MR-row slivers: sliver s holds, for each k, the MR
// values of rows s*MR .. s*MR+MR-1 (zero-padded).
template <class T>
void pack_a(
    const T* a, int64_t lda, bool trans, int64_t i0, int64_t mc, int64_t k0, int64_t kc, T* dst) {
  constexpr int64_t MR = Blocking<T>::MR;
  for (int64_t s = 0; s < mc; s += MR) {
    const int64_t rows = std::min(MR, mc - s);
    T* out = dst + s * kc;
    if (!trans) {
      for (int64_t r = 0; r < rows; ++r) {
        const T* src = a + (i0 + s + r) * lda + k0;
        for (int64_t k = 0; k < kc; ++k) out[k * MR + r] = src[k];
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const T* src = a + (k0 + k) * lda + i0 + s;
        for (int64_t r = 0; r < rows; ++r) out[k * MR + r] = src[r];
      }
    }
    if (rows < MR) {
      for (int64_t k = 0; k < kc; ++k) {
        for (int64_t r = rows; r < MR; ++r) out[k * MR + r] = T(0);
      }
    }
  }
}

// Packs op(B)[k0 : k0+kc, j0 : j0+nc] into NR-column slivers: sliver s holds, for each k, the
// NR values of columns s*NR .. s*NR+NR-1 (zero-padded).
template <class T>
void pack_b(
    const T* b, int64_t ldb, bool trans, int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) {
  constexpr int64_t NR = Blocking<T>::NR;
  const int64_t slivers = (nc + NR - 1) / NR;
  parallel_for(0, slivers, 8, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t cols = std::min(NR, nc - s * NR);
      T* out = dst + s * NR * kc;
      if (!trans) {
        for (int64_t k = 0; k < kc; ++k) {
          const T* src = b + (k0 + k) * ldb + j0 + s * NR;
          T* o = out + k * NR;
          std::memcpy(o, src, sizeof(T) * cols);
          for (int64_t c = cols; c < NR; ++c) o[c] = T(0);
        }
      } else {
        for (int64_t c = 0; c < cols; ++c) {
          const T* src = b + (j0 + s * NR + c) * ldb + k0;
          for (int64_t k = 0; k < kc; ++k) out[k * NR + c] = src[k];
        }
        for (int64_t k = 0; k < kc; ++k) {
          for (int64_t c = cols; c < NR; ++c) out[k * NR + c] = T(0);
        }
      }
    }
  });
}

// C[m x n] = alpha * (A_sliver B_sliver) + beta * C, m <= MR, n <= NR. beta == 0 never reads C.
template <class T>
inline void micro_kernel(int64_t kc,
                         const T* __restrict a,
                         const T* __restrict b,
                         T* c,
                         int64_t ldc,
                         T alpha,
                         T beta,
                         int64_t m,
                         int64_t n) {
  using B = simd::Batch<T>;
  constexpr int64_t MR = Blocking<T>::MR, NV = Blocking<T>::NV, W = Blocking<T>::W;
  constexpr int64_t NR = Blocking<T>::NR;
  B acc[MR][NV];
#pragma GCC unroll 12
  for (int64_t i = 0; i < MR; ++i) {
#pragma GCC unroll 2
    for (int64_t v = 0; v < NV; ++v) acc[i][v] = B(T(0));
  }
  for (int64_t k = 0; k < kc; ++k) {
    B bv[NV];
#pragma GCC unroll 2
    for (int64_t v = 0; v < NV; ++v) bv[v] = B::load_aligned(b + k * NR + v * W);
#pragma GCC unroll 12
    for (int64_t i = 0; i < MR; ++i) {
      const B ai(a[k * MR + i]);
#pragma GCC unroll 2
      for (int64_t v = 0; v < NV; ++v) acc[i][v] = xsimd::fma(ai, bv[v], acc[i][v]);
    }
  }
  const B va(alpha), vb(beta);
  if (m == MR && n == NR) {
    for (int64_t i = 0; i < MR; ++i) {
      for (int64_t v = 0; v < NV; ++v) {
        T* dst = c + i * ldc + v * W;
        const B r =
            beta == T(0) ? acc[i][v] * va : xsimd::fma(acc[i][v], va, vb * B::load_unaligned(dst));
        r.store_unaligned(dst);
      }
    }
    return;
  }
  alignas(64) T tile[MR * NR];
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t v = 0; v < NV; ++v) (acc[i][v] * va).store_aligned(tile + i * NR + v * W);
  }
  for (int64_t i = 0; i < m; ++i) {
    T* dst = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) {
      dst[j] = beta == T(0) ? tile[i * NR + j] : tile[i * NR + j] + beta * dst[j];
    }
  }
}

template <class T>
void gemm_impl(bool ta,
               bool tb,
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
  using Blk = Blocking<T>;
  constexpr int64_t MR = Blk::MR, NR = Blk::NR, KC = Blk::KC, MC = Blk::MC;
  if (M <= 0 || N <= 0)
    return;
  if (K <= 0 || alpha == T(0)) {  // C = beta * C (beta == 0: overwrite, NaNs in C do not leak)
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    }
    return;
  }
  thread_local AlignedBuffer<T> packed_b;
  const int64_t n_slivers = (N + NR - 1) / NR;
  const int64_t m_blocks = (M + MC - 1) / MC;
  // Split the columns too when there are fewer row blocks than threads (tall-skinny B, small M).
  const int64_t threads = in_parallel_region() ? 1 : num_threads();
  const int64_t n_groups =
      std::min<int64_t>(n_slivers, std::max<int64_t>(1, (threads + m_blocks - 1) / m_blocks));
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc);
    T* bp = packed_b.get(n_slivers * NR * kc);
    pack_b(B, ldb, tb, pc, kc, 0, N, bp);
    const T beta_pc = pc == 0 ? beta : T(1);
    parallel_for(0, m_blocks * n_groups, 1, [&](int64_t t0, int64_t t1) {
      thread_local AlignedBuffer<T> packed_a;
      for (int64_t task = t0; task < t1; ++task) {
        const int64_t mb = task / n_groups, ng = task % n_groups;
        const int64_t i0 = mb * MC, mc = std::min(MC, M - i0);
        const int64_t s0 = n_slivers * ng / n_groups, s1 = n_slivers * (ng + 1) / n_groups;
        T* ap = packed_a.get(((mc + MR - 1) / MR) * MR * kc);
        pack_a(A, lda, ta, i0, mc, pc, kc, ap);
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t j = s * NR, n = std::min(NR, N - j);
          const T* bs = bp + s * NR * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            micro_kernel<T>(kc,
                            ap + ir * kc,
                            bs,
                            C + (i0 + ir) * ldc + j,
                            ldc,
                            alpha,
                            beta_pc,
                            std::min(MR, mc - ir),
                            n);
          }
        }
      }
    });
  }
}

}  // namespace gemm_detail

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
  gemm_detail::gemm_impl<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  ATTNLAB_CHECK(a.defined() && b.defined(), ValueError, "matmul: undefined tensor");
  ATTNLAB_CHECK(a.dim() >= 2 && b.dim() >= 2,
                ShapeError,
                "matmul: both operands need at least 2 dimensions, got lhs ",
                a.shape(),
                " and rhs ",
                b.shape());
  ATTNLAB_CHECK(a.dtype() == b.dtype(),
                DTypeError,
                "matmul: dtypes differ: lhs ",
                a.dtype(),
                " ",
                a.shape(),
                " vs rhs ",
                b.dtype(),
                " ",
                b.shape());
  const int64_t ar = a.shape()[a.dim() - 2], ac = a.shape()[a.dim() - 1];
  const int64_t br = b.shape()[b.dim() - 2], bc = b.shape()[b.dim() - 1];
  const int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
  const int64_t Kb = trans_b ? bc : br, N = trans_b ? br : bc;
  ATTNLAB_CHECK(K == Kb,
                ShapeError,
                "matmul: inner dimensions differ: lhs ",
                a.shape(),
                " vs rhs ",
                b.shape(),
                " (trans_a=",
                trans_a,
                ", trans_b=",
                trans_b,
                ")");
  Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  const int64_t count = batch.numel();
  if (out.numel() == 0)
    return out;
  // Offsets of each broadcast batch entry into a and b.
  auto offsets = [&](const Shape& own) {
    std::vector<int64_t> off(count);
    const int lead = batch.rank() - own.rank();
    for (int64_t t = 0; t < count; ++t) {
      int64_t rem = t, idx = 0, stride = 1;
      for (int d = batch.rank() - 1; d >= 0; --d) {
        const int64_t coord = rem % batch[d];
        rem /= batch[d];
        const int od = d - lead;
        if (od >= 0) {
          idx += (own[od] == 1 ? 0 : coord) * stride;
          stride *= own[od];
        }
      }
      off[t] = idx;
    }
    return off;
  };
  const std::vector<int64_t> off_a = offsets(batch_a), off_b = offsets(batch_b);
  dispatch_float(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* cp = out.data<T>();
    auto one = [&](int64_t t) {
      gemm<T>(trans_a,
              trans_b,
              M,
              N,
              K,
              T(1),
              ap + off_a[t] * ar * ac,
              ac,
              bp + off_b[t] * br * bc,
              bc,
              T(0),
              cp + t * M * N,
              N);
    };
    if (count >= num_threads() && count > 1) {
      parallel_for(0, count, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) one(t);
      });
    } else {
      for (int64_t t = 0; t < count; ++t) one(t);
    }
  });
  return out;
}

}  // namespace attnlab
