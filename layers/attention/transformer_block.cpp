#include "layers/attention/transformer_block.hpp"

#include <sstream>

#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {

const EnumNames<NormPlacement>& enum_names(NormPlacement) {
  static const EnumNames<NormPlacement> names{
      {NormPlacement::SASRec, "sasrec", "the SASRec code's layout"},
      {NormPlacement::Pre, "pre", "pre-LN"},
      {NormPlacement::Post, "post", "post-LN"}};
  return names;
}
NormPlacement parse_norm_placement(const std::string& name) {
  return enum_names(NormPlacement{}).parse(name, "norm placement");
}

TransformerBlock::TransformerBlock(std::shared_ptr<AttentionModule> attn,
                                   const TransformerBlockOptions& opt,
                                   Generator& init_rng,
                                   std::shared_ptr<Generator> dropout_rng)
    : Module("TransformerBlock"), options(opt) {
  ATTNLAB_CHECK(attn, ValueError, "TransformerBlock: null attention module");
  register_module("attn", attention, std::move(attn));
  register_module("norm1", norm1, std::make_shared<LayerNorm>(opt.dim, opt.norm_eps));
  register_module("dropout1", drop1, std::make_shared<Dropout>(opt.dropout, dropout_rng));
  register_module("norm2", norm2, std::make_shared<LayerNorm>(opt.dim, opt.norm_eps));
  register_module("ffn",
                  ffn,
                  std::make_shared<FeedForward>(
                      opt.dim, opt.ffn_hidden, init_rng, opt.dropout, dropout_rng, opt.activation));
  register_module("dropout2", drop2, std::make_shared<Dropout>(opt.dropout, dropout_rng));
}

Var TransformerBlock::forward(const Var& x, const AttentionMask& mask) {
  ATTNLAB_CHECK(x.dim() == 3 && x.shape()[2] == options.dim,
                ShapeError,
                "TransformerBlock: input must be [batch, length, ",
                options.dim,
                "], got ",
                x.shape());
  Var h;
  switch (options.norm) {
    case NormPlacement::Pre: {
      h = x + drop1(attention(norm1(x), mask));
      h = h + drop2(ffn(norm2(h)));
      break;
    }
    case NormPlacement::Post: {
      h = norm1(x + drop1(attention(x, mask)));
      h = norm2(h + drop2(ffn(h)));
      break;
    }
    case NormPlacement::SASRec: {
      Var q = norm1(x);
      h = q + drop1(attention(q, x, mask));
      Var y = norm2(h);
      h = y + drop2(ffn(y));
      break;
    }
  }
  if (mask.key_padding.defined()) {
    // [B, L] -> [B, L, 1] in the activations' dtype: padded positions leave the block as zeros.
    Tensor keep = mask.key_padding.to(h.dtype()).reshape({x.shape()[0], x.shape()[1], 1});
    h = h * ag::constant(keep);
  }
  return h;
}

std::string TransformerBlock::describe() const {
  const char* names[] = {"pre", "post", "sasrec"};
  std::ostringstream os;
  os << "TransformerBlock(dim=" << options.dim << ", ffn=" << options.ffn_hidden
     << ", dropout=" << options.dropout << ", norm=" << names[static_cast<int>(options.norm)]
     << ")";
  return os.str();
}

}  // namespace attnlab::nn
