// Scans. The adjoint of a forward (decayed) prefix sum is the reverse (decayed) prefix sum of
// the output gradient, with the same decay: dx_t = sum_{s >= t} decay^(s-t) dh_s.
#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;

Var cumsum(const Var& x, int axis, bool reverse) {
  OpRecorder op("cumsum", {x});
  return op.output(
      attnlab::cumsum(x.value(), axis, reverse), {}, [axis, reverse](const BackwardContext& c) {
        return Grads{attnlab::cumsum(c.grad(), axis, !reverse)};
      });
}

Var decayed_scan(const Var& x, int axis, double decay, bool reverse) {
  OpRecorder op("decayed_scan", {x});
  return op.output(attnlab::decayed_scan(x.value(), axis, decay, reverse),
                   {},
                   [axis, decay, reverse](const BackwardContext& c) {
                     return Grads{attnlab::decayed_scan(c.grad(), axis, decay, !reverse)};
                   });
}

}  // namespace attnlab::ag
