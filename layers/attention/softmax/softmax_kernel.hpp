// Exact softmax attention as an AttentionKernel (for MultiHeadAttention, TransformerBlock, the
// models). Attention-weight dropout (training only) draws its mask from the generator, one stream
// per call; the reference implementation keeps the last trace.
#pragma once

#include <memory>

#include "layers/attention/attention_kernel.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"

namespace attnlab::nn {

class SoftmaxKernel : public AttentionKernel {
 public:
  explicit SoftmaxKernel(SoftmaxImpl impl = SoftmaxImpl::Fused,
                         double dropout = 0.0,
                         std::shared_ptr<Generator> rng = nullptr);
  Var attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) override;
  // The key/value cache (softmax_attention_stream.cpp).
  std::unique_ptr<AttentionStream> begin_stream(int64_t heads) const override;
  std::string describe() const override;
  const AttentionTrace& last_trace() const { return trace_; }  // reference only
  SoftmaxImpl impl;
  double dropout;

 private:
  std::shared_ptr<Generator> rng_;
  AttentionTrace trace_;
};

}  // namespace attnlab::nn
