#include "layers/attention_factory.hpp"

namespace attnlab::nn {

const std::vector<AttentionKind>& attention_kinds() {
  static const std::vector<AttentionKind> kinds = {
      {"softmax-reference", "exact softmax, composed from tape primitives (O(L^2) memory)"},
      {"softmax-fused", "exact softmax, tiled online-softmax kernel (O(L d) memory)"},
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
  std::string known;
  for (const auto& k : attention_kinds()) known += (known.empty() ? "" : ", ") + k.name;
  throw ValueError("attention kind '" + name + "' is unknown (known: " + known + ")");
}

}  // namespace attnlab::nn
