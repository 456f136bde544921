#include "experiments/support/models.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "experiments/support/cli.hpp"
#include "layers/recommender/lisa_model.hpp"

namespace attnlab::cli {

std::shared_ptr<rec::SequenceRecommender> make_model(const ModelOptions& o) {
  const rec::ModelKind& kind = rec::model_kind(o.kind);
  const rec::ModelContext& context = o;
  return kind.make(o.kind_options.empty() ? kind.options.defaults() : o.kind_options, context);
}

std::pair<int64_t, int64_t> parse_codebooks(const std::string& text, const std::string& flag) {
  try {
    return rec::parse_lisa_codebooks(text, flag);
  } catch (const ValueError& e) {
    throw UsageError(e.what());  // the same message, as a CLI usage error
  }
}

rec::SequenceDataset load_sequences(const std::string& source,
                                    const rec::SyntheticConfig& synthetic) {
  if (source == "synthetic") {
    // Fewer items than the generator's topics (20 by default): one topic per item, so that
    // --synthetic-items 10 gives data, not an error about a setting no flag sets.
    rec::SyntheticConfig c = synthetic;
    c.topics = std::min(c.topics, c.items);
    c.favourite_topics = std::min(c.favourite_topics, c.topics);
    return rec::synthetic_sequences(c);
  }
  const std::string suffix = "ratings.dat";
  if (source.size() >= suffix.size() &&
      source.compare(source.size() - suffix.size(), suffix.size(), suffix) == 0)
    return rec::load_movielens_ratings(source);
  return rec::load_sasrec_file(source);
}

}  // namespace attnlab::cli
