// Sequential recommenders and datasets by name, shared by `attnlab train`, `demo`, `sweep` and
// the lessons, so every command accepts the same model kinds: those of rec::model_kinds() (SASRec
// with any attention kind, and the registered models such as lisa-base, lisa-soft, lisa-mini).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/option_binder.hpp"
#include "layers/attention/transformer_block.hpp"
#include "layers/recommender/model_registry.hpp"
#include "layers/recommender/recommender.hpp"
#include "layers/recommender/seqrec_data.hpp"

namespace attnlab::cli {

struct ModelOptions {
  std::string kind = "softmax-fused";  // any of rec::model_kinds()
  int64_t num_items = 0;
  int64_t max_length = 200;
  int64_t dim = 50;
  int64_t blocks = 2;  // SASRec blocks (LISA has one attention layer, as in the paper)
  int64_t heads = 1;
  double dropout = 0.2;
  nn::NormPlacement norm = nn::NormPlacement::SASRec;
  // The kind's own options (its options struct, e.g. nn::FavorOptions or rec::LISAConfig, from
  // kind_option_values or KindFlags); empty: the kind's defaults.
  OptionValues kind_options;
  uint64_t seed = 0;
};

// "8x16" -> {8, 16}; a UsageError naming `flag` otherwise (B >= 1, W >= 2).
std::pair<int64_t, int64_t> parse_codebooks(const std::string& text, const std::string& flag);

// Builds the model through the registry (layers/recommender/model_registry.hpp); an unknown kind
// throws attnlab::ValueError listing the kinds.
std::shared_ptr<rec::SequenceRecommender> make_model(const ModelOptions& options);

// "synthetic" (the built-in generator, with `synthetic`'s settings), a MovieLens ratings.dat, or
// a SASRec-format file ("user item" per line).
rec::SequenceDataset load_sequences(const std::string& source,
                                    const rec::SyntheticConfig& synthetic);

}  // namespace attnlab::cli
