// The one small interface every attention layer implements, so transformer blocks and models
// take any attention kind (exact softmax, FAVOR+, linear, LISA) interchangeably.
#pragma once

#include "layers/nn/module.hpp"

namespace attnlab::nn {

// Which keys each query may attend to, and the positional bias.
struct AttentionMask {
  bool causal = false;  // query i sees keys j <= i (with Lq == Lk)
  // [B, Lk] with 1 for real keys and 0 for padding (undefined: no padding). Padded keys receive
  // no attention at all (they are removed from numerator and normaliser alike).
  Tensor key_padding;
  // ALiBi-style distance penalty: logits get -decay * (i - j) (decay >= 0; for causal masks).
  // LISA's recency-decayed histograms are exactly this bias with decay = -ln(gamma).
  double decay = 0.0;
};

class AttentionModule : public Module {
 public:
  using Module::Module;
  // q_in: [B, Lq, D] (queries are computed from it), kv_in: [B, Lk, D] (keys and values).
  // Returns [B, Lq, D].
  virtual Var forward(const Var& q_in, const Var& kv_in, const AttentionMask& mask) = 0;
  Var forward(const Var& x, const AttentionMask& mask) { return forward(x, x, mask); }
};

}  // namespace attnlab::nn
