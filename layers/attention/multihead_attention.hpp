// Multi-head attention with a pluggable kernel:
//   q = x_q W_Q^T, k = x_kv W_K^T, v = x_kv W_V^T, split into heads -> [B, H, L, D/H],
//   o = kernel.attend(q, k, v, mask), merged back -> [B, Lq, D], then W_O (optional: SASRec has
//   no output projection).
// The kernel is any AttentionKernel: exact softmax (reference or fused), FAVOR+, linear, ... It
// is a Module, so kernels with state (FAVOR+'s projection matrix, redraw generator) save and load
// with the model.
#pragma once

#include <memory>

#include "layers/attention/attention.hpp"
#include "layers/attention/attention_kernel.hpp"
#include "layers/nn/basic.hpp"

namespace attnlab::nn {

struct MultiHeadAttentionOptions {
  int64_t heads = 1;
  bool bias = true;      // on the Q, K, V (and O) projections
  bool out_proj = true;  // W_O
  InitSpec init{Init::XavierUniform};
};

class MultiHeadAttention;

// Causal self-attention of one MultiHeadAttention one position at a time (eval mode, no tape):
// step(q_in, kv_in) with the new position's query input and key/value input rows [D] returns
// its output row [D], the last row of forward(q_in, kv_in, causal) over the positions so far.
// Keeps a reference to the layer, which must outlive it (multihead_attention_stream.cpp).
class MultiHeadAttentionStream {
 public:
  explicit MultiHeadAttentionStream(MultiHeadAttention& layer);
  Tensor step(const Tensor& q_in, const Tensor& kv_in);
  int64_t state_bytes() const { return kernel_->state_bytes(); }

 private:
  MultiHeadAttention* layer_;
  std::unique_ptr<AttentionStream> kernel_;
};

class MultiHeadAttention : public AttentionModule {
 public:
  MultiHeadAttention(int64_t dim,
                     std::shared_ptr<AttentionKernel> kernel,
                     Generator& init_rng,
                     const MultiHeadAttentionOptions& opt = {});
  using AttentionModule::forward;
  Var forward(const Var& q_in, const Var& kv_in, const AttentionMask& mask) override;
  // ValueError in training mode or when the kernel has no streaming form.
  MultiHeadAttentionStream begin_stream() { return MultiHeadAttentionStream(*this); }
  std::string describe() const override;

  Child<Linear> w_q, w_k, w_v, w_o;  // w_o null without out_proj
  Child<AttentionKernel> kernel;
  int64_t dim, heads;
};

// [B, L, H * dh] <-> [B, H, L, dh]
Var split_heads(const Var& x, int64_t heads);
Var merge_heads(const Var& x);

}  // namespace attnlab::nn
