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

// One step of the scan over n contiguous values: y = decay * prev + x (y may alias x). The
// arithmetic decayed_scan itself uses: a kernel that fuses the scan calls it to stay bit-identical
// (one compiled copy, whatever the SIMD path or contraction of the caller).
void decayed_scan_step(const float* prev, const float* x, float* y, int64_t n, float decay);
void decayed_scan_step(const double* prev, const double* x, double* y, int64_t n, double decay);

}  // namespace attnlab
