// Sequential recommenders and datasets by name, shared by `attnlab train`, `demo`, `sweep` and
// the lessons, so every command accepts the same model kinds:
//   any attention kind of nn::attention_kinds()  -> SASRec with that attention (layers/sasrec.hpp)
//   lisa-base, lisa-soft, lisa-mini              -> the LISA model (layers/lisa.hpp)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/attention_factory.hpp"
#include "layers/recommender.hpp"
#include "layers/seqrec_data.hpp"
#include "layers/transformer_block.hpp"

namespace attnlab::cli {

struct ModelOptions {
  std::string kind = "softmax-fused";
  int64_t num_items = 0;
  int64_t max_length = 200;
  int64_t dim = 50;
  int64_t blocks = 2;  // SASRec blocks (LISA has one attention layer, as in the paper)
  int64_t heads = 1;
  double dropout = 0.2;
  nn::NormPlacement norm = nn::NormPlacement::SASRec;
  nn::KernelConfig kernel;  // attention options (FAVOR+: features, redraw, ...)
  // LISA: B codebooks of W codewords for the sequence (Mini: also the target quantizer's B x W),
  // softmax temperature tau, histogram decay lambda (gamma = exp(-lambda)), selection mode.
  int64_t codebooks = 8, codewords = 16;
  int64_t target_codebooks = 8, target_codewords = 128;
  double tau = 0.7, decay = 0.1;
  std::string selection;       // soft, st, gumbel-soft, gumbel-st; empty: the variant's default
  std::string query = "hard";  // the LISA query's table row: hard or expected (LisaQuery)
  uint64_t seed = 0;
};

// "8x16" -> {8, 16}; a UsageError naming `flag` otherwise (B >= 1, W >= 2).
std::pair<int64_t, int64_t> parse_codebooks(const std::string& text, const std::string& flag);

// Every accepted kind with a one-line description.
std::vector<std::pair<std::string, std::string>> model_kinds();
bool is_model_kind(const std::string& kind);
// Builds the model; UsageError-free: an unknown kind throws attnlab::ValueError naming it.
std::shared_ptr<nn::SequenceRecommender> make_model(const ModelOptions& options);

// "synthetic" (the built-in generator, with `synthetic`'s settings), a MovieLens ratings.dat, or
// a SASRec-format file ("user item" per line).
nn::SequenceDataset load_sequences(const std::string& source, const nn::SyntheticConfig& synthetic);

}  // namespace attnlab::cli
