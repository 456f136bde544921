// matmul: validation, numpy-style batch broadcasting and threading over the batch, on top of the
// gemm kernel in core/gemm.cpp.
#include "core/matmul.hpp"

#include <algorithm>
#include <vector>

#include "core/parallel.hpp"

namespace attnlab {
namespace {

// Element offset (in matrices) of each broadcast batch index into an operand with batch shape
// `own` (right-aligned against `batch`; its size-1 dimensions repeat).
std::vector<int64_t> batch_offsets(const Shape& batch, const Shape& own) {
  const int64_t count = batch.numel();
  std::vector<int64_t> off(static_cast<std::size_t>(count));
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
    off[static_cast<std::size_t>(t)] = idx;
  }
  return off;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  ATTNLAB_CHECK(a.defined() && b.defined(), ValueError, "matmul: undefined tensor");
  ATTNLAB_CHECK(a.dim() >= 2 && b.dim() >= 2,
                ShapeError,
                "matmul: both operands need at least 2 dimensions, got lhs ",
                a.shape(),
                " and rhs ",
                b.shape());
  ATTNLAB_CHECK(is_floating(a.dtype()) && is_floating(b.dtype()),
                DTypeError,
                "matmul: expected float32 or float64 operands, got lhs ",
                a.dtype(),
                " ",
                a.shape(),
                " and rhs ",
                b.dtype(),
                " ",
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
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  const Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape batch;
  const int rank = std::max(batch_a.rank(), batch_b.rank());
  for (int i = 0; i < rank; ++i) {
    const int ia = i - (rank - batch_a.rank()), ib = i - (rank - batch_b.rank());
    const int64_t da = ia >= 0 ? batch_a[ia] : 1, db = ib >= 0 ? batch_b[ib] : 1;
    ATTNLAB_CHECK(da == db || da == 1 || db == 1,
                  ShapeError,
                  "matmul: batch dimensions cannot be broadcast: lhs ",
                  a.shape(),
                  " vs rhs ",
                  b.shape(),
                  " (trans_a=",
                  trans_a,
                  ", trans_b=",
                  trans_b,
                  ")");
    batch.push_back(da == 1 ? db : da);
  }
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  if (out.numel() == 0)
    return out;
  const int64_t count = batch.numel();
  const std::vector<int64_t> off_a = batch_offsets(batch, batch_a);
  const std::vector<int64_t> off_b = batch_offsets(batch, batch_b);
  // Threads take whole matrices when that balances (or when the matrices are too small for gemm
  // to split); otherwise each gemm splits its own output (e.g. 3 large matrices on 2 threads).
  const int64_t threads = num_threads();
  const bool over_batch =
      count > 1 && (count % threads == 0 || count >= 4 * threads || M * N * K < (int64_t{1} << 22));
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
              ap + off_a[static_cast<std::size_t>(t)] * ar * ac,
              ac,
              bp + off_b[static_cast<std::size_t>(t)] * br * bc,
              bc,
              T(0),
              cp + t * M * N,
              N);
    };
    if (over_batch) {
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
