// Element-wise kernels for float32 and float64 tensors.
//
// Binary ops broadcast like numpy. Both operands must have the same dtype (no silent promotion);
// a double scalar operand takes the tensor's dtype. Comparisons return 0/1 in the operands' dtype,
// so their result is directly usable as a mask. NaN propagates through every op except
// comparisons (where NaN compares false, as in IEEE).
#pragma once

#include "core/tensor.hpp"

namespace attnlab {

// ---- unary ------------------------------------------------------------------------------------
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);  // -1, 0 or 1 (NaN stays NaN)
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);  // 1 / sqrt(x)
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);                  // 1 / (1 + exp(-x))
Tensor relu(const Tensor& x);                     // max(x, 0); relu(NaN) = NaN
Tensor elu(const Tensor& x, double alpha = 1.0);  // x if x > 0 else alpha * (exp(x) - 1)
Tensor softplus(const Tensor& x);  // log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|))
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor clamp(const Tensor& x, double lo, double hi);
// Replaces NaN by `value` (used by tests and anomaly tooling; not differentiable).
Tensor nan_to_num(const Tensor& x, double value = 0.0);

// ---- binary (broadcasting) --------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // NaN if either is NaN
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
// cond != 0 ? a : b, broadcasting all three. cond has the dtype of a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// Scalar forms (the scalar takes the tensor's dtype).
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor sub(double a, const Tensor& b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor div(double a, const Tensor& b);
Tensor maximum(const Tensor& a, double b);
Tensor minimum(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor eq(const Tensor& a, double b);

inline Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
inline Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
inline Tensor operator-(const Tensor& a) {
  return neg(a);
}
inline Tensor operator+(const Tensor& a, double b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, double b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, double b) {
  return mul(a, b);
}
inline Tensor operator/(const Tensor& a, double b) {
  return div(a, b);
}
inline Tensor operator+(double a, const Tensor& b) {
  return add(b, a);
}
inline Tensor operator-(double a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(double a, const Tensor& b) {
  return mul(b, a);
}
inline Tensor operator/(double a, const Tensor& b) {
  return div(a, b);
}

// ---- in place (same shape and dtype; used by optimizers and gradient accumulation) -------------
void add_(const Tensor& y, const Tensor& x);                 // y += x
void axpy_(const Tensor& y, double alpha, const Tensor& x);  // y += alpha * x
void scale_(const Tensor& y, double alpha);                  // y *= alpha

// True if any element is NaN or +-Inf (the anomaly-mode check).
bool has_nonfinite(const Tensor& x);

}  // namespace attnlab
