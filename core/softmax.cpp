#include "core/softmax.hpp"

#include <cmath>
#include <limits>

#include "core/parallel.hpp"
#include "core/shape_ops.hpp"
#include "core/vec.hpp"

namespace attnlab {
namespace {

template <bool kLog>
Tensor softmax_last(const Tensor& x, const char* op) {
  return dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    const int64_t n = x.dim() ? x.shape().back() : 1;
    const int64_t rows = n ? x.numel() / n : 0;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    const auto rows_fn = vec::fns<T>().softmax_rows;
    parallel_for(
        0,
        rows,
        std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, n)),
        [&](int64_t lo, int64_t hi) { rows_fn(xp + lo * n, yp + lo * n, hi - lo, n, kLog); });
    return y;
  });
}

// Runs a last-axis kernel on another axis by moving that axis last and back.
template <class F>
Tensor along_axis(const Tensor& x, int axis, const char* op, F&& last_axis_kernel) {
  ATTNLAB_CHECK(x.defined(), ValueError, op, ": undefined tensor");
  if (x.dim() == 0)
    return last_axis_kernel(x);
  const int ax = normalize_axis(axis, x.dim(), op);
  if (ax == x.dim() - 1)
    return last_axis_kernel(x);
  return transpose(last_axis_kernel(transpose(x, ax, -1)), ax, -1);
}

template <bool kLog>
Tensor backward_last(const Tensor& y, const Tensor& g, const char* op) {
  ATTNLAB_CHECK(y.shape() == g.shape() && y.dtype() == g.dtype(),
                ShapeError,
                op,
                ": output ",
                y.shape(),
                " ",
                y.dtype(),
                " and gradient ",
                g.shape(),
                " ",
                g.dtype(),
                " differ");
  return dispatch_float(y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Tensor dx = Tensor::empty(y.shape(), y.dtype());
    const int64_t n = y.dim() ? y.shape().back() : 1;
    const int64_t rows = n ? y.numel() / n : 0;
    const T *yp = y.data<T>(), *gp = g.data<T>();
    T* dp = dx.data<T>();
    const auto rows_fn = vec::fns<T>().softmax_backward_rows;
    parallel_for(0,
                 rows,
                 std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, n)),
                 [&](int64_t lo, int64_t hi) {
                   rows_fn(yp + lo * n, gp + lo * n, dp + lo * n, hi - lo, n, kLog);
                 });
    return dx;
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) {
  return along_axis(x, axis, "softmax", [](const Tensor& t) {
    return softmax_last<false>(t, "softmax");
  });
}

Tensor log_softmax(const Tensor& x, int axis) {
  return along_axis(x, axis, "log_softmax", [](const Tensor& t) {
    return softmax_last<true>(t, "log_softmax");
  });
}

Tensor softmax_backward(const Tensor& y, const Tensor& g, int axis) {
  ATTNLAB_CHECK(y.defined() && g.defined(), ValueError, "softmax_backward: undefined tensor");
  if (y.dim() == 0 || normalize_axis(axis, y.dim(), "softmax_backward") == y.dim() - 1) {
    return backward_last<false>(y, g, "softmax_backward");
  }
  const int ax = normalize_axis(axis, y.dim(), "softmax_backward");
  return transpose(backward_last<false>(
                       transpose(y, ax, -1), transpose(g, ax, -1), "softmax_backward"),
                   ax,
                   -1);
}

Tensor log_softmax_backward(const Tensor& y, const Tensor& g, int axis) {
  ATTNLAB_CHECK(y.defined() && g.defined(), ValueError, "log_softmax_backward: undefined tensor");
  if (y.dim() == 0 || normalize_axis(axis, y.dim(), "log_softmax_backward") == y.dim() - 1) {
    return backward_last<true>(y, g, "log_softmax_backward");
  }
  const int ax = normalize_axis(axis, y.dim(), "log_softmax_backward");
  return transpose(backward_last<true>(
                       transpose(y, ax, -1), transpose(g, ax, -1), "log_softmax_backward"),
                   ax,
                   -1);
}

}  // namespace attnlab
