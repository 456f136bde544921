// What every attention kernel shares about its inputs: the shape and dtype checks of q, k, v and
// the mask, and the mask as dense tensors (for reference implementations). Semantics of the mask
// (bottom-right alignment when Lq != Lk, padding, decay):
// layers/attention/softmax/softmax_attention.hpp.
#pragma once

#include "core/tensor.hpp"
#include "layers/attention/attention.hpp"

namespace attnlab::nn::detail {

// Checks shapes and dtypes of q, k, v and the mask (errors name `op` and the shapes).
void check_attention_inputs(
    const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask, const char* op);
// Dense [B or 1, 1, Lq, Lk] tensors for the reference: keep (1/0) and bias (0 / -decay|i'-j|).
Tensor attention_keep_mask(
    const AttentionMask& mask, int64_t batch, int64_t lq, int64_t lk, DType dtype);
Tensor attention_bias(const AttentionMask& mask, int64_t lq, int64_t lk, DType dtype);

}  // namespace attnlab::nn::detail
