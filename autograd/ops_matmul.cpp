// Matrix product. With C = op(A) op(B) (op transposes when its flag is set):
//   dA = dC op(B)^T            (trans_a = false)     dA = op(B) dC^T      (trans_a = true)
//   dB = op(A)^T dC            (trans_b = false)     dB = dC^T op(A)      (trans_b = true)
// expressed with matmul's own transpose flags (no transposed copies), then un-broadcast over
// the batch dimensions.
#include <algorithm>

#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"
#include "core/matmul.hpp"
#include "core/parallel.hpp"

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

// A linear layer on rows: y = x w^T + b with x [rows, in], w [out, in], b [out];
//   dx = dy w,   dw = dy^T x,   db = sum over rows of dy.
// One node instead of matmul + add: the GEMM accumulates onto rows pre-filled with b (beta = 1),
// which saves the add's pass over y and its buffer. The values are those of matmul(x, w^T) + b
// when in <= 512 (the GEMM's k slice: each element is the rounded product sum plus b, rounded),
// the gradients those of the two ops.
Var linear(const Var& x, const Var& w, const Var& b) {
  ATTNLAB_CHECK(x.dim() == 2 && w.dim() == 2 && b.dim() == 1 && x.shape()[1] == w.shape()[1] &&
                    b.shape()[0] == w.shape()[0],
                ShapeError,
                "linear: need x [rows, in], w [out, in], b [out], got ",
                x.shape(),
                ", ",
                w.shape(),
                ", ",
                b.shape());
  ATTNLAB_CHECK(x.dtype() == w.dtype() && x.dtype() == b.dtype(),
                DTypeError,
                "linear: dtypes differ: ",
                x.dtype(),
                ", ",
                w.dtype(),
                ", ",
                b.dtype());
  OpRecorder op("linear", {x, w, b});
  const int64_t rows = x.shape()[0], in = x.shape()[1], out = w.shape()[0];
  Tensor y = Tensor::empty({rows, out}, x.dtype());
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    const T* bp = b.value().data<T>();
    T* yp = y.data<T>();
    parallel_for(0, rows, std::max<int64_t>(1, 8192 / out), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) std::copy(bp, bp + out, yp + r * out);
    });
    attnlab::gemm<T>(false,
                     true,
                     rows,
                     out,
                     in,
                     T(1),
                     x.value().data<T>(),
                     in,
                     w.value().data<T>(),
                     in,
                     T(1),
                     yp,
                     out);
  });
  return op.output(y,
                   {op.needs_input_grad(1) ? x.value() : Tensor(),
                    op.needs_input_grad(0) ? w.value() : Tensor()},
                   [](const BackwardContext& c) {
                     const Tensor &xv = c.saved[0], &wv = c.saved[1], &g = c.grad();
                     return Grads{
                         if_needed(c, 0, [&] { return attnlab::matmul(g, wv, false, false); }),
                         if_needed(c, 1, [&] { return attnlab::matmul(g, xv, true, false); }),
                         if_needed(c, 2, [&] { return sum_to_shape(g, c.input_shape(2)); })};
                   });
}

}  // namespace attnlab::ag
