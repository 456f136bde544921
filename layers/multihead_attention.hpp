// Multi-head attention with a pluggable kernel:
//   q = x_q W_Q^T, k = x_kv W_K^T, v = x_kv W_V^T, split into heads -> [B, H, L, D/H],
//   o = kernel.attend(q, k, v, mask), merged back -> [B, Lq, D], then W_O (optional: SASRec has
//   no output projection).
// The kernel is any AttentionKernel: exact softmax (reference or fused), FAVOR+, linear, ... It
// is a Module, so kernels with state (FAVOR+'s projection matrix, redraw generator) save and load
// with the model.
#pragma once

#include <memory>

#include "layers/attention.hpp"
#include "layers/attention_kernel.hpp"
#include "layers/basic.hpp"

namespace attnlab::nn {

struct MultiHeadAttentionOptions {
  int64_t heads = 1;
  bool bias = true;      // on the Q, K, V (and O) projections
  bool out_proj = true;  // W_O
  InitSpec init{Init::XavierUniform};
};

class MultiHeadAttention : public AttentionModule {
 public:
  MultiHeadAttention(int64_t dim,
                     std::shared_ptr<AttentionKernel> kernel,
                     Generator& init_rng,
                     const MultiHeadAttentionOptions& opt = {});
  using AttentionModule::forward;
  Var forward(const Var& q_in, const Var& kv_in, const AttentionMask& mask) override;
  std::string describe() const override;

  std::shared_ptr<Linear> w_q, w_k, w_v, w_o;  // w_o null without out_proj
  std::shared_ptr<AttentionKernel> kernel;
  int64_t dim, heads;
};

// [B, L, H * dh] <-> [B, H, L, dh]
Var split_heads(const Var& x, int64_t heads);
Var merge_heads(const Var& x);

}  // namespace attnlab::nn
