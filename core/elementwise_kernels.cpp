// The element-wise kernels (core/elementwise_kernels.hpp), compiled once per SIMD path. Each op
// is a function written once for xsimd batches; the switch picks it once per contiguous run.
#include "core/elementwise_kernels.hpp"

#include "core/simd.hpp"  // xsimd, renamed for this path

namespace attnlab::ATTNLAB_ARCH {
namespace {

using simd::Batch;

template <class T>
Batch<T> one_if(xsimd::batch_bool<T> c) {
  return xsimd::select(c, Batch<T>(T(1)), Batch<T>(T(0)));
}

template <class T>
void unary(UnaryOp op, double p0, double p1, const T* x, T* y, int64_t n) {
  using B = Batch<T>;
  auto run = [&](auto f) {
    simd::map_unary<T>(x, y, n, f);
  };
  const B zero(T(0)), one(T(1));
  switch (op) {
    case UnaryOp::kNeg:
      return run([](B v) { return -v; });
    case UnaryOp::kAbs:
      return run([](B v) { return xsimd::abs(v); });
    case UnaryOp::kSign:
      return run([&](B v) {
        const B s = xsimd::select(v > zero, one, xsimd::select(v < zero, B(T(-1)), zero));
        return xsimd::select(xsimd::isnan(v), v, s);
      });
    case UnaryOp::kExp:
      return run([](B v) { return xsimd::exp(v); });
    case UnaryOp::kLog:
      return run([](B v) { return xsimd::log(v); });
    case UnaryOp::kLog1p:
      return run([](B v) { return xsimd::log1p(v); });
    case UnaryOp::kExpm1:
      return run([](B v) { return xsimd::expm1(v); });
    case UnaryOp::kSqrt:
      return run([](B v) { return xsimd::sqrt(v); });
    case UnaryOp::kRsqrt:
      return run([&](B v) { return one / xsimd::sqrt(v); });
    case UnaryOp::kSquare:
      return run([](B v) { return v * v; });
    case UnaryOp::kReciprocal:
      return run([&](B v) { return one / v; });
    case UnaryOp::kTanh:
      return run([](B v) { return xsimd::tanh(v); });
    case UnaryOp::kSigmoid:
      return run([&](B v) {
        // For x < 0 use exp(x) / (1 + exp(x)): exp never overflows and tiny results keep
        // precision.
        const B e = xsimd::exp(-xsimd::abs(v));
        const B pos = one / (one + e);
        return xsimd::select(v >= zero, pos, e * pos);
      });
    case UnaryOp::kRelu:
      return run([&](B v) { return xsimd::select(v <= zero, zero, v); });
    case UnaryOp::kElu: {
      const B alpha(static_cast<T>(p0));
      return run([&](B v) { return xsimd::select(v > zero, v, alpha * xsimd::expm1(v)); });
    }
    case UnaryOp::kSoftplus:
      return run([&](B v) {
        const B pos = xsimd::select(v > zero, v, zero);
        return xsimd::select(xsimd::isnan(v), v, pos + xsimd::log1p(xsimd::exp(-xsimd::abs(v))));
      });
    case UnaryOp::kSin:
      return run([](B v) { return xsimd::sin(v); });
    case UnaryOp::kCos:
      return run([](B v) { return xsimd::cos(v); });
    case UnaryOp::kPow: {
      const B e(static_cast<T>(p0));
      return run([&](B v) { return xsimd::pow(v, e); });
    }
    case UnaryOp::kClamp: {
      const B l(static_cast<T>(p0)), h(static_cast<T>(p1));
      return run([&](B v) { return xsimd::select(v < l, l, xsimd::select(v > h, h, v)); });
    }
    case UnaryOp::kNanToNum: {
      const B value(static_cast<T>(p0));
      return run([&](B v) { return xsimd::select(xsimd::isnan(v), value, v); });
    }
  }
}

template <class T>
void binary(BinaryOp op, const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t n) {
  using B = Batch<T>;
  auto run = [&](auto f) {
    simd::map_binary<T>(a, sa, b, sb, y, n, f);
  };
  switch (op) {
    case BinaryOp::kAdd:
      return run([](B u, B v) { return u + v; });
    case BinaryOp::kSub:
      return run([](B u, B v) { return u - v; });
    case BinaryOp::kMul:
      return run([](B u, B v) { return u * v; });
    case BinaryOp::kDiv:
      return run([](B u, B v) { return u / v; });
    case BinaryOp::kPow:
      return run([](B u, B v) { return xsimd::pow(u, v); });
    case BinaryOp::kMax:  // a NaN v: u > v is false
      return run(
          [](B u, B v) { return xsimd::select(xsimd::isnan(u), u, xsimd::select(u > v, u, v)); });
    case BinaryOp::kMin:
      return run(
          [](B u, B v) { return xsimd::select(xsimd::isnan(u), u, xsimd::select(u < v, u, v)); });
    case BinaryOp::kEq:
      return run([](B u, B v) { return one_if<T>(u == v); });
    // IEEE: NaN != anything is true (spelled out because xsimd's AVX-512 `!=` is ordered).
    case BinaryOp::kNe:
      return run([](B u, B v) { return one_if<T>(!(u == v)); });
    case BinaryOp::kLt:
      return run([](B u, B v) { return one_if<T>(u < v); });
    case BinaryOp::kLe:
      return run([](B u, B v) { return one_if<T>(u <= v); });
    case BinaryOp::kGt:
      return run([](B u, B v) { return one_if<T>(u > v); });
    case BinaryOp::kGe:
      return run([](B u, B v) { return one_if<T>(u >= v); });
  }
}

}  // namespace

const ElementwiseKernels& elementwise_kernels() {
  static constexpr ElementwiseKernels kTable{
      {&unary<float>, &binary<float>},
      {&unary<double>, &binary<double>}};
  return kTable;
}

}  // namespace attnlab::ATTNLAB_ARCH
