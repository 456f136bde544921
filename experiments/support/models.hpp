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

// What `train`, `sweep`, `demo` and the benchmarks build: the context every model kind is built
// from (rec::ModelContext: items, length, width, blocks, heads, dropout, norm, seed), the kind, and
// the kind's own options.
struct ModelOptions : rec::ModelContext {
  std::string kind = "softmax-fused";  // any of rec::model_kinds()
  // The kind's own options (its options struct, e.g. nn::FavorOptions or rec::LISAConfig, from
  // kind_option_values or KindFlags); empty: the kind's defaults.
  OptionValues kind_options;
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
