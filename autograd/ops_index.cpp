// Index ops: lookups and their scatter-add gradients. Indices are int64 tensors (never
// differentiable); out-of-range indices are rejected by the core kernels.
#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;

// y = take(x, index, axis);  dx = index_add(zeros(x.shape), axis, index, dy)
Var index_select(const Var& x, int axis, const Tensor& index) {
  OpRecorder op("index_select", {x});
  const int ax = normalize_axis(axis, x.dim(), "index_select");
  Tensor y = attnlab::index_select(x.value(), ax, index);
  return op.output(y, {index}, [ax](const BackwardContext& c) {
    return Grads{attnlab::index_add(c.input_shape(0), ax, c.saved[0], c.grad())};
  });
}

// y = table[ids];  dtable = index_add(zeros, 0, ids, dy) with row padding_idx zeroed
Var embedding(const Var& table, const Tensor& ids, int64_t padding_idx) {
  ATTNLAB_CHECK(
      table.dim() == 2, ShapeError, "embedding: table must be [num, dim], got ", table.shape());
  ATTNLAB_CHECK(padding_idx < table.shape()[0],
                ValueError,
                "embedding: padding_idx ",
                padding_idx,
                " out of range for a table of ",
                table.shape()[0],
                " rows");
  if (padding_idx < 0)
    return index_select(table, 0, ids);
  OpRecorder op("embedding", {table});
  Tensor y = attnlab::index_select(table.value(), 0, ids);
  return op.output(y, {ids}, [padding_idx](const BackwardContext& c) {
    Tensor g = attnlab::index_add(c.input_shape(0), 0, c.saved[0], c.grad());
    const int64_t d = g.shape()[1];
    dispatch_float(g.dtype(), "embedding", [&](auto tag) {
      using T = decltype(tag);
      T* row = g.data<T>() + padding_idx * d;
      for (int64_t i = 0; i < d; ++i) row[i] = T(0);
    });
    return Grads{g};
  });
}

// y = gather(x, axis, index);  dx = scatter_add(zeros(x.shape), axis, index, dy)
Var gather(const Var& x, int axis, const Tensor& index) {
  OpRecorder op("gather", {x});
  const int ax = normalize_axis(axis, x.dim(), "gather");
  Tensor y = attnlab::gather(x.value(), ax, index);
  return op.output(y, {index}, [ax](const BackwardContext& c) {
    return Grads{attnlab::scatter_add(c.input_shape(0), ax, c.saved[0], c.grad())};
  });
}

}  // namespace attnlab::ag
