#include "layers/attention_factory.hpp"

#include "layers/softmax_kernel.hpp"

namespace attnlab::nn {

const std::vector<AttentionKind>& attention_kinds() {
  static const std::vector<AttentionKind> kinds = {
      {"softmax-reference", "exact softmax, composed from tape primitives (O(L^2) memory)"},
      {"softmax-fused", "exact softmax, tiled online-softmax kernel (O(L d) memory)"},
      {"favor", "FAVOR+ positive random features, orthogonal (Performer)"},
      {"favor-iid", "FAVOR+ positive random features, iid Gaussian projections"},
      {"favor-hyp", "FAVOR+ hyperbolic positive features [exp(u), exp(-u)] (2m features)"},
      {"favor-trig", "FAVOR+ trigonometric features [sin, cos] (2m features; signed)"},
      {"favor-relu", "FAVOR+ generalized features relu(W x) (Performer-ReLU)"},
      {"linear-elu", "linear attention with elu(x) + 1 features (Katharopoulos et al.)"},
  };
  return kinds;
}

std::shared_ptr<AttentionKernel> make_attention_kernel(const std::string& name,
                                                       const KernelConfig& config) {
  auto rng = std::make_shared<Generator>(config.seed);
  if (name == "softmax-reference") {
    return std::make_shared<SoftmaxKernel>(SoftmaxImpl::Reference, config.dropout, rng);
  }
  if (name == "softmax-fused") {
    return std::make_shared<SoftmaxKernel>(SoftmaxImpl::Fused, config.dropout, rng);
  }
  FavorOptions f;
  f.head_dim = config.head_dim;
  f.projections = config.features;
  f.orthogonal = config.orthogonal;
  f.norm = config.feature_norm;
  f.redraw = config.redraw;
  f.seed = config.seed;
  f.query_stabilizer = config.query_stabilizer;
  f.key_stabilizer = config.key_stabilizer;
  f.impl = config.favor_impl;
  auto favor = [&](FeatureMap map, double default_eps) {
    f.features.map = map;
    f.features.epsilon = config.epsilon.value_or(default_eps);
    return std::make_shared<FavorKernel>(f);
  };
  if (name == "favor")
    return favor(FeatureMap::Positive, 0.0);
  if (name == "favor-iid") {
    f.orthogonal = false;
    return favor(FeatureMap::Positive, 0.0);
  }
  if (name == "favor-hyp")
    return favor(FeatureMap::Hyperbolic, 0.0);
  if (name == "favor-trig")
    return favor(FeatureMap::Trigonometric, 0.0);
  if (name == "favor-relu") {
    f.features.fn = GeneralizedFn::ReLU;
    return favor(FeatureMap::Generalized, 1e-3);
  }
  if (name == "linear-elu")
    return favor(FeatureMap::EluPlusOne, 0.0);
  std::string known;
  for (const auto& k : attention_kinds()) known += (known.empty() ? "" : ", ") + k.name;
  throw ValueError("attention kind '" + name + "' is unknown (known: " + known + ")");
}

}  // namespace attnlab::nn
