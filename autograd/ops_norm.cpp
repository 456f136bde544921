// Layer normalisation over the last axis as one fused op (it runs at every block of every model,
// and the composed form would record nine nodes and save four full-size tensors).
//   forward:  mu = mean(x), rstd = 1 / sqrt(var(x) + eps), xhat = (x - mu) * rstd,
//             y = xhat * w + b
//   backward: with gy = dy * w (or dy without a weight), per row of length D:
//             dx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat))
//             dw = sum over rows of dy * xhat,   db = sum over rows of dy
// Saves xhat and rstd (one scalar per row).
#include <cmath>
#include <vector>

#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"
#include "core/parallel.hpp"

namespace attnlab::ag {

using detail::Grads;

namespace {

// xhat and rstd of every row, and y = xhat * w + b (rounded like the two element-wise ops it
// replaces: the product to T, then the sum).
template <class T>
void normalize_rows(const T* x,
                    const T* w,
                    const T* b,
                    T* xhat,
                    T* rstd,
                    T* y,
                    int64_t rows,
                    int64_t d,
                    double eps) {
  parallel_for(
      0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, d)), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const T* xr = x + r * d;
          double mean = 0;
          for (int64_t i = 0; i < d; ++i) mean += xr[i];
          mean /= static_cast<double>(d);
          double var = 0;  // two-pass: no cancellation from E[x^2] - E[x]^2
          for (int64_t i = 0; i < d; ++i) {
            const double c = xr[i] - mean;
            var += c * c;
          }
          var /= static_cast<double>(d);
          const double rs = 1.0 / std::sqrt(var + eps);
          rstd[r] = static_cast<T>(rs);
          T* out = xhat + r * d;
          T* yr = y + r * d;
          for (int64_t i = 0; i < d; ++i) {
            out[i] = static_cast<T>((xr[i] - mean) * rs);
            const T scaled = out[i] * w[i];
            yr[i] = scaled + b[i];
          }
        }
      });
}

// dx from dy, with gy = dy * w formed row by row (rounded to T as the element-wise product).
template <class T>
void backward_rows(
    const T* dy, const T* w, const T* xhat, const T* rstd, T* dx, int64_t rows, int64_t d) {
  parallel_for(
      0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, d)), [&](int64_t lo, int64_t hi) {
        std::vector<T> gy(static_cast<std::size_t>(d));
        T* g = gy.data();
        for (int64_t r = lo; r < hi; ++r) {
          const T *dyr = dy + r * d, *xh = xhat + r * d;
          for (int64_t i = 0; i < d; ++i) g[i] = dyr[i] * w[i];
          double mg = 0, mgx = 0;
          for (int64_t i = 0; i < d; ++i) {
            mg += g[i];
            mgx += static_cast<double>(g[i]) * xh[i];
          }
          mg /= static_cast<double>(d);
          mgx /= static_cast<double>(d);
          T* out = dx + r * d;
          for (int64_t i = 0; i < d; ++i) {
            out[i] = static_cast<T>(rstd[r] * (g[i] - mg - xh[i] * mgx));
          }
        }
      });
}

}  // namespace

Var layer_norm(const Var& x, const Var& weight, const Var& bias, double eps) {
  ATTNLAB_CHECK(x.dim() >= 1 && x.shape().back() > 0,
                ShapeError,
                "layer_norm: input must have a non-empty last axis, got ",
                x.shape());
  const int64_t d = x.shape().back();
  for (const Var* p : {&weight, &bias}) {
    if (!p->defined())
      continue;
    ATTNLAB_CHECK(p->shape() == Shape{d},
                  ShapeError,
                  "layer_norm: weight/bias must be [",
                  d,
                  "] for input ",
                  x.shape(),
                  ", got ",
                  p->shape());
    ATTNLAB_CHECK(p->dtype() == x.dtype(),
                  DTypeError,
                  "layer_norm: dtypes differ: input ",
                  x.dtype(),
                  ", weight/bias ",
                  p->dtype());
  }
  ATTNLAB_CHECK(
      eps > 0 && std::isfinite(eps), ValueError, "layer_norm: eps must be positive, got ", eps);
  const Var w = weight.defined() ? weight : constant(attnlab::ones({d}, x.dtype()));
  const Var b = bias.defined() ? bias : constant(attnlab::zeros({d}, x.dtype()));
  OpRecorder op("layer_norm", {x, w, b});
  const int64_t rows = x.numel() / d;
  Shape row_shape = x.shape();
  row_shape[row_shape.rank() - 1] = 1;
  Tensor xhat = Tensor::empty(x.shape(), x.dtype()), rstd = Tensor::empty(row_shape, x.dtype());
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    normalize_rows<T>(x.value().data<T>(),
                                   w.value().data<T>(),
                                   b.value().data<T>(),
                                   xhat.data<T>(),
                                   rstd.data<T>(),
                                   y.data<T>(),
                                   rows,
                                   d,
                                   eps);
  });
  return op.output(y, {xhat, rstd, w.value()}, [rows, d](const BackwardContext& c) {
    const Tensor &xh = c.saved[0], &rs = c.saved[1], &wv = c.saved[2], &g = c.grad();
    Tensor dx;
    if (c.needs_input_grad[0]) {
      dx = Tensor::empty(g.shape(), g.dtype());
      dispatch_float(g.dtype(), "layer_norm", [&](auto tag) {
        using T = decltype(tag);
        backward_rows<T>(
            g.data<T>(), wv.data<T>(), xh.data<T>(), rs.data<T>(), dx.data<T>(), rows, d);
      });
    }
    const Shape flat{rows, d};
    return Grads{
        dx,
        c.needs_input_grad[1] ? attnlab::sum(attnlab::mul(g, xh).reshape(flat), 0) : Tensor(),
        c.needs_input_grad[2] ? attnlab::sum(g.reshape(flat), 0) : Tensor()};
  });
}

}  // namespace attnlab::ag
