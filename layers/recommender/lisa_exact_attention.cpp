// LISA's attention computed exactly over the unquantized inputs
// (layers/recommender/lisa_exact_attention.hpp; docs/derivations/lisa_histograms.md 8).
#include "layers/recommender/lisa_exact_attention.hpp"

#include <cmath>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"

namespace attnlab::rec {
namespace {

// r [B, N L, D] -> (r_b W^b) as heads [N, B, L, D]; an undefined w is the identity.
ag::Var project_heads(const ag::Var& r, const ag::Var& w, int64_t n, int64_t l) {
  const int64_t nb = r.size(0), d = r.size(2);
  ag::Var p = w.defined() ? ag::matmul(r, w) : r;  // B batched [N L, D] x [D, D]
  return ag::permute(ag::reshape(p, {nb, n, l, d}), {1, 0, 2, 3});
}

void check_exact_inputs(const nn::LisaAttentionOptions& o,
                        const ag::Var& inputs,
                        const Tensor& keep) {
  constexpr const char* op = "lisa_exact_attention";
  ATTNLAB_CHECK(inputs.dim() == 4 && inputs.size(2) == o.codebooks && inputs.size(3) == o.dim,
                ShapeError,
                op,
                ": inputs must be [N, L, B, D] = [N, L, ",
                o.codebooks,
                ", ",
                o.dim,
                "], got ",
                inputs.shape());
  ATTNLAB_CHECK(!keep.defined() || keep.shape() == Shape({inputs.size(0), inputs.size(1)}),
                ShapeError,
                op,
                ": keep must be [N, L] = [",
                inputs.size(0),
                ", ",
                inputs.size(1),
                "], got ",
                keep.shape());
}

}  // namespace

ag::Var lisa_exact_attention(const nn::LisaAttention& layer,
                             const ag::Var& inputs,
                             const Tensor& keep) {
  const nn::LisaAttentionOptions& o = layer.options();
  check_exact_inputs(o, inputs, keep);
  const int64_t n = inputs.size(0), l = inputs.size(1), nb = o.codebooks, d = o.dim;
  // [N, L, B, D] -> [B, N L, D]: one batched product per projection.
  ag::Var r = ag::reshape(ag::permute(inputs, {2, 0, 1, 3}), {nb, n * l, d});
  ag::Var q = project_heads(r, layer.w_q, n, l);
  ag::Var k = project_heads(r, layer.w_k, n, l);
  ag::Var v = project_heads(r, layer.w_v, n, l);
  // The histograms' recency factor gamma^(i-j) is the additive bias -lambda (i - j) (section 4);
  // padded keys are removed as padded positions are removed from the histograms.
  nn::AttentionMask mask;
  mask.causal = o.causal;
  mask.key_padding = keep;
  mask.decay = o.decay;
  const double scale = o.scale != 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(d));
  ag::Var heads = nn::softmax_attention_fused(q, k, v, mask, scale);  // [N, B, L, D]
  return ag::sum(heads, 1);  // summed over codebooks, no W_O
}

}  // namespace attnlab::rec
