// The attnlab CLI plus a user's attention kind that takes a built-in kind's name ("favor"): the
// registrar runs before main(), where an exception would abort the program ("terminate called
// after throwing ..."); instead the registry refuses the kind and the first command that reads the
// registry fails with a one-line error (tests/experiments/test_experiments_cli.cpp).
#include "experiments/commands/main/cli_main.hpp"
#include "layers/attention/attention_registry.hpp"

namespace {

attnlab::nn::AttentionKind second_favor() {
  attnlab::nn::AttentionKind k;
  k.name = "favor";
  k.family = "mine";
  k.summary = "a user's kind under a built-in kind's name";
  k.capabilities.causal = k.capabilities.bidirectional = true;
  k.make = [](const attnlab::OptionValues&, const attnlab::nn::KernelContext& c) {
    return attnlab::nn::make_attention_kernel("softmax-fused", c);
  };
  return k;
}

const attnlab::nn::RegisterAttentionKind mine{{second_favor()}};

}  // namespace

int main(int argc, char** argv) {
  return attnlab::cli::run_main(argc, argv);
}
