// softmax / log_softmax along an axis. Both save only their output:
//   softmax:      dx = y * (dy - sum(dy * y))
//   log_softmax:  dx = dy - exp(y) * sum(dy)
#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;

Var softmax(const Var& x, int axis) {
  OpRecorder op("softmax", {x});
  Tensor y = attnlab::softmax(x.value(), axis);
  return op.output(y, {y}, [axis](const BackwardContext& c) {
    return Grads{attnlab::softmax_backward(c.saved[0], c.grad(), axis)};
  });
}

Var log_softmax(const Var& x, int axis) {
  OpRecorder op("log_softmax", {x});
  Tensor y = attnlab::log_softmax(x.value(), axis);
  return op.output(y, {y}, [axis](const BackwardContext& c) {
    return Grads{attnlab::log_softmax_backward(c.saved[0], c.grad(), axis)};
  });
}

}  // namespace attnlab::ag
