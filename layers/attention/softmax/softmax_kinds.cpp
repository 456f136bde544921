// The exact softmax kinds (layers/attention/softmax/softmax_attention.hpp): the reference composed
// from tape primitives and the fused online-softmax kernel. Their only setting, attention-weight
// dropout, comes from the model (KernelContext::dropout), so they declare no options of their own.
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/softmax/softmax_kernel.hpp"

namespace attnlab::nn {
namespace {

// FlashAttention's accounting (Dao et al. 2022): forward S = Q K^T and O = P V, 2 Lq Lk (d + dv);
// backward 2.5x that (S recomputed, dV, dP, dQ, dK: 2 Lq Lk (3 d + 2 dv)); halved by a causal
// mask. Bytes: q, k, v read and o written once (plus the per-row log-sum-exp); the backward also
// reads o and dO and writes dq, dk, dv.
AttentionCost softmax_cost(const AttentionShape& s, const OptionValues&) {
  const double pairs = static_cast<double>(s.lq) * s.lk * s.batch_heads * (s.causal ? 0.5 : 1.0);
  const double bh = static_cast<double>(s.batch_heads), e = static_cast<double>(s.element_bytes);
  const double q = s.lq * s.d, k = s.lk * s.d, v = s.lk * s.dv, o = s.lq * s.dv;
  AttentionCost c;
  c.forward_flops = 2.0 * pairs * (s.d + s.dv);
  c.backward_flops = 2.0 * pairs * (3.0 * s.d + 2.0 * s.dv);
  c.forward_bytes = bh * e * (q + k + v + o + s.lq);
  c.backward_bytes = bh * e * (q + k + v + 2 * o + s.lq + q + k + v);
  return c;
}

AttentionKind softmax_kind(const std::string& name, SoftmaxImpl impl, const std::string& summary) {
  KindCapabilities caps;
  caps.causal = caps.bidirectional = caps.key_padding = caps.distance_decay = caps.dropout = true;
  caps.quadratic_time = true;
  caps.quadratic_memory = impl == SoftmaxImpl::Reference;  // [Lq, Lk] weights on the tape
  AttentionKind kind = AttentionKind::with_options<NoOptions>(
      name,
      "softmax",
      summary,
      impl == SoftmaxImpl::Fused ? "Vaswani et al. 2017; Dao et al. 2022 (FlashAttention)"
                                 : "Vaswani et al. 2017",
      caps,
      OptionBinder<NoOptions>(),
      [impl](const NoOptions&, const KernelContext& c) {
        return std::make_shared<SoftmaxKernel>(
            impl, c.dropout, std::make_shared<Generator>(c.seed));
      });
  kind.cost = softmax_cost;
  return kind;
}

const RegisterAttentionKind softmax_kinds{{
    softmax_kind("softmax-reference",
                 SoftmaxImpl::Reference,
                 "exact softmax, composed from tape primitives (O(L^2) memory)"),
    softmax_kind("softmax-fused",
                 SoftmaxImpl::Fused,
                 "exact softmax, tiled online-softmax kernel (O(L d) memory)"),
}};

}  // namespace
}  // namespace attnlab::nn
