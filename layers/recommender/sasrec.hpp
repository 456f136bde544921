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
#include <vector>

#include "layers/attention/attention_registry.hpp"
#include "layers/attention/transformer_block.hpp"
#include "layers/recommender/recommender.hpp"

namespace attnlab::rec {

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

class SASRec;

// One user's online inference (eval mode, no tape): push(item) appends the next item of the
// history and returns its hidden state [D]; scores for the next item are that row against the
// item embeddings. After t pushes the row equals hidden(history[0..t)) on the unpadded prefix
// (positions 0..t-1), last row. Exact attention keeps a key/value cache (O(t D) per push),
// FAVOR+ and linear kinds a running state (constant per push). Keeps a reference to the model,
// which must outlive it (sasrec_stream.cpp).
class SASRecStream {
 public:
  explicit SASRecStream(SASRec& model);
  Tensor push(int64_t item);
  int64_t length() const { return length_; }
  int64_t state_bytes() const;  // the attention caches or states of all blocks

 private:
  SASRec* model_;
  std::vector<TransformerBlockStream> blocks_;
  int64_t length_ = 0;
};

class SASRec : public SequenceRecommender {
 public:
  explicit SASRec(const SASRecConfig& config);
  Var hidden(const Tensor& input_ids) override;
  Var item_vectors(const Tensor& item_ids) override;
  // ValueError in training mode or when the attention kind has no streaming form.
  SASRecStream begin_stream() { return SASRecStream(*this); }
  int64_t num_items() const override { return config_.num_items; }
  int64_t max_length() const override { return config_.max_length; }
  std::string describe() const override;
  const SASRecConfig& config() const { return config_; }
  // What block `block`'s kernel is built from ({head_dim = dim / heads, seed = seed + 100 + block,
  // dropout}), and where it sits ("blocks.<block>.attn.kernel"): a kernel put in its place (a
  // shadow's exact kernel) is built the same way.
  KernelContext kernel_context(int64_t block) const;
  static std::string kernel_path(int64_t block);

  Child<Embedding> item_embedding, position_embedding;
  Child<Dropout> input_dropout;
  Child<ModuleList> blocks;
  Child<LayerNorm> final_norm;

 private:
  std::string attention_description() const;
  SASRecConfig config_;
  std::shared_ptr<Generator> dropout_rng_;
  std::vector<std::weak_ptr<Module>> built_kernels_;  // to tell a replaced kernel in describe()
};

}  // namespace attnlab::rec
