// Attention kinds by name, for experiments, benchmarks and models: one place that knows how to
// build every kernel of the family from a small configuration.
//
//   auto kernel = nn::make_attention_kernel("softmax-fused", cfg);   // an AttentionKernel module
//   auto mha = std::make_shared<nn::MultiHeadAttention>(dim, kernel, init_rng, mha_options);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/multihead_attention.hpp"

namespace attnlab::nn {

struct KernelConfig {
  double dropout = 0.0;   // attention-weight dropout (kinds that have weights)
  uint64_t seed = 0;      // for kernels with random state (dropout masks, random features)
  int64_t head_dim = 64;  // kinds whose state depends on it (random features)
};

struct AttentionKind {
  std::string name;
  std::string summary;
};

// The registered kinds, in a stable order.
const std::vector<AttentionKind>& attention_kinds();
// Builds a kernel; throws ValueError listing the kinds for an unknown name.
std::shared_ptr<AttentionKernel> make_attention_kernel(const std::string& name,
                                                       const KernelConfig& config = {});

}  // namespace attnlab::nn
