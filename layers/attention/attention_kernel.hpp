// The kernel interface of multi-head attention: what runs between the projections. Each family
// (exact softmax, FAVOR+, LISA, ...) implements it; MultiHeadAttention takes any of them. It is a
// Module, so kernels with state (FAVOR+'s projection matrix, a redraw generator) save and load
// with the model.
#pragma once

#include <memory>

#include "layers/attention/attention.hpp"
#include "layers/attention/attention_stream.hpp"

namespace attnlab::nn {

class AttentionKernel : public Module {
 public:
  using Module::Module;
  // q, k: [B, H, Lq or Lk, dh], v: [B, H, Lk, dv] -> [B, H, Lq, dv].
  virtual Var attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) = 0;
  // The causal attention one position at a time, for online inference (attention_stream.hpp),
  // with `heads` heads. Eval mode only. The default throws ValueError: no streaming form.
  virtual std::unique_ptr<AttentionStream> begin_stream(int64_t heads) const;
};

}  // namespace attnlab::nn
