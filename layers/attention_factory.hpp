// Attention kinds by name, for experiments, benchmarks and models: one place that knows how to
// build every kernel of the family from a small configuration.
//
//   auto kernel = nn::make_attention_kernel("softmax-fused", cfg);   // an AttentionKernel module
//   auto mha = std::make_shared<nn::MultiHeadAttention>(dim, kernel, init_rng, mha_options);
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "layers/attention_registry.hpp"
#include "layers/favor_attention.hpp"
#include "layers/multihead_attention.hpp"

namespace attnlab::nn {

struct KernelConfig {
  double dropout = 0.0;   // attention-weight dropout (kinds that have weights; FAVOR+ ignores it)
  uint64_t seed = 0;      // for kernels with random state (dropout masks, random features)
  int64_t head_dim = 64;  // kinds whose state depends on it (random features)

  // FAVOR+ kinds (favor, favor-iid, favor-hyp, favor-trig, favor-relu, linear-elu); the kind
  // chooses the feature map. See layers/favor_attention.hpp.
  int64_t features = 256;                       // m random projections (hyp, trig: 2m features)
  bool orthogonal = true;                       // block-orthogonal rows (favor-iid: always iid)
  FeatureNorm feature_norm = FeatureNorm::Chi;  // row norms: chi(d) (unbiased) or sqrt(d)
  // Added to every feature. Unset: 0 for the exponential maps and elu+1 (the stabilisers then
  // cancel exactly), 1e-3 for favor-relu (the paper's kernel epsilon; relu rows can be all 0).
  std::optional<double> epsilon;
  KeyStabilizer key_stabilizer = KeyStabilizer::Auto;     // causal: running max, else global max
  bool query_stabilizer = true;                           // each query row's max
  RedrawOptions redraw{RedrawPolicy::EveryNCalls, 1000};  // training calls only
  FavorImpl favor_impl = FavorImpl::Fused;                // or the composed reference
};

// Transitional: builds kind `name` of the registry (layers/attention_registry.hpp) from a
// KernelConfig. ValueError for an unknown name.
std::shared_ptr<AttentionKernel> make_attention_kernel(const std::string& name,
                                                       const KernelConfig& config);

}  // namespace attnlab::nn
