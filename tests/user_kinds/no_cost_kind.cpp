// The attnlab CLI plus a user's attention kind without a cost model (AttentionKind::cost is
// optional): softmax-fused under the name "no-cost". `bench attention` must show no GFLOP/s for
// it, not 0.0 (tests/experiments/test_experiments_cli.cpp).
#include "experiments/commands/main/cli_main.hpp"
#include "layers/attention/attention_registry.hpp"

namespace {

using namespace attnlab;

nn::AttentionKind no_cost_kind() {
  nn::AttentionKind k;
  k.name = "no-cost";
  k.family = "mine";
  k.summary = "softmax-fused without a cost model";
  k.capabilities.causal = k.capabilities.bidirectional = k.capabilities.key_padding = true;
  k.make = [](const OptionValues&, const nn::KernelContext& c) {
    return nn::make_attention_kernel("softmax-fused", c);
  };
  return k;
}

const nn::RegisterAttentionKind registered{{no_cost_kind()}};

}  // namespace

int main(int argc, char** argv) {
  return cli::run_main(argc, argv);
}
