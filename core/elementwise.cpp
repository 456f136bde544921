#include "core/elementwise.hpp"

#include <cmath>

#include "core/broadcast.hpp"
#include "core/elementwise_kernels.hpp"
#include "core/parallel.hpp"
#include "core/vec.hpp"

namespace attnlab {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per parallel chunk, at least

template <class T>
const ElementwiseFns<T>& kernels() {
  static const ElementwiseKernels& table = ATTNLAB_KERNELS(elementwise_kernels);
  if constexpr (std::is_same_v<T, float>)
    return table.f32;
  else
    return table.f64;
}

// Applies a unary kernel to every element of x (float types only).
Tensor unary(const Tensor& x, const char* op, UnaryOp kind, double p0 = 0, double p1 = 0) {
  ATTNLAB_CHECK(x.defined(), ValueError, op, ": undefined tensor");
  return dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    const auto fn = kernels<T>().unary;
    parallel_for(0, x.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      fn(kind, p0, p1, xp + lo, yp + lo, hi - lo);
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

Tensor binary(const Tensor& a, const Tensor& b, const char* op, BinaryOp kind) {
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
    const auto fn = kernels<T>().binary;
    // Fast paths (no broadcast plan): equal shapes, or one operand a single element.
    const int64_t sa = a.numel() == y.numel() ? 1 : (a.numel() == 1 ? 0 : -1);
    const int64_t sb = b.numel() == y.numel() ? 1 : (b.numel() == 1 ? 0 : -1);
    if ((sa == 1 && a.shape() == out_shape && (sb == 0 || b.shape() == out_shape)) ||
        (sb == 1 && b.shape() == out_shape && sa == 0)) {
      parallel_for(0, y.numel(), kGrain, [&](int64_t lo, int64_t hi) {
        fn(kind, ap + sa * lo, sa, bp + sb * lo, sb, yp + lo, hi - lo);
      });
      return y;
    }
    const auto plan = detail::make_broadcast_plan<2>(out_shape, {a.shape(), b.shape()});
    detail::for_each_broadcast_row<2>(
        plan, [&](const auto& off, int64_t out, int64_t n, const auto& st) {
          fn(kind, ap + off[0], st[0], bp + off[1], st[1], yp + out, n);
        });
    return y;
  });
}

// op(a, s) (or op(s, a) when scalar_first) with the scalar in a's dtype.
Tensor binary_scalar(const Tensor& a, double s, bool scalar_first, const char* op, BinaryOp kind) {
  ATTNLAB_CHECK(a.defined(), ValueError, op, ": undefined tensor");
  return dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(a.shape(), a.dtype());
    const T* ap = a.data<T>();
    const T sv = static_cast<T>(s);
    T* yp = y.data<T>();
    const auto fn = kernels<T>().binary;
    parallel_for(0, a.numel(), kGrain, [&](int64_t lo, int64_t hi) {
      if (scalar_first)
        fn(kind, &sv, 0, ap + lo, 1, yp + lo, hi - lo);
      else
        fn(kind, ap + lo, 1, &sv, 0, yp + lo, hi - lo);
    });
    return y;
  });
}

}  // namespace

// ---- unary ------------------------------------------------------------------------------------
Tensor neg(const Tensor& x) {
  return unary(x, "neg", UnaryOp::kNeg);
}
Tensor abs(const Tensor& x) {
  return unary(x, "abs", UnaryOp::kAbs);
}
Tensor sign(const Tensor& x) {
  return unary(x, "sign", UnaryOp::kSign);
}
Tensor exp(const Tensor& x) {
  return unary(x, "exp", UnaryOp::kExp);
}
Tensor log(const Tensor& x) {
  return unary(x, "log", UnaryOp::kLog);
}
Tensor log1p(const Tensor& x) {
  return unary(x, "log1p", UnaryOp::kLog1p);
}
Tensor expm1(const Tensor& x) {
  return unary(x, "expm1", UnaryOp::kExpm1);
}
Tensor sqrt(const Tensor& x) {
  return unary(x, "sqrt", UnaryOp::kSqrt);
}
Tensor rsqrt(const Tensor& x) {
  return unary(x, "rsqrt", UnaryOp::kRsqrt);
}
Tensor square(const Tensor& x) {
  return unary(x, "square", UnaryOp::kSquare);
}
Tensor reciprocal(const Tensor& x) {
  return unary(x, "reciprocal", UnaryOp::kReciprocal);
}
Tensor tanh(const Tensor& x) {
  return unary(x, "tanh", UnaryOp::kTanh);
}
Tensor sigmoid(const Tensor& x) {
  return unary(x, "sigmoid", UnaryOp::kSigmoid);
}
Tensor relu(const Tensor& x) {
  return unary(x, "relu", UnaryOp::kRelu);
}
Tensor elu(const Tensor& x, double alpha) {
  return unary(x, "elu", UnaryOp::kElu, alpha);
}
Tensor softplus(const Tensor& x) {
  return unary(x, "softplus", UnaryOp::kSoftplus);
}
Tensor sin(const Tensor& x) {
  return unary(x, "sin", UnaryOp::kSin);
}
Tensor cos(const Tensor& x) {
  return unary(x, "cos", UnaryOp::kCos);
}
Tensor pow(const Tensor& x, double exponent) {
  if (exponent == 2.0)
    return square(x);
  if (exponent == 1.0)
    return x.clone();
  return unary(x, "pow", UnaryOp::kPow, exponent);
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  ATTNLAB_CHECK(lo <= hi, ValueError, "clamp: lo ", lo, " > hi ", hi);
  return unary(x, "clamp", UnaryOp::kClamp, lo, hi);
}
Tensor nan_to_num(const Tensor& x, double value) {
  return unary(x, "nan_to_num", UnaryOp::kNanToNum, value);
}

// ---- binary -----------------------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b) {
  return binary(a, b, "add", BinaryOp::kAdd);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(a, b, "sub", BinaryOp::kSub);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(a, b, "mul", BinaryOp::kMul);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(a, b, "div", BinaryOp::kDiv);
}
Tensor pow(const Tensor& a, const Tensor& b) {
  return binary(a, b, "pow", BinaryOp::kPow);
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary(a, b, "maximum", BinaryOp::kMax);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary(a, b, "minimum", BinaryOp::kMin);
}
Tensor eq(const Tensor& a, const Tensor& b) {
  return binary(a, b, "eq", BinaryOp::kEq);
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return binary(a, b, "ne", BinaryOp::kNe);
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return binary(a, b, "lt", BinaryOp::kLt);
}
Tensor le(const Tensor& a, const Tensor& b) {
  return binary(a, b, "le", BinaryOp::kLe);
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return binary(a, b, "gt", BinaryOp::kGt);
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return binary(a, b, "ge", BinaryOp::kGe);
}

Tensor add(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "add", BinaryOp::kAdd);
}
Tensor sub(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "sub", BinaryOp::kSub);
}
Tensor sub(double a, const Tensor& b) {
  return binary_scalar(b, a, true, "sub", BinaryOp::kSub);
}
Tensor mul(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "mul", BinaryOp::kMul);
}
Tensor div(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "div", BinaryOp::kDiv);
}
Tensor div(double a, const Tensor& b) {
  return binary_scalar(b, a, true, "div", BinaryOp::kDiv);
}
Tensor maximum(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "maximum", BinaryOp::kMax);
}
Tensor minimum(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "minimum", BinaryOp::kMin);
}
Tensor gt(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "gt", BinaryOp::kGt);
}
Tensor lt(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "lt", BinaryOp::kLt);
}
Tensor eq(const Tensor& a, double b) {
  return binary_scalar(a, b, false, "eq", BinaryOp::kEq);
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
        vec::fns<T>().axpy(static_cast<T>(alpha), xp + lo, yp + lo, hi - lo);
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
