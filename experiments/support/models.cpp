#include "experiments/support/models.hpp"

#include "core/error.hpp"
#include "experiments/support/cli.hpp"
#include "layers/lisa.hpp"
#include "layers/sasrec.hpp"

namespace attnlab::cli {

std::vector<std::pair<std::string, std::string>> model_kinds() {
  std::vector<std::pair<std::string, std::string>> kinds;
  for (const auto& k : nn::attention_kinds())
    kinds.emplace_back(k.name, "SASRec with " + k.summary);
  kinds.emplace_back("lisa-base",
                     "LISA-Base: codeword-histogram attention, hard codes, targets quantized");
  kinds.emplace_back("lisa-soft",
                     "LISA-Soft: soft codeword histograms, raw target embeddings, regulariser");
  kinds.emplace_back("lisa-mini",
                     "LISA-Mini: small sequence codebooks, a separate target quantizer");
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
  if (o.kind.rfind("lisa-", 0) == 0) {
    nn::LISAConfig lc;
    lc.num_items = o.num_items;
    lc.max_length = o.max_length;
    lc.dim = o.dim;
    lc.codebooks = o.codebooks;
    lc.codewords = o.codewords;
    lc.variant = nn::parse_lisa_variant(o.kind.substr(5));
    if (!o.selection.empty())
      lc.selection = nn::parse_selection(o.selection);
    lc.query = nn::parse_lisa_query(o.query);
    lc.tau = o.tau;
    lc.tau_end = o.tau;
    lc.decay = o.decay;
    lc.target_codebooks = o.target_codebooks;
    lc.target_codewords = o.target_codewords;
    lc.dropout = o.dropout;
    // The official LISA code's Soft configs add 1e-2 * ||e - stopgrad(x_hat)||^2.
    lc.regularizer = lc.variant == nn::LisaVariant::Soft ? 1e-2 : 0.0;
    lc.seed = o.seed;
    return std::make_shared<nn::LISA>(lc);
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

std::pair<int64_t, int64_t> parse_codebooks(const std::string& text, const std::string& flag) {
  const auto x = text.find('x');
  int64_t b = 0, w = 0;
  try {
    if (x == std::string::npos)
      throw std::invalid_argument(text);
    size_t used_b = 0, used_w = 0;
    b = std::stoll(text.substr(0, x), &used_b);
    w = std::stoll(text.substr(x + 1), &used_w);
    if (used_b != x || used_w != text.size() - x - 1)
      throw std::invalid_argument(text);
  } catch (const std::exception&) {
    throw UsageError(flag + ": expected BxW such as 8x16, got '" + text + "'");
  }
  if (b < 1 || w < 2)
    throw UsageError(flag + ": need B >= 1 codebooks of W >= 2 codewords, got '" + text + "'");
  return {b, w};
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
