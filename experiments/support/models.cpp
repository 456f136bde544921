#include "experiments/support/models.hpp"

#include "core/error.hpp"
#include "experiments/support/cli.hpp"

namespace attnlab::cli {

std::shared_ptr<rec::SequenceRecommender> make_model(const ModelOptions& o) {
  const rec::ModelKind& kind = rec::model_kind(o.kind);
  rec::ModelContext c;
  c.num_items = o.num_items;
  c.max_length = o.max_length;
  c.dim = o.dim;
  c.blocks = o.blocks;
  c.heads = o.heads;
  c.dropout = o.dropout;
  c.norm = o.norm;
  c.seed = o.seed;
  return kind.make(o.kind_options.empty() ? kind.options.defaults() : o.kind_options, c);
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

rec::SequenceDataset load_sequences(const std::string& source,
                                   const rec::SyntheticConfig& synthetic) {
  if (source == "synthetic")
    return rec::synthetic_sequences(synthetic);
  const std::string suffix = "ratings.dat";
  if (source.size() >= suffix.size() &&
      source.compare(source.size() - suffix.size(), suffix.size(), suffix) == 0)
    return rec::load_movielens_ratings(source);
  return rec::load_sasrec_file(source);
}

}  // namespace attnlab::cli
