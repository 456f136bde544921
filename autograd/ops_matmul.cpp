// Matrix product. With C = op(A) op(B) (op transposes when its flag is set):
//   dA = dC op(B)^T            (trans_a = false)     dA = op(B) dC^T      (trans_a = true)
//   dB = op(A)^T dC            (trans_b = false)     dB = dC^T op(A)      (trans_b = true)
// expressed with matmul's own transpose flags (no transposed copies), then un-broadcast over
// the batch dimensions.
#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;
using detail::if_needed;

Var matmul(const Var& a, const Var& b, bool trans_a, bool trans_b) {
  OpRecorder op("matmul", {a, b});
  Tensor y = attnlab::matmul(a.value(), b.value(), trans_a, trans_b);
  return op.output(y,
                   {op.needs_input_grad(1) ? a.value() : Tensor(),
                    op.needs_input_grad(0) ? b.value() : Tensor()},
                   [trans_a, trans_b](const BackwardContext& c) {
                     const Tensor &av = c.saved[0], &bv = c.saved[1], &g = c.grad();
                     return Grads{if_needed(c,
                                            0,
                                            [&] {
                                              Tensor d =
                                                  trans_a ? attnlab::matmul(bv, g, trans_b, true)
                                                          : attnlab::matmul(g, bv, false, !trans_b);
                                              return sum_to_shape(d, c.input_shape(0));
                                            }),
                                  if_needed(c, 1, [&] {
                                    Tensor d = trans_b ? attnlab::matmul(g, av, true, trans_a)
                                                       : attnlab::matmul(av, g, !trans_a, false);
                                    return sum_to_shape(d, c.input_shape(1));
                                  })};
                   });
}

}  // namespace attnlab::ag
