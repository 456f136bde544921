// Exact softmax attention on [batch, heads, length, head_dim] tensors, in two implementations of
// the same function:
//   reference: composed from tape primitives (scores, mask, softmax, weighted sum). O(L^2)
//              memory; every intermediate can be labelled, read and differentiated (the teaching
//              version, and the oracle for every other kernel);
//   fused:     a tiled online-softmax kernel (FlashAttention-style) as one custom op. The forward
//              keeps only the output and the per-row log-sum-exp; the backward recomputes the
//              score tiles. O(L * d) extra memory.
//
// Semantics (both implementations):
//   out[b,h,i] = sum_j softmax_j(scale * q_i . k_j + bias(i, j)) v_j over the allowed keys j,
//   scale = 1/sqrt(head_dim) unless given. With Lq != Lk the query i sits at key position
//   i' = i + (Lk - Lq) (bottom-right alignment, as in decoding with a key cache):
//   - causal: key j is allowed iff j <= i';
//   - key padding [B, Lk] (1 = real, 0 = pad): padded keys are never attended;
//   - decay lambda >= 0: bias(i, j) = -lambda * |i' - j| (ALiBi; LISA's decayed histograms).
//   A query row with no allowed key returns zeros (and its gradient is zero): never NaN.
//   Attention dropout (training) zeroes each weight with probability p and rescales by 1/(1-p);
//   the mask is a pure function of (key, b, h, i, j), so the fused kernel recomputes exactly the
//   reference's mask in its backward without storing it.
#pragma once

#include "autograd/var.hpp"
#include "core/enum_names.hpp"
#include "core/rng.hpp"
#include "layers/attention/attention.hpp"
#include "layers/attention/attention_inputs.hpp"

namespace attnlab::nn {

enum class SoftmaxImpl { Reference, Fused };
const EnumNames<SoftmaxImpl>& enum_names(SoftmaxImpl);  // "reference", "fused"

struct AttentionDropout {
  double p = 0.0;
  RngKey key{};
};

// What the reference implementation exposes: label, retain_grad() or hook these before backward.
struct AttentionTrace {
  Var scores;   // [B, H, Lq, Lk] after scale, bias and mask (-inf where masked)
  Var weights;  // [B, H, Lq, Lk] softmax (after dropout when p > 0)
};

Var softmax_attention(const Var& q,
                      const Var& k,
                      const Var& v,
                      const AttentionMask& mask = {},
                      SoftmaxImpl impl = SoftmaxImpl::Fused,
                      double scale = 0.0,
                      const AttentionDropout& dropout = {},
                      AttentionTrace* trace = nullptr);
Var softmax_attention_reference(const Var& q,
                                const Var& k,
                                const Var& v,
                                const AttentionMask& mask = {},
                                double scale = 0.0,
                                const AttentionDropout& dropout = {},
                                AttentionTrace* trace = nullptr);
Var softmax_attention_fused(const Var& q,
                            const Var& k,
                            const Var& v,
                            const AttentionMask& mask = {},
                            double scale = 0.0,
                            const AttentionDropout& dropout = {});

namespace detail {
// The flat index of weight (bh, i, j) in the dropout stream, and whether it is kept.
inline uint64_t dropout_index(int64_t bh, int64_t i, int64_t j, int64_t lq, int64_t lk) {
  return static_cast<uint64_t>((bh * lq + i) * lk + j);
}
// The dropout multipliers (0 or 1/(1-p)) for every weight, [B, H, Lq, Lk].
Tensor attention_dropout_mask(const AttentionDropout& dropout,
                              const Shape& weights_shape,
                              DType dtype);
}  // namespace detail

}  // namespace attnlab::nn
