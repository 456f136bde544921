// The attnlab CLI plus two user attention kinds without a cost model (AttentionKind::cost is
// optional): softmax-fused under the name "no-cost" and softmax-reference under "no-cost-weights".
// `bench attention` must show no GFLOP/s for them, not 0.0, and skip them at the lengths their
// declared O(L^2) capabilities name (tests/experiments/test_experiments_cli.cpp).
#include "experiments/commands/main/cli_main.hpp"
#include "layers/attention/attention_registry.hpp"

namespace {

using namespace attnlab;

nn::AttentionKind no_cost_kind(const std::string& name, const std::string& builtin) {
  nn::AttentionKind k;
  k.name = name;
  k.family = "mine";
  k.summary = builtin + " without a cost model";
  k.capabilities.causal = k.capabilities.bidirectional = k.capabilities.key_padding = true;
  k.capabilities.quadratic_time = true;
  k.capabilities.quadratic_memory = builtin == "softmax-reference";
  k.make = [builtin](const OptionValues&, const nn::KernelContext& c) {
    return nn::make_attention_kernel(builtin, c);
  };
  return k;
}

const nn::RegisterAttentionKind registered{{no_cost_kind("no-cost", "softmax-fused"),
                                            no_cost_kind("no-cost-weights", "softmax-reference")}};

}  // namespace

int main(int argc, char** argv) {
  return cli::run_main(argc, argv);
}
