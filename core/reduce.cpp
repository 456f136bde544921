#include "core/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/axis_view.hpp"
#include "core/broadcast.hpp"
#include "core/elementwise.hpp"
#include "core/parallel.hpp"
#include "core/vec.hpp"

namespace attnlab {
namespace {

using detail::axis_view;
using detail::AxisView;

Shape reduced_shape(const Shape& s, int axis, bool keepdim) {
  Shape out = s;
  if (keepdim) {
    out[axis] = 1;
  } else {
    out.erase(axis);
  }
  return out;
}

template <class T>
T min_contiguous(const T* x, int64_t n) {
  T r = std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] != x[i])
      return x[i];
    r = x[i] < r ? x[i] : r;
  }
  return r;
}

enum class Kind { Sum, Max, Min };

// Reduces one axis. Rows (inner == 1) use SIMD accumulators; otherwise whole inner vectors are
// combined in axis order, which vectorises across the inner dimension.
template <class T>
void reduce_axis(const T* x, T* y, const AxisView& v, Kind kind) {
  const T init = kind == Kind::Sum   ? T(0)
                 : kind == Kind::Max ? -std::numeric_limits<T>::infinity()
                                     : std::numeric_limits<T>::infinity();
  if (v.inner == 1) {
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, v.n));
    const VecFns<T>& k = vec::fns<T>();
    parallel_for(0, v.outer, grain, [&](int64_t lo, int64_t hi) {
      if (kind == Kind::Sum) {
        k.sum_rows(x + lo * v.n, y + lo, hi - lo, v.n);
      } else if (kind == Kind::Max) {
        k.max_rows(x + lo * v.n, y + lo, hi - lo, v.n);
      } else {
        for (int64_t o = lo; o < hi; ++o) y[o] = min_contiguous(x + o * v.n, v.n);
      }
    });
    return;
  }
  // Parallel over (outer, inner chunk) pairs; each output element is still summed in axis order.
  // Narrow chunks when there are fewer outer slices than threads: a column sum over the rows of
  // one [rows, 50] matrix (a bias or layer-norm gradient) is then shared by the threads.
  const int64_t chunk = v.outer < num_threads() ? 16 : 256;
  const int64_t chunks = (v.inner + chunk - 1) / chunk;
  const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, v.n * chunk));
  parallel_for(0, v.outer * chunks, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t job = lo; job < hi; ++job) {
      const int64_t o = job / chunks, c0 = (job % chunks) * chunk;
      const int64_t c1 = std::min(v.inner, c0 + chunk);
      T* out = y + o * v.inner;
      for (int64_t i = c0; i < c1; ++i) out[i] = init;
      for (int64_t a = 0; a < v.n; ++a) {
        const T* src = x + (o * v.n + a) * v.inner;
        if (kind == Kind::Sum) {
          for (int64_t i = c0; i < c1; ++i) out[i] += src[i];
        } else if (kind == Kind::Max) {
          for (int64_t i = c0; i < c1; ++i) {
            out[i] = (src[i] > out[i] || src[i] != src[i]) && out[i] == out[i] ? src[i] : out[i];
          }
        } else {
          for (int64_t i = c0; i < c1; ++i) {
            out[i] = (src[i] < out[i] || src[i] != src[i]) && out[i] == out[i] ? src[i] : out[i];
          }
        }
      }
    }
  });
}

// Sum of all elements: fixed blocks summed in parallel, partial sums combined in block order, so
// the result is identical for any thread count.
template <class T>
T sum_all(const T* x, int64_t n) {
  constexpr int64_t kBlock = 1 << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const auto sum = vec::fns<T>().sum;
  if (blocks <= 1)
    return sum(x, n);
  std::vector<T> partial(blocks);
  parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      partial[b] = sum(x + b * kBlock, std::min(kBlock, n - b * kBlock));
    }
  });
  T s = 0;
  for (T p : partial) s += p;
  return s;
}

Tensor reduce(const Tensor& x, int axis, bool keepdim, Kind kind, const char* op) {
  ATTNLAB_CHECK(x.defined(), ValueError, op, ": undefined tensor");
  const int ax = normalize_axis(axis, x.dim(), op);
  if (kind != Kind::Sum) {
    ATTNLAB_CHECK(x.shape()[ax] > 0,
                  ShapeError,
                  op,
                  ": cannot reduce an empty axis ",
                  axis,
                  " of shape ",
                  x.shape());
  }
  return dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(reduced_shape(x.shape(), ax, keepdim), x.dtype());
    reduce_axis<T>(x.data<T>(), y.data<T>(), axis_view(x.shape(), ax), kind);
    return y;
  });
}

Tensor reduce_all(const Tensor& x, Kind kind, const char* op) {
  ATTNLAB_CHECK(x.defined(), ValueError, op, ": undefined tensor");
  if (kind != Kind::Sum) {
    ATTNLAB_CHECK(
        x.numel() > 0, ShapeError, op, ": cannot reduce an empty tensor of shape ", x.shape());
  }
  return dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    const T r = kind == Kind::Sum   ? sum_all(p, x.numel())
                : kind == Kind::Max ? vec::fns<T>().max(p, x.numel())
                                    : min_contiguous(p, x.numel());
    return scalar_tensor(static_cast<double>(r), x.dtype());
  });
}

// Replaces non-finite values by 0 (for the logsumexp shift, where an infinite max must not turn
// x - max into NaN).
Tensor finite_or_zero(const Tensor& m) {
  return dispatch_float(m.dtype(), "logsumexp", [&](auto tag) {
    using T = decltype(tag);
    Tensor r = m.clone();
    T* p = r.data<T>();
    for (int64_t i = 0; i < r.numel(); ++i) {
      if (!std::isfinite(p[i]))
        p[i] = 0;
    }
    return r;
  });
}

template <bool kMax>
Tensor arg_extreme(const Tensor& x, int axis, bool keepdim, const char* op) {
  ATTNLAB_CHECK(x.defined(), ValueError, op, ": undefined tensor");
  const int ax = normalize_axis(axis, x.dim(), op);
  ATTNLAB_CHECK(x.shape()[ax] > 0, ShapeError, op, ": empty axis ", axis, " of shape ", x.shape());
  const AxisView v = axis_view(x.shape(), ax);
  Tensor y = Tensor::empty(reduced_shape(x.shape(), ax, keepdim), kInt64);
  int64_t* out = y.data<int64_t>();
  dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(x.raw_data());
    parallel_for(0, v.outer * v.inner, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t job = lo; job < hi; ++job) {
        const int64_t o = job / v.inner, i = job % v.inner;
        const T* base = p + o * v.n * v.inner + i;
        int64_t best = 0;
        T bv = base[0];
        if (bv == bv) {  // a NaN at index 0 already wins
          for (int64_t a = 1; a < v.n; ++a) {
            const T c = base[a * v.inner];
            if (c != c) {
              best = a;
              break;
            }
            if (kMax ? c > bv : c < bv) {  // strict: ties keep the lowest index
              bv = c;
              best = a;
            }
          }
        }
        out[job] = best;
      }
    });
  });
  return y;
}

}  // namespace

Tensor sum(const Tensor& x) {
  return reduce_all(x, Kind::Sum, "sum");
}
Tensor max(const Tensor& x) {
  return reduce_all(x, Kind::Max, "max");
}
Tensor min(const Tensor& x) {
  return reduce_all(x, Kind::Min, "min");
}
Tensor mean(const Tensor& x) {
  ATTNLAB_CHECK(
      x.defined() && x.numel() > 0, ShapeError, "mean: empty tensor of shape ", x.shape());
  return div(sum(x), static_cast<double>(x.numel()));
}

Tensor sum(const Tensor& x, int axis, bool keepdim) {
  return reduce(x, axis, keepdim, Kind::Sum, "sum");
}
Tensor max(const Tensor& x, int axis, bool keepdim) {
  return reduce(x, axis, keepdim, Kind::Max, "max");
}
Tensor min(const Tensor& x, int axis, bool keepdim) {
  return reduce(x, axis, keepdim, Kind::Min, "min");
}
Tensor mean(const Tensor& x, int axis, bool keepdim) {
  const int ax = normalize_axis(axis, x.dim(), "mean");
  ATTNLAB_CHECK(x.shape()[ax] > 0, ShapeError, "mean: empty axis ", axis, " of shape ", x.shape());
  return div(sum(x, ax, keepdim), static_cast<double>(x.shape()[ax]));
}

Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  ATTNLAB_CHECK(x.defined(), ValueError, "sum: undefined tensor");
  std::vector<int> ax;
  for (int a : axes) ax.push_back(normalize_axis(a, x.dim(), "sum"));
  std::sort(ax.begin(), ax.end());
  ATTNLAB_CHECK(std::adjacent_find(ax.begin(), ax.end()) == ax.end(),
                ValueError,
                "sum: repeated axis in the axis list for shape ",
                x.shape());
  Tensor r = x;
  for (auto it = ax.rbegin(); it != ax.rend(); ++it) r = sum(r, *it, true);
  if (keepdim)
    return r;
  Shape out;
  for (int i = 0; i < x.dim(); ++i) {
    if (!std::binary_search(ax.begin(), ax.end(), i))
      out.push_back(x.shape()[i]);
  }
  return r.reshape(out);
}

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  Tensor s = sum(x, axes, keepdim);
  ATTNLAB_CHECK(
      s.numel() == 0 || x.numel() > 0, ShapeError, "mean: empty axes of shape ", x.shape());
  const double count = s.numel() ? static_cast<double>(x.numel()) / s.numel() : 1.0;
  return div(s, count);
}

Tensor logsumexp(const Tensor& x, int axis, bool keepdim) {
  // lse = m + log(sum(exp(x - m))), m the max along axis; an all -inf slice gives -inf, NaN
  // propagates, and +inf gives +inf.
  const int ax = normalize_axis(axis, x.dim(), "logsumexp");
  const Tensor m = finite_or_zero(max(x, ax, true));
  Tensor r = add(log(sum(exp(sub(x, m)), ax, true)), m);
  return keepdim ? r : r.reshape(reduced_shape(x.shape(), ax, false));
}

Tensor norm(const Tensor& x, int axis, bool keepdim) {
  return sqrt(sum(square(x), axis, keepdim));
}

Tensor argmax(const Tensor& x, int axis, bool keepdim) {
  return arg_extreme<true>(x, axis, keepdim, "argmax");
}
Tensor argmin(const Tensor& x, int axis, bool keepdim) {
  return arg_extreme<false>(x, axis, keepdim, "argmin");
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape)
    return x;
  ATTNLAB_CHECK(shape.rank() <= x.dim(),
                ShapeError,
                "sum_to_shape: cannot reduce ",
                x.shape(),
                " to higher-rank ",
                shape);
  const int lead = x.dim() - shape.rank();
  std::vector<int> axes;
  for (int i = 0; i < x.dim(); ++i) {
    if (i < lead) {
      axes.push_back(i);
      continue;
    }
    const int64_t want = shape[i - lead], have = x.shape()[i];
    ATTNLAB_CHECK(want == have || want == 1,
                  ShapeError,
                  "sum_to_shape: ",
                  x.shape(),
                  " is not a broadcast of ",
                  shape);
    if (want == 1 && have != 1)
      axes.push_back(i);
  }
  return sum(x, axes, true).reshape(shape);
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  ATTNLAB_CHECK(x.defined(), ValueError, "broadcast_to: undefined tensor");
  ATTNLAB_CHECK(broadcast_shapes(x.shape(), shape, "broadcast_to") == shape,
                ShapeError,
                "broadcast_to: cannot broadcast ",
                x.shape(),
                " to ",
                shape);
  Tensor y = Tensor::empty(shape, x.dtype());
  if (y.numel() == 0)
    return y;
  dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(y.raw_data());
    const auto plan = detail::make_broadcast_plan<1>(shape, {x.shape()});
    detail::for_each_broadcast_row<1>(plan,
                                      [&](const auto& off, int64_t out, int64_t n, const auto& st) {
                                        for (int64_t i = 0; i < n; ++i)
                                          yp[out + i] = xp[off[0] + st[0] * i];
                                      });
  });
  return y;
}

}  // namespace attnlab
