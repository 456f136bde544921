// SASRec (Kang & McAuley, ICDM 2018) with any attention kind:
//   x = E[ids] * sqrt(D) + P[slot]  (E shared with the output scoring, row 0 = padding),
//   dropout, zero at padding, then N transformer blocks (causal + key-padding mask), then a final
//   LayerNorm. The default block layout is the original code's ("sasrec": queries from the
//   normalised input, keys and values from the raw input, no output projection, LayerNorm
//   epsilon 1e-8, as in the official code, github.com/kang205/SASRec, model.py and modules.py);
//   pre-LN and post-LN are options. The paper describes the block in Sec. III-B and III-C.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "layers/attention_registry.hpp"
#include "layers/recommender.hpp"
#include "layers/transformer_block.hpp"

namespace attnlab::nn {

struct SASRecConfig {
  int64_t num_items = 0;
  int64_t max_length = 200;
  int64_t dim = 50;
  int64_t blocks = 2;
  int64_t heads = 1;
  // Unset: dim (SASRec's position-wise FFN keeps the width).
  std::optional<int64_t> ffn_hidden;
  double dropout = 0.2;
  // The attention of every block: `kernel` builds each block's kernel from the context
  // {head_dim = dim / heads, seed = seed + 100 + block, dropout}; unset, the registered kind
  // `attention` with its default options. `attention` is also the name describe() shows.
  std::string attention = "softmax-fused";
  KernelFactory kernel;
  NormPlacement norm = NormPlacement::SASRec;
  bool out_proj = false;
  double norm_eps = 1e-8;
  uint64_t seed = 0;
};

class SASRec : public SequenceRecommender {
 public:
  explicit SASRec(const SASRecConfig& config);
  Var hidden(const Tensor& input_ids) override;
  Var item_vectors(const Tensor& item_ids) override;
  int64_t num_items() const override { return config_.num_items; }
  int64_t max_length() const override { return config_.max_length; }
  std::string describe() const override;
  const SASRecConfig& config() const { return config_; }

  std::shared_ptr<Embedding> item_embedding, position_embedding;
  std::shared_ptr<Dropout> input_dropout;
  std::shared_ptr<ModuleList> blocks;
  std::shared_ptr<LayerNorm> final_norm;

 private:
  SASRecConfig config_;
  std::shared_ptr<Generator> dropout_rng_;
};

}  // namespace attnlab::nn
