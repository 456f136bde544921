// Reductions and their gradients: the output gradient is broadcast back over the reduced axes.
#include <cmath>

#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;

namespace {
// Shape of a reduction's output with the reduced axes kept as size 1 (so dy broadcasts over x).
Shape kept_shape(const Shape& x, std::vector<int> axes) {
  Shape s = x;
  for (int& a : axes) s[normalize_axis(a, x.rank(), "sum")] = 1;
  return s;
}

// The output gradient reshaped to keepdim form and expanded over x.
Tensor expand_grad(const Tensor& g, const Shape& kept, const Shape& x) {
  return attnlab::broadcast_to(g.reshape(kept), x);
}

// max/min along an axis: the gradient goes to the positions equal to the extremum, split equally
// among ties.
Var extreme(const Var& x, int axis, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  OpRecorder op(name, {x});
  const int ax = normalize_axis(axis, x.dim(), name);
  Tensor y = is_max ? attnlab::max(x.value(), ax, true) : attnlab::min(x.value(), ax, true);
  const Shape kept = y.shape();
  Tensor out = keepdim ? y : squeeze(y, ax);
  return op.output(out, {x.value(), y}, [ax, kept](const BackwardContext& c) {
    const Tensor &xv = c.saved[0], &yv = c.saved[1];
    Tensor hit = attnlab::eq(xv, yv);
    Tensor share = attnlab::div(hit, attnlab::sum(hit, ax, true));
    return Grads{attnlab::mul(share, c.grad().reshape(kept))};
  });
}
}  // namespace


// y = sum(x);  dx = dy (broadcast)
Var sum(const Var& x) {
  OpRecorder op("sum", {x});
  return op.output(attnlab::sum(x.value()), {}, [](const BackwardContext& c) {
    return Grads{attnlab::full(c.input_shape(0), c.grad().item(), c.grad().dtype())};
  });
}

Var sum(const Var& x, int axis, bool keepdim) {
  return sum(x, std::vector<int>{axis}, keepdim);
}

// y = sum(x, axes);  dx = dy broadcast over the axes
Var sum(const Var& x, const std::vector<int>& axes, bool keepdim) {
  OpRecorder op("sum", {x});
  Tensor y = attnlab::sum(x.value(), axes, keepdim);
  return op.output(y, {}, [kept = kept_shape(x.shape(), axes)](const BackwardContext& c) {
    return Grads{expand_grad(c.grad(), kept, c.input_shape(0))};
  });
}

// y = mean(x);  dx = dy / n
Var mean(const Var& x) {
  ATTNLAB_CHECK(x.numel() > 0, ShapeError, "mean: empty tensor of shape ", x.shape());
  return div(sum(x), static_cast<double>(x.numel()));
}

Var mean(const Var& x, int axis, bool keepdim) {
  return mean(x, std::vector<int>{axis}, keepdim);
}

Var mean(const Var& x, const std::vector<int>& axes, bool keepdim) {
  double count = 1;
  for (int a : axes) count *= static_cast<double>(x.shape()[normalize_axis(a, x.dim(), "mean")]);
  ATTNLAB_CHECK(count > 0, ShapeError, "mean: empty axes of shape ", x.shape());
  return div(sum(x, axes, keepdim), count);
}

Var max(const Var& x, int axis, bool keepdim) {
  return extreme(x, axis, keepdim, true);
}
Var min(const Var& x, int axis, bool keepdim) {
  return extreme(x, axis, keepdim, false);
}

// y = log(sum(exp(x), axis));  dx = dy * softmax(x, axis) = dy * exp(x - y)
Var logsumexp(const Var& x, int axis, bool keepdim) {
  OpRecorder op("logsumexp", {x});
  const int ax = normalize_axis(axis, x.dim(), "logsumexp");
  Tensor y = attnlab::logsumexp(x.value(), ax, true);
  const Shape kept = y.shape();
  Tensor out = keepdim ? y : squeeze(y, ax);
  return op.output(out, {x.value(), y}, [kept](const BackwardContext& c) {
    const Tensor &xv = c.saved[0], &yv = c.saved[1];
    // exp(x - y) is the softmax; rows whose logsumexp is -inf (all -inf) get no gradient.
    Tensor p = attnlab::nan_to_num(attnlab::exp(attnlab::sub(xv, yv)), 0.0);
    return Grads{attnlab::mul(p, c.grad().reshape(kept))};
  });
}

// y = |x|_2 along axis;  dx = dy * x / y  (0 where y = 0: the subgradient of least norm)
Var norm(const Var& x, int axis, bool keepdim) {
  OpRecorder op("norm", {x});
  const int ax = normalize_axis(axis, x.dim(), "norm");
  Tensor y = attnlab::norm(x.value(), ax, true);
  const Shape kept = y.shape();
  Tensor out = keepdim ? y : squeeze(y, ax);
  return op.output(out, {x.value(), y}, [kept](const BackwardContext& c) {
    const Tensor &xv = c.saved[0], &yv = c.saved[1];
    Tensor safe = attnlab::where(attnlab::eq(yv, 0.0), attnlab::ones_like(yv), yv);
    return Grads{attnlab::mul(attnlab::div(xv, safe), c.grad().reshape(kept))};
  });
}

// y = x broadcast to shape;  dx = sum_to_shape(dy, x.shape)
Var broadcast_to(const Var& x, const Shape& shape) {
  OpRecorder op("broadcast_to", {x});
  return op.output(attnlab::broadcast_to(x.value(), shape), {}, [](const BackwardContext& c) {
    return Grads{attnlab::sum_to_shape(c.grad(), c.input_shape(0))};
  });
}

// y = sum_to_shape(x, shape);  dx = dy broadcast back to x.shape
Var sum_to_shape(const Var& x, const Shape& shape) {
  OpRecorder op("sum_to_shape", {x});
  return op.output(
      attnlab::sum_to_shape(x.value(), shape).clone(), {}, [](const BackwardContext& c) {
        return Grads{attnlab::broadcast_to(c.grad(), c.input_shape(0))};
      });
}

}  // namespace attnlab::ag
