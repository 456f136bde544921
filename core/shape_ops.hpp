// Layout ops. All of them materialise a new contiguous tensor (attnlab has no strided views),
// except reshape/unsqueeze/squeeze, which share storage. They accept every dtype.
#pragma once

#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace attnlab {

// out.shape[i] = x.shape[dims[i]]; dims is a permutation of 0..rank-1 (negative allowed).
Tensor permute(const Tensor& x, const std::vector<int>& dims);
Tensor transpose(const Tensor& x, int axis0, int axis1);
// Python-style x[start:stop:step] along axis: negative start/stop count from the end and
// out-of-range bounds are clamped; step >= 1.
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t stop, int64_t step = 1);
Tensor concat(const std::vector<Tensor>& xs, int axis);
Tensor stack(const std::vector<Tensor>& xs, int axis);
// Constant padding: widths[i] = (before, after) for dimension i; widths.size() == rank.
Tensor pad(const Tensor& x,
           const std::vector<std::pair<int64_t, int64_t>>& widths,
           double value = 0.0);
// Inserts / removes a size-1 dimension (shares storage).
Tensor unsqueeze(const Tensor& x, int axis);
Tensor squeeze(const Tensor& x, int axis);

}  // namespace attnlab
