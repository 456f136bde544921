#include "layers/sasrec.hpp"

#include <cmath>
#include <sstream>

#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {

SASRec::SASRec(const SASRecConfig& c) : SequenceRecommender("SASRec"), config_(c) {
  ATTNLAB_CHECK(c.num_items > 0 && c.max_length > 0 && c.dim > 0 && c.blocks >= 0 && c.heads > 0,
                ValueError,
                "SASRec: num_items, max_length, dim and heads must be positive and "
                "blocks >= 0");
  ATTNLAB_CHECK(!c.ffn_hidden || *c.ffn_hidden > 0,
                ValueError,
                "SASRec: ffn_hidden must be positive when set, got ",
                c.ffn_hidden.value_or(0));
  Generator init(c.seed);
  dropout_rng_ = std::make_shared<Generator>(c.seed + 1);
  EmbeddingOptions item_opt;
  item_opt.padding_idx = 0;
  item_opt.init = InitSpec{Init::XavierUniform};  // TF's default (glorot_uniform)
  item_embedding = register_module(
      "item_embedding", std::make_shared<Embedding>(c.num_items + 1, c.dim, init, item_opt));
  EmbeddingOptions pos_opt;
  pos_opt.init = InitSpec{Init::XavierUniform};
  position_embedding = register_module(
      "position_embedding", std::make_shared<Embedding>(c.max_length, c.dim, init, pos_opt));
  input_dropout =
      register_module("input_dropout", std::make_shared<Dropout>(c.dropout, dropout_rng_));
  blocks = register_module("blocks", std::make_shared<ModuleList>());
  TransformerBlockOptions bo;
  bo.dim = c.dim;
  bo.ffn_hidden = c.ffn_hidden.value_or(c.dim);
  bo.dropout = c.dropout;
  bo.norm = c.norm;
  bo.norm_eps = c.norm_eps;
  for (int64_t b = 0; b < c.blocks; ++b) {
    KernelContext kc;
    kc.dropout = c.dropout;
    kc.seed = c.seed + 100 + static_cast<uint64_t>(b);
    kc.head_dim = c.dim / c.heads;
    MultiHeadAttentionOptions mo;
    mo.heads = c.heads;
    mo.out_proj = c.out_proj;
    auto attn = std::make_shared<MultiHeadAttention>(
        c.dim, c.kernel ? c.kernel(kc) : attention_kind(c.attention).make_default(kc), init, mo);
    blocks->push_back(std::make_shared<TransformerBlock>(attn, bo, init, dropout_rng_));
  }
  final_norm = register_module("final_norm", std::make_shared<LayerNorm>(c.dim, c.norm_eps));
}

Var SASRec::hidden(const Tensor& ids) {
  check_input_ids(ids, "SASRec");
  auto s = scope();
  const int64_t b = ids.size(0), l = ids.size(1);
  Tensor keep = gt(ids.to(kFloat32), 0.0);  // [B, L]: 1 for items, 0 for padding
  AttentionMask mask;
  mask.causal = true;
  mask.key_padding = keep;
  Var x = item_embedding->forward(ids) * std::sqrt(static_cast<double>(config_.dim));
  x = x + position_embedding->forward(arange(l, kInt64).reshape({1, l}));
  x = input_dropout->forward(x);
  x = x * ag::constant(keep.to(x.dtype()).reshape({b, l, 1}));
  for (std::size_t i = 0; i < blocks->size(); ++i)
    x = blocks->at<TransformerBlock>(i)->forward(x, mask);
  return final_norm->forward(x);
}

Var SASRec::item_vectors(const Tensor& item_ids) {
  auto s = scope();
  return item_embedding->forward(item_ids);
}

std::string SASRec::describe() const {
  std::ostringstream os;
  os << "SASRec(items=" << config_.num_items << ", dim=" << config_.dim
     << ", blocks=" << config_.blocks << ", heads=" << config_.heads
     << ", attention=" << config_.attention << ", max_length=" << config_.max_length << ")";
  return os.str();
}

}  // namespace attnlab::nn
