#include "core/elementwise.hpp"

#include <cmath>

#include "core/broadcast.hpp"
#include "core/parallel.hpp"
#include "core/simd.hpp"

namespace attnlab {
namespace {

using simd::Batch;
constexpr int64_t kGrain = 1 << 15;  // elements per parallel chunk, at least

// Applies a batch function to every element of x (float types only).
template <class F>
Tensor unary(const Tensor& x, const char* op, F&& f) {
  ATTNLAB_CHECK(x.defined(), ValueError, op, ": undefined tensor");
  return dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(0, x.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      simd::map_unary<T>(xp + lo, yp + lo, hi - lo, f);
    });
    return y;
  });
}

void check_binary(const Tensor& a, const Tensor& b, const char* op) {
  ATTNLAB_CHECK(a.defined() && b.defined(), ValueError, op, ": undefined tensor");
  ATTNLAB_CHECK(a.dtype() == b.dtype(),
                DTypeError,
                op,
                ": dtypes differ: ",
                a.dtype(),
                " ",
                a.shape(),
                " vs ",
                b.dtype(),
                " ",
                b.shape());
}

template <class F>
Tensor binary(const Tensor& a, const Tensor& b, const char* op, F&& f) {
  check_binary(a, b, op);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), op);
  return dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(out_shape, a.dtype());
    if (y.numel() == 0)
      return y;
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* yp = y.data<T>();
    auto op = [&](Batch<T> u, Batch<T> v) {
      return f(u, v);
    };
    // Fast paths (no broadcast plan): equal shapes, or one operand a single element.
    const int64_t sa = a.numel() == y.numel() ? 1 : (a.numel() == 1 ? 0 : -1);
    const int64_t sb = b.numel() == y.numel() ? 1 : (b.numel() == 1 ? 0 : -1);
    if ((sa == 1 && a.shape() == out_shape && (sb == 0 || b.shape() == out_shape)) ||
        (sb == 1 && b.shape() == out_shape && sa == 0)) {
      parallel_for(0, y.numel(), kGrain, [&](int64_t lo, int64_t hi) {
        simd::map_binary<T>(ap + sa * lo, sa, bp + sb * lo, sb, yp + lo, hi - lo, op);
      });
      return y;
    }
    const auto plan = detail::make_broadcast_plan<2>(out_shape, {a.shape(), b.shape()});
    detail::for_each_broadcast_row<2>(
        plan, [&](const auto& off, int64_t out, int64_t n, const auto& st) {
          simd::map_binary<T>(
              ap + off[0], st[0], bp + off[1], st[1], yp + out, n, [&](Batch<T> u, Batch<T> v) {
                return f(u, v);
              });
        });
    return y;
  });
}

template <class F>
Tensor binary_scalar(const Tensor& a, double s, bool scalar_first, const char* op, F&& f) {
  return unary(a, op, [&](auto v) {
    using B = decltype(v);
    const B vs(static_cast<typename B::value_type>(s));
    return scalar_first ? f(vs, v) : f(v, vs);
  });
}

template <class T>
Batch<T> one_if(xsimd::batch_bool<T> c) {
  return xsimd::select(c, Batch<T>(T(1)), Batch<T>(T(0)));
}

}  // namespace

// ---- unary ------------------------------------------------------------------------------------
Tensor neg(const Tensor& x) {
  return unary(x, "neg", [](auto v) { return -v; });
}
Tensor abs(const Tensor& x) {
  return unary(x, "abs", [](auto v) { return xsimd::abs(v); });
}
Tensor sign(const Tensor& x) {
  return unary(x, "sign", [](auto v) {
    using B = decltype(v);
    using T = typename B::value_type;
    const B s = xsimd::select(v > B(T(0)), B(T(1)), xsimd::select(v < B(T(0)), B(T(-1)), B(T(0))));
    return xsimd::select(xsimd::isnan(v), v, s);
  });
}
Tensor exp(const Tensor& x) {
  return unary(x, "exp", [](auto v) { return xsimd::exp(v); });
}
Tensor log(const Tensor& x) {
  return unary(x, "log", [](auto v) { return xsimd::log(v); });
}
Tensor log1p(const Tensor& x) {
  return unary(x, "log1p", [](auto v) { return xsimd::log1p(v); });
}
Tensor expm1(const Tensor& x) {
  return unary(x, "expm1", [](auto v) { return xsimd::expm1(v); });
}
Tensor sqrt(const Tensor& x) {
  return unary(x, "sqrt", [](auto v) { return xsimd::sqrt(v); });
}
Tensor rsqrt(const Tensor& x) {
  return unary(x, "rsqrt", [](auto v) {
    using B = decltype(v);
    return B(typename B::value_type(1)) / xsimd::sqrt(v);
  });
}
Tensor square(const Tensor& x) {
  return unary(x, "square", [](auto v) { return v * v; });
}
Tensor reciprocal(const Tensor& x) {
  return unary(x, "reciprocal", [](auto v) {
    using B = decltype(v);
    return B(typename B::value_type(1)) / v;
  });
}
Tensor tanh(const Tensor& x) {
  return unary(x, "tanh", [](auto v) { return xsimd::tanh(v); });
}
Tensor sigmoid(const Tensor& x) {
  return unary(x, "sigmoid", [](auto v) {
    using B = decltype(v);
    using T = typename B::value_type;
    // For x < 0 use exp(x) / (1 + exp(x)): exp never overflows and tiny results keep precision.
    const B e = xsimd::exp(-xsimd::abs(v));
    const B pos = B(T(1)) / (B(T(1)) + e);
    return xsimd::select(v >= B(T(0)), pos, e * pos);
  });
}
Tensor relu(const Tensor& x) {
  return unary(x, "relu", [](auto v) {
    using B = decltype(v);
    return xsimd::select(v <= B(typename B::value_type(0)), B(typename B::value_type(0)), v);
  });
}
Tensor elu(const Tensor& x, double alpha) {
  return unary(x, "elu", [alpha](auto v) {
    using B = decltype(v);
    using T = typename B::value_type;
    return xsimd::select(v > B(T(0)), v, B(static_cast<T>(alpha)) * xsimd::expm1(v));
  });
}
Tensor softplus(const Tensor& x) {
  return unary(x, "softplus", [](auto v) {
    using B = decltype(v);
    using T = typename B::value_type;
    const B pos = xsimd::select(v > B(T(0)), v, B(T(0)));
    return xsimd::select(xsimd::isnan(v), v, pos + xsimd::log1p(xsimd::exp(-xsimd::abs(v))));
  });
}
Tensor sin(const Tensor& x) {
  return unary(x, "sin", [](auto v) { return xsimd::sin(v); });
}
Tensor cos(const Tensor& x) {
  return unary(x, "cos", [](auto v) { return xsimd::cos(v); });
}
Tensor pow(const Tensor& x, double exponent) {
  if (exponent == 2.0)
    return square(x);
  if (exponent == 1.0)
    return x.clone();
  return unary(x, "pow", [exponent](auto v) {
    using B = decltype(v);
    return xsimd::pow(v, B(static_cast<typename B::value_type>(exponent)));
  });
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  ATTNLAB_CHECK(lo <= hi, ValueError, "clamp: lo ", lo, " > hi ", hi);
  return unary(x, "clamp", [lo, hi](auto v) {
    using B = decltype(v);
    using T = typename B::value_type;
    const B l(static_cast<T>(lo)), h(static_cast<T>(hi));
    return xsimd::select(v < l, l, xsimd::select(v > h, h, v));
  });
}
Tensor nan_to_num(const Tensor& x, double value) {
  return unary(x, "nan_to_num", [value](auto v) {
    using B = decltype(v);
    return xsimd::select(xsimd::isnan(v), B(static_cast<typename B::value_type>(value)), v);
  });
}

// ---- binary -----------------------------------------------------------------------------------
namespace {
const auto kAdd = [](auto u, auto v) {
  return u + v;
};
const auto kSub = [](auto u, auto v) {
  return u - v;
};
const auto kMul = [](auto u, auto v) {
  return u * v;
};
const auto kDiv = [](auto u, auto v) {
  return u / v;
};
const auto kPow = [](auto u, auto v) {
  return xsimd::pow(u, v);
};
const auto kMax = [](auto u, auto v) {
  return xsimd::select(xsimd::isnan(u), u, xsimd::select(u > v, u, v));  // a NaN v: u > v is false
};
const auto kMin = [](auto u, auto v) {
  return xsimd::select(xsimd::isnan(u), u, xsimd::select(u < v, u, v));
};
const auto kEq = [](auto u, auto v) {
  return one_if(u == v);
};
// IEEE: NaN != anything is true (spelled out because xsimd's AVX-512 `!=` is ordered).
const auto kNe = [](auto u, auto v) {
  return one_if(!(u == v));
};
const auto kLt = [](auto u, auto v) {
  return one_if(u < v);
};
const auto kLe = [](auto u, auto v) {
  return one_if(u <= v);
};
const auto kGt = [](auto u, auto v) {
  return one_if(u > v);
};
const auto kGe = [](auto u, auto v) {
  return one_if(u >= v);
};
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary(a, b, "add", kAdd);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(a, b, "sub", kSub);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(a, b, "mul", kMul);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(a, b, "div", kDiv);
}
Tensor pow(const Tensor& a, const Tensor& b) {
  return binary(a, b, "pow", kPow);
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary(a, b, "maximum", kMax);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary(a, b, "minimum", kMin);
}
Tensor eq(const Tensor& a, const Tensor& b) {
  return binary(a, b, "eq", kEq);
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return binary(a, b, "ne", kNe);
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return binary(a, b, "lt", kLt);
}
Tensor le(const Tensor& a, const Tensor& b) {
  return binary(a, b, "le", kLe);
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return binary(a, b, "gt", kGt);
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return binary(a, b, "ge", kGe);
}

Tensor add(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "add", kAdd);
}
Tensor sub(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "sub", kSub);
}
Tensor sub(double a, const Tensor& b) {
  return binary_scalar(b, a, true, "sub", kSub);
}
Tensor mul(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "mul", kMul);
}
Tensor div(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "div", kDiv);
}
Tensor div(double a, const Tensor& b) {
  return binary_scalar(b, a, true, "div", kDiv);
}
Tensor maximum(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "maximum", kMax);
}
Tensor minimum(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "minimum", kMin);
}
Tensor gt(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "gt", kGt);
}
Tensor lt(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "lt", kLt);
}
Tensor eq(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "eq", kEq);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_binary(a, b, "where");
  check_binary(cond, a, "where");
  const Shape out_shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  return dispatch_float(a.dtype(), "where", [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(out_shape, a.dtype());
    if (y.numel() == 0)
      return y;
    const T *cp = cond.data<T>(), *ap = a.data<T>(), *bp = b.data<T>();
    T* yp = y.data<T>();
    const auto plan =
        detail::make_broadcast_plan<3>(out_shape, {cond.shape(), a.shape(), b.shape()});
    detail::for_each_broadcast_row<3>(
        plan, [&](const auto& off, int64_t out, int64_t n, const auto& st) {
          for (int64_t i = 0; i < n; ++i) {
            yp[out + i] =
                cp[off[0] + st[0] * i] != T(0) ? ap[off[1] + st[1] * i] : bp[off[2] + st[2] * i];
          }
        });
    return y;
  });
}

// ---- in place ---------------------------------------------------------------------------------
namespace {
void check_same(const Tensor& y, const Tensor& x, const char* op) {
  ATTNLAB_CHECK(y.defined() && x.defined(), ValueError, op, ": undefined tensor");
  ATTNLAB_CHECK(y.shape() == x.shape() && y.dtype() == x.dtype(),
                ShapeError,
                op,
                ": destination ",
                y.shape(),
                " ",
                y.dtype(),
                " vs source ",
                x.shape(),
                " ",
                x.dtype());
}
}  // namespace

void add_(const Tensor& y, const Tensor& x) {
  axpy_(y, 1.0, x);
}

void axpy_(const Tensor& y, double alpha, const Tensor& x) {
  check_same(y, x, "axpy_");
  dispatch_float(y.dtype(), "axpy_", [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    const T* xp = x.data<T>();
    parallel_for(0, y.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      if (alpha == 1.0) {
        for (int64_t i = lo; i < hi; ++i) yp[i] += xp[i];
      } else {
        simd::axpy<T>(static_cast<T>(alpha), xp + lo, yp + lo, hi - lo);
      }
    });
  });
}

void scale_(const Tensor& y, double alpha) {
  ATTNLAB_CHECK(y.defined(), ValueError, "scale_: undefined tensor");
  dispatch_float(y.dtype(), "scale_", [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    const T a = static_cast<T>(alpha);
    parallel_for(0, y.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) yp[i] *= a;
    });
  });
}

bool has_nonfinite(const Tensor& x) {
  if (!x.defined() || x.dtype() == kInt64)
    return false;
  return dispatch_float(x.dtype(), "has_nonfinite", [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(p[i]))
        return true;
    }
    return false;
  });
}

}  // namespace attnlab
