// Selection and masking ops, the straight-through estimator, casts, and the non-differentiable
// ops (argmax, one_hot) whose outputs are flagged as such.
#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;
using detail::if_needed;

// y = cond ? a : b;  da = dy * cond,  db = dy * (1 - cond)   (un-broadcast)
Var where(const Tensor& cond, const Var& a, const Var& b) {
  OpRecorder op("where", {a, b});
  Tensor y = attnlab::where(cond, a.value(), b.value());
  return op.output(y, {cond}, [](const BackwardContext& c) {
    const Tensor& m = c.saved[0];
    const Tensor zero = attnlab::zeros({}, c.grad().dtype());
    return Grads{
        if_needed(
            c,
            0,
            [&] { return sum_to_shape(attnlab::where(m, c.grad(), zero), c.input_shape(0)); }),
        if_needed(c, 1, [&] {
          return sum_to_shape(attnlab::where(m, zero, c.grad()), c.input_shape(1));
        })};
  });
}

// y = mask ? value : x;  dx = dy * (1 - mask)
Var masked_fill(const Var& x, const Tensor& mask, double value) {
  ATTNLAB_CHECK(mask.defined(), ValueError, "masked_fill: undefined mask");
  ATTNLAB_CHECK(broadcast_shapes(x.shape(), mask.shape(), "masked_fill") == x.shape(),
                ShapeError,
                "masked_fill: mask ",
                mask.shape(),
                " must broadcast to the input ",
                x.shape());
  OpRecorder op("masked_fill", {x});
  const Tensor m = mask.dtype() == x.dtype() ? mask : mask.to(x.dtype());
  Tensor y = attnlab::where(m, attnlab::full({}, value, x.dtype()), x.value());
  return op.output(y, {m}, [](const BackwardContext& c) {
    return Grads{attnlab::where(c.saved[0], attnlab::zeros({}, c.grad().dtype()), c.grad())};
  });
}

// y = hard (value),  d soft = dy,  d hard = 0: the straight-through estimator.
Var straight_through(const Var& hard, const Var& soft) {
  ATTNLAB_CHECK(hard.shape() == soft.shape() && hard.dtype() == soft.dtype(),
                ShapeError,
                "straight_through: hard ",
                hard.shape(),
                " ",
                hard.dtype(),
                " and soft ",
                soft.shape(),
                " ",
                soft.dtype(),
                " must match");
  OpRecorder op("straight_through", {soft});
  return op.output(hard.value(), {}, [](const BackwardContext& c) { return Grads{c.grad()}; });
}

// y = x as dtype;  dx = dy as x's dtype
Var cast(const Var& x, DType dtype) {
  ATTNLAB_CHECK(is_floating(dtype),
                DTypeError,
                "cast: differentiable casts are between float "
                "types, got ",
                dtype_name(dtype));
  if (x.dtype() == dtype)
    return x;
  OpRecorder op("cast", {x});
  return op.output(x.value().to(dtype), {}, [from = x.dtype()](const BackwardContext& c) {
    return Grads{c.grad().to(from)};
  });
}

Var argmax(const Var& x, int axis, bool keepdim) {
  return non_differentiable("argmax", attnlab::argmax(x.value(), axis, keepdim));
}

Var one_hot(const Var& index, int64_t num_classes, DType dtype) {
  return non_differentiable("one_hot", attnlab::one_hot(index.value(), num_classes, dtype));
}

}  // namespace attnlab::ag
