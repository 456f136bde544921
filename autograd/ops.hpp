// Differentiable ops on Var. Shapes, broadcasting and dtype rules are those of the core kernels of
// the same name. The backward formulas are not restated here: they are in the formula comment
// above each recorded op in autograd/ops_*.cpp and in autograd/derivatives.md (attnlab's
// derivatives.yaml), whose rows tests/autograd/test_autograd_derivatives_table.cpp checks against
// this header.
#pragma once

#include <initializer_list>
#include <utility>
#include <vector>

#include "autograd/var.hpp"

namespace attnlab::ag {

// ---- arithmetic (ops_arith.cpp); binary ops broadcast, gradients are un-broadcast ---------------
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
Var pow(const Var& a, const Var& b);      // a > 0 where b's gradient is needed
Var maximum(const Var& a, const Var& b);  // ties split the gradient equally
Var minimum(const Var& a, const Var& b);
Var add(const Var& a, double b);
Var sub(const Var& a, double b);
Var sub(double a, const Var& b);
Var mul(const Var& a, double b);
Var div(const Var& a, double b);
Var div(double a, const Var& b);
Var pow(const Var& a, double exponent);
Var neg(const Var& a);

inline Var operator+(const Var& a, const Var& b) {
  return add(a, b);
}
inline Var operator-(const Var& a, const Var& b) {
  return sub(a, b);
}
inline Var operator*(const Var& a, const Var& b) {
  return mul(a, b);
}
inline Var operator/(const Var& a, const Var& b) {
  return div(a, b);
}
inline Var operator-(const Var& a) {
  return neg(a);
}
inline Var operator+(const Var& a, double b) {
  return add(a, b);
}
inline Var operator-(const Var& a, double b) {
  return sub(a, b);
}
inline Var operator*(const Var& a, double b) {
  return mul(a, b);
}
inline Var operator/(const Var& a, double b) {
  return div(a, b);
}
inline Var operator+(double a, const Var& b) {
  return add(b, a);
}
inline Var operator-(double a, const Var& b) {
  return sub(a, b);
}
inline Var operator*(double a, const Var& b) {
  return mul(b, a);
}
inline Var operator/(double a, const Var& b) {
  return div(a, b);
}

// ---- unary math (ops_unary.cpp) -----------------------------------------------------------------
Var exp(const Var& x);
Var log(const Var& x);
Var log1p(const Var& x);
Var expm1(const Var& x);
Var sqrt(const Var& x);
Var rsqrt(const Var& x);
Var square(const Var& x);
Var reciprocal(const Var& x);
Var abs(const Var& x);  // gradient sign(x), 0 at 0
Var tanh(const Var& x);
Var sigmoid(const Var& x);
Var relu(const Var& x);  // gradient 0 at 0
Var elu(const Var& x, double alpha = 1.0);
Var softplus(const Var& x);
Var sin(const Var& x);
Var cos(const Var& x);
Var clamp(const Var& x, double lo, double hi);  // gradient 1 inside [lo, hi], 0 outside

// ---- selection, masking and special gradients (ops_select.cpp) ----------------------------------
// cond != 0 ? a : b (cond is a 0/1 tensor; no gradient flows to it).
Var where(const Tensor& cond, const Var& a, const Var& b);
// x with `value` wherever mask != 0 (mask broadcasts to x); masked positions get no gradient.
Var masked_fill(const Var& x, const Tensor& mask, double value);
// Forward value of `hard`, gradient of `soft` (the straight-through estimator: the gradient
// flows to `soft` as if the output were `soft`; `hard` receives none). Same shapes.
Var straight_through(const Var& hard, const Var& soft);
// Differentiable dtype conversion (the gradient is converted back).
Var cast(const Var& x, DType dtype);
// Non-differentiable outputs: constants flagged with their op (requires_grad_() on them fails).
Var argmax(const Var& x, int axis, bool keepdim = false);
Var one_hot(const Var& index, int64_t num_classes, DType dtype = kFloat32);

// ---- reductions (ops_reduce.cpp) ----------------------------------------------------------------
Var sum(const Var& x);
Var sum(const Var& x, int axis, bool keepdim = false);
Var sum(const Var& x, const std::vector<int>& axes, bool keepdim = false);
Var mean(const Var& x);
Var mean(const Var& x, int axis, bool keepdim = false);
Var mean(const Var& x, const std::vector<int>& axes, bool keepdim = false);
Var max(const Var& x, int axis, bool keepdim = false);  // ties split the gradient equally
Var min(const Var& x, int axis, bool keepdim = false);
Var logsumexp(const Var& x, int axis, bool keepdim = false);
Var norm(const Var& x, int axis, bool keepdim = false);  // gradient 0 where the norm is 0
Var broadcast_to(const Var& x, const Shape& shape);
Var sum_to_shape(const Var& x, const Shape& shape);

// ---- normalisation (ops_norm.cpp) ---------------------------------------------------------------
// Layer norm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias, fused (one node).
// weight and bias ([D]) may be undefined Vars (no affine part).
Var layer_norm(const Var& x, const Var& weight, const Var& bias, double eps = 1e-5);

// ---- matmul and softmax (ops_matmul.cpp, ops_softmax.cpp) ---------------------------------------
Var matmul(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);
// x [rows, in] w^T + b for w [out, in], b [out] in one node (a Linear layer; ops_matmul.cpp).
Var linear(const Var& x, const Var& w, const Var& b);
Var softmax(const Var& x, int axis = -1);
Var log_softmax(const Var& x, int axis = -1);

// ---- layout (ops_shape.cpp) ---------------------------------------------------------------------
Var reshape(const Var& x, std::initializer_list<int64_t> dims);  // one dim may be -1
Var reshape(const Var& x, const std::vector<int64_t>& dims);
Var reshape(const Var& x, const Shape& shape);
Var flatten(const Var& x);
Var permute(const Var& x, const std::vector<int>& dims);
Var transpose(const Var& x, int axis0, int axis1);
Var slice(const Var& x, int axis, int64_t start, int64_t stop, int64_t step = 1);
Var concat(const std::vector<Var>& xs, int axis);
Var stack(const std::vector<Var>& xs, int axis);
Var pad(const Var& x, const std::vector<std::pair<int64_t, int64_t>>& widths, double value = 0.0);
Var unsqueeze(const Var& x, int axis);
Var squeeze(const Var& x, int axis);

// ---- indexing and scans (ops_index.cpp, ops_scan.cpp) -------------------------------------------
Var index_select(const Var& x, int axis, const Tensor& index);
// Rows of `table` ([V, D]) for int64 ids of any shape: out.shape = ids.shape + [D]. The row
// padding_idx (if >= 0) gets no gradient, so it stays what it was (zero for padding).
Var embedding(const Var& table, const Tensor& ids, int64_t padding_idx = -1);
Var gather(const Var& x, int axis, const Tensor& index);
Var cumsum(const Var& x, int axis, bool reverse = false);
// h_t = decay * h_(t-1) + x_t along axis (reverse: from the end); see core/scan.hpp.
Var decayed_scan(const Var& x, int axis, double decay, bool reverse = false);

}  // namespace attnlab::ag
