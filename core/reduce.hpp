// Reductions over one axis, several axes, or all elements. Float32/float64 only (argmax also
// accepts int64). Summation uses several SIMD accumulators in a fixed order: results are
// deterministic and independent of the thread count, though not bit-identical to a naive loop.
// NaN propagates through sum/mean/max/min/logsumexp/norm.
#pragma once

#include <vector>

#include "core/tensor.hpp"

namespace attnlab {

// All elements -> a rank-0 tensor.
Tensor sum(const Tensor& x);
Tensor mean(const Tensor& x);
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
// One axis (negative counts from the end). keepdim leaves a size-1 dimension in its place.
Tensor sum(const Tensor& x, int axis, bool keepdim = false);
Tensor mean(const Tensor& x, int axis, bool keepdim = false);
Tensor max(const Tensor& x, int axis, bool keepdim = false);
Tensor min(const Tensor& x, int axis, bool keepdim = false);
Tensor logsumexp(const Tensor& x, int axis, bool keepdim = false);  // all -inf -> -inf
Tensor norm(const Tensor& x, int axis, bool keepdim = false);       // Euclidean
// Several axes (each once, any order).
Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim = false);
// Index (int64) of the largest element along axis; ties -> the lowest index; a NaN counts as
// the largest (the first NaN wins), as in numpy.
Tensor argmax(const Tensor& x, int axis, bool keepdim = false);
Tensor argmin(const Tensor& x, int axis, bool keepdim = false);

// Un-broadcasting: sums x over the dimensions that broadcasting added or stretched, so the result
// has `shape` (the gradient of a broadcast). Throws ShapeError if x's shape is not a broadcast
// of `shape`.
Tensor sum_to_shape(const Tensor& x, const Shape& shape);
// Materialises x broadcast to `shape` (numpy.broadcast_to, but a copy).
Tensor broadcast_to(const Tensor& x, const Shape& shape);

}  // namespace attnlab
