// Numerically stable softmax and log-softmax along one axis (default: the last).
//
// Rule for a row whose entries are all -inf (a fully masked attention row): softmax gives a row
// of zeros and log_softmax a row of -inf; no NaN appears. Large finite logits (+-1e4) are exact
// thanks to the max subtraction. A NaN anywhere in a row makes the whole row NaN.
#pragma once

#include "core/tensor.hpp"

namespace attnlab {

Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);

// Backward kernels given the forward output y and the output gradient g (same shapes):
//   softmax:     dx = y * (g - sum(g * y, axis))
//   log_softmax: dx = g - exp(y) * sum(g, axis)
Tensor softmax_backward(const Tensor& y, const Tensor& g, int axis = -1);
Tensor log_softmax_backward(const Tensor& y, const Tensor& g, int axis = -1);

}  // namespace attnlab
