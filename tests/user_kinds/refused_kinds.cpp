// The attnlab CLI plus a user's kind the registry must refuse; which one is chosen by the
// environment variable ATTNLAB_TEST_REFUSED (read before main(), where the registrars run):
//   attention-duplicate  an attention kind named "favor" (a built-in kind's name)
//   attention-nameless   an attention kind without a name
//   model-duplicate      a model kind named "lisa-base" (a built-in model kind's name)
//   model-clash          a model kind named "favor" (an attention kind's, so already a model's)
// A registrar that threw before main() aborted the program ("terminate called after throwing
// ..."); now the first command that reads the registry fails with a one-line error
// (tests/experiments/test_experiments_cli.cpp).
#include <cstdlib>
#include <string>

#include "experiments/commands/main/cli_main.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/model_registry.hpp"

namespace {

using namespace attnlab;

std::string scenario() {
  const char* s = std::getenv("ATTNLAB_TEST_REFUSED");
  return s == nullptr ? "" : s;
}

std::vector<nn::AttentionKind> refused_attention_kinds() {
  nn::AttentionKind k;
  k.name = "favor";
  k.family = "mine";
  k.capabilities.causal = k.capabilities.bidirectional = true;
  k.make = [](const OptionValues&, const nn::KernelContext& c) {
    return nn::make_attention_kernel("softmax-fused", c);
  };
  if (scenario() == "attention-duplicate")
    return {k};
  if (scenario() == "attention-nameless") {
    k.name.clear();
    return {k};
  }
  return {};
}

std::vector<rec::ModelKind> refused_model_kinds() {
  rec::ModelKind m;
  m.family = "mine";
  m.stacked = false;
  m.make = [](const OptionValues&, const rec::ModelContext&) {
    return std::shared_ptr<rec::SequenceRecommender>();
  };
  if (scenario() == "model-duplicate") {
    m.name = "lisa-base";
    return {m};
  }
  if (scenario() == "model-clash") {
    m.name = "favor";
    return {m};
  }
  return {};
}

const nn::RegisterAttentionKind attention_kinds_under_test{refused_attention_kinds()};
const rec::RegisterModelKind model_kinds_under_test{refused_model_kinds()};

}  // namespace

int main(int argc, char** argv) {
  return cli::run_main(argc, argv);
}
