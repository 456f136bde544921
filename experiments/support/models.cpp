#include "experiments/support/models.hpp"

#include "core/error.hpp"
#include "layers/sasrec.hpp"

namespace attnlab::cli {

std::vector<std::pair<std::string, std::string>> model_kinds() {
  std::vector<std::pair<std::string, std::string>> kinds;
  for (const auto& k : nn::attention_kinds())
    kinds.emplace_back(k.name, "SASRec with " + k.summary);
  return kinds;
}

bool is_model_kind(const std::string& kind) {
  for (const auto& k : model_kinds())
    if (k.first == kind)
      return true;
  return false;
}

std::shared_ptr<nn::SequenceRecommender> make_model(const ModelOptions& o) {
  if (!is_model_kind(o.kind)) {
    std::string names;
    for (const auto& k : model_kinds()) names += (names.empty() ? "" : ", ") + k.first;
    throw ValueError("make_model: unknown model kind '" + o.kind + "' (known: " + names + ")");
  }
  nn::SASRecConfig mc;
  mc.num_items = o.num_items;
  mc.max_length = o.max_length;
  mc.dim = o.dim;
  mc.blocks = o.blocks;
  mc.heads = o.heads;
  mc.dropout = o.dropout;
  mc.attention = o.kind;
  mc.kernel = o.kernel;
  mc.norm = o.norm;
  mc.seed = o.seed;
  return std::make_shared<nn::SASRec>(mc);
}

nn::SequenceDataset load_sequences(const std::string& source,
                                   const nn::SyntheticConfig& synthetic) {
  if (source == "synthetic")
    return nn::synthetic_sequences(synthetic);
  const std::string suffix = "ratings.dat";
  if (source.size() >= suffix.size() &&
      source.compare(source.size() - suffix.size(), suffix.size(), suffix) == 0)
    return nn::load_movielens_ratings(source);
  return nn::load_sasrec_file(source);
}

}  // namespace attnlab::cli
