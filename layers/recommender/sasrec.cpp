#include "layers/recommender/sasrec.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/attention/multihead_attention.hpp"

namespace attnlab::rec {

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
  register_module("item_embedding",
                  item_embedding,
                  std::make_shared<Embedding>(c.num_items + 1, c.dim, init, item_opt));
  EmbeddingOptions pos_opt;
  pos_opt.init = InitSpec{Init::XavierUniform};
  register_module("position_embedding",
                  position_embedding,
                  std::make_shared<Embedding>(c.max_length, c.dim, init, pos_opt));
  register_module(
      "input_dropout", input_dropout, std::make_shared<Dropout>(c.dropout, dropout_rng_));
  register_module("blocks", blocks, std::make_shared<ModuleList>());
  TransformerBlockOptions bo;
  bo.dim = c.dim;
  bo.ffn_hidden = c.ffn_hidden.value_or(c.dim);
  bo.dropout = c.dropout;
  bo.norm = c.norm;
  bo.norm_eps = c.norm_eps;
  for (int64_t b = 0; b < c.blocks; ++b) {
    const KernelContext kc = kernel_context(b);
    MultiHeadAttentionOptions mo;
    mo.heads = c.heads;
    mo.out_proj = c.out_proj;
    auto attn = std::make_shared<MultiHeadAttention>(
        c.dim, c.kernel ? c.kernel(kc) : attention_kind(c.attention).make_default(kc), init, mo);
    blocks->push_back(std::make_shared<TransformerBlock>(attn, bo, init, dropout_rng_));
  }
  register_module("final_norm", final_norm, std::make_shared<LayerNorm>(c.dim, c.norm_eps));
  for (int64_t b = 0; b < c.blocks; ++b) built_kernels_.push_back(module_at(kernel_path(b)));
}

KernelContext SASRec::kernel_context(int64_t block) const {
  KernelContext kc;
  kc.dropout = config_.dropout;
  kc.seed = config_.seed + 100 + static_cast<uint64_t>(block);
  kc.head_dim = config_.dim / config_.heads;
  return kc;
}

std::string SASRec::kernel_path(int64_t block) {
  return "blocks." + std::to_string(block) + ".attn.kernel";
}

// config.attention while the blocks hold the kernels built from it; a replaced kernel (see
// Module::replace_module) by its own description.
std::string SASRec::attention_description() const {
  std::vector<std::string> kinds;
  for (std::size_t b = 0; b < built_kernels_.size(); ++b) {
    const auto kernel = module_at(kernel_path(static_cast<int64_t>(b)));
    const std::string kind =
        kernel == built_kernels_[b].lock() ? config_.attention : kernel->describe();
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
      kinds.push_back(kind);
  }
  std::string out = kinds.empty() ? config_.attention : kinds[0];
  for (std::size_t i = 1; i < kinds.size(); ++i) out += " | " + kinds[i];
  return out;
}

Var SASRec::hidden(const Tensor& ids) {
  check_input_ids(ids, "SASRec");
  const int64_t b = ids.size(0), l = ids.size(1);
  Tensor keep = gt(ids.to(kFloat32), 0.0);  // [B, L]: 1 for items, 0 for padding
  AttentionMask mask;
  mask.causal = true;
  mask.key_padding = keep;
  Var x = item_embedding(ids) * std::sqrt(static_cast<double>(config_.dim));
  x = x + position_embedding(arange(l, kInt64).reshape({1, l}));
  x = input_dropout(x);
  x = x * ag::constant(keep.to(x.dtype()).reshape({b, l, 1}));
  for (std::size_t i = 0; i < blocks->size(); ++i)
    x = call(*blocks->at<TransformerBlock>(i), x, mask);
  return final_norm(x);
}

Var SASRec::item_vectors(const Tensor& item_ids) {
  return item_embedding(item_ids);
}

std::string SASRec::describe() const {
  std::ostringstream os;
  os << "SASRec(items=" << config_.num_items << ", dim=" << config_.dim
     << ", blocks=" << config_.blocks << ", heads=" << config_.heads
     << ", attention=" << attention_description() << ", max_length=" << config_.max_length << ")";
  return os.str();
}

}  // namespace attnlab::rec
