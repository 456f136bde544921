// Scans along one axis. The decayed scan is the recurrence that LISA's recency-weighted codeword
// histograms and decayed linear attention are built on:
//   forward:  h_t = decay * h_(t-1) + x_t        (h_(-1) = 0)
//   reverse:  h_t = decay * h_(t+1) + x_t        (the backward of the forward scan)
// It is evaluated as a recurrence, never as cumsum(decay^-t x) * decay^t, which underflows in
// float32 once decay^t < 1e-38 (t ~ 870 for decay = exp(-0.1)).
#pragma once

#include "core/tensor.hpp"

namespace attnlab {

Tensor cumsum(const Tensor& x, int axis, bool reverse = false);
Tensor decayed_scan(const Tensor& x, int axis, double decay, bool reverse = false);

}  // namespace attnlab
