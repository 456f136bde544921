// A transformer block around any AttentionModule:
//   pre-LN  : x = x + drop(attn(LN1(x)));        x = x + drop(ffn(LN2(x)))
//   post-LN : x = LN1(x + drop(attn(x)));        x = LN2(x + drop(ffn(x)))
//   sasrec  : q = LN1(x); x = q + drop(attn(q, x)); y = LN2(x); x = y + drop(ffn(y))
//             (the original SASRec code: queries from the normalised input, keys and values from
//             the raw input, residuals onto the normalised tensors)
// Padded positions (mask.key_padding, self-attention) are zeroed at the end of the block, as
// SASRec does, so padding never leaks into the next block.
#pragma once

#include <memory>

#include "core/enum_names.hpp"
#include "layers/attention/attention.hpp"
#include "layers/nn/basic.hpp"

namespace attnlab::nn {

enum class NormPlacement { Pre, Post, SASRec };
const EnumNames<NormPlacement>& enum_names(NormPlacement);
NormPlacement parse_norm_placement(const std::string& name);  // "pre", "post", "sasrec"

struct TransformerBlockOptions {
  int64_t dim = 64;
  int64_t ffn_hidden = 256;
  double dropout = 0.1;
  NormPlacement norm = NormPlacement::Pre;
  double norm_eps = 1e-5;
  Activation activation = Activation::ReLU;
};

class TransformerBlock;
class MultiHeadAttentionStream;

// One block one position at a time (eval mode, no tape): step(x) with the new position's input
// row [D] returns its output row [D], the last row of forward(x, causal) over the positions so
// far (no padding). Needs a MultiHeadAttention whose kernel streams; keeps a reference to the
// block, which must outlive it (multihead_attention_stream.cpp).
class TransformerBlockStream {
 public:
  explicit TransformerBlockStream(TransformerBlock& block);
  TransformerBlockStream(TransformerBlockStream&&) noexcept;
  ~TransformerBlockStream();
  Tensor step(const Tensor& x);
  int64_t state_bytes() const;

 private:
  TransformerBlock* block_;
  std::unique_ptr<MultiHeadAttentionStream> attention_;
};

class TransformerBlock : public Module {
 public:
  TransformerBlock(std::shared_ptr<AttentionModule> attention,
                   const TransformerBlockOptions& opt,
                   Generator& init_rng,
                   std::shared_ptr<Generator> dropout_rng);
  Var forward(const Var& x, const AttentionMask& mask);  // [B, L, D] -> [B, L, D]
  TransformerBlockStream begin_stream() { return TransformerBlockStream(*this); }
  std::string describe() const override;

  Child<AttentionModule> attention;
  Child<LayerNorm> norm1, norm2;
  Child<FeedForward> ffn;
  Child<Dropout> drop1, drop2;
  TransformerBlockOptions options;
};

}  // namespace attnlab::nn
