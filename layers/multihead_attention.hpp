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
#include "layers/basic.hpp"
#include "layers/softmax_attention.hpp"

namespace attnlab::nn {

class AttentionKernel : public Module {
 public:
  using Module::Module;
  // q, k: [B, H, Lq or Lk, dh], v: [B, H, Lk, dv] -> [B, H, Lq, dv].
  virtual Var attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) = 0;
};

// Exact softmax attention. Attention-weight dropout (training only) draws its mask from the
// generator, one stream per call; the reference implementation keeps the last trace.
class SoftmaxKernel : public AttentionKernel {
 public:
  explicit SoftmaxKernel(SoftmaxImpl impl = SoftmaxImpl::Fused,
                         double dropout = 0.0,
                         std::shared_ptr<Generator> rng = nullptr);
  Var attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) override;
  std::string describe() const override;
  const AttentionTrace& last_trace() const { return trace_; }  // reference only
  SoftmaxImpl impl;
  double dropout;

 private:
  std::shared_ptr<Generator> rng_;
  AttentionTrace trace_;
};

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

  Child<Linear> w_q, w_k, w_v, w_o;  // w_o null without out_proj
  Child<AttentionKernel> kernel;
  int64_t dim, heads;
};

// [B, L, H * dh] <-> [B, H, L, dh]
Var split_heads(const Var& x, int64_t heads);
Var merge_heads(const Var& x);

}  // namespace attnlab::nn
