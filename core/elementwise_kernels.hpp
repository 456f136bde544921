// The element-wise kernels one SIMD path provides (core/elementwise_kernels.cpp): the tensor ops
// of core/elementwise.hpp check, broadcast and split the work, then call these on contiguous runs.
#pragma once

#include <cstdint>

#include "core/simd_dispatch.hpp"

namespace attnlab {

enum class UnaryOp {
  kNeg,
  kAbs,
  kSign,
  kExp,
  kLog,
  kLog1p,
  kExpm1,
  kSqrt,
  kRsqrt,
  kSquare,
  kReciprocal,
  kTanh,
  kSigmoid,
  kRelu,
  kElu,  // p0 = alpha
  kSoftplus,
  kSin,
  kCos,
  kPow,       // p0 = exponent
  kClamp,     // p0 = lo, p1 = hi
  kNanToNum,  // p0 = value
};

enum class BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kMax, kMin, kEq, kNe, kLt, kLe, kGt, kGe };

template <class T>
struct ElementwiseFns {
  // y = op(x) on n contiguous values (x == y allowed).
  void (*unary)(UnaryOp op, double p0, double p1, const T* x, T* y, int64_t n);
  // y = op(a, b) on n values; each operand an array (stride 1) or one value (stride 0).
  void (*binary)(BinaryOp op, const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t n);
};

struct ElementwiseKernels {
  ElementwiseFns<float> f32;
  ElementwiseFns<double> f64;
};

ATTNLAB_DECLARE_KERNELS(ElementwiseKernels, elementwise_kernels)

}  // namespace attnlab
