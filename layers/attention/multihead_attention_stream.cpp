// MultiHeadAttention and TransformerBlock one position at a time (eval mode, no tape): the same
// modules' forwards applied to the new position's row, with the kernel's AttentionStream in place
// of the causal attention over the whole sequence. In eval mode dropout is the identity and, with
// no padding, the block's padding mask multiplies by one, so the row equals the last row of the
// full forward (up to the kernels' summation order).
#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/attention/multihead_attention.hpp"
#include "layers/attention/transformer_block.hpp"

namespace attnlab::nn {

MultiHeadAttentionStream::MultiHeadAttentionStream(MultiHeadAttention& layer)
    : layer_(&layer), kernel_(layer.kernel->begin_stream(layer.heads)) {
  ATTNLAB_CHECK(!layer.is_training(),
                ValueError,
                "MultiHeadAttention::begin_stream: streaming is inference only; call eval() first");
}

Tensor MultiHeadAttentionStream::step(const Tensor& q_in, const Tensor& kv_in) {
  const int64_t d = layer_->dim, h = layer_->heads;
  ATTNLAB_CHECK(q_in.dim() == 1 && kv_in.dim() == 1 && q_in.size(0) == d && kv_in.size(0) == d,
                ShapeError,
                "MultiHeadAttentionStream::step: inputs must be rows [",
                d,
                "], got ",
                q_in.shape(),
                " and ",
                kv_in.shape());
  ATTNLAB_CHECK(!layer_->is_training(),
                ValueError,
                "MultiHeadAttentionStream::step: the layer was put back in training mode");
  ag::NoGradGuard no_grad;
  const Var q_row = ag::constant(q_in.reshape({1, d})),
            kv_row = ag::constant(kv_in.reshape({1, d}));
  const Tensor q = layer_->w_q->forward(q_row).value().reshape({h, d / h});
  const Tensor k = layer_->w_k->forward(kv_row).value().reshape({h, d / h});
  const Tensor v = layer_->w_v->forward(kv_row).value().reshape({h, d / h});
  const Tensor o = kernel_->step(q, k, v).reshape({1, d});
  return layer_->w_o ? layer_->w_o->forward(ag::constant(o)).value().reshape({d}) : o.reshape({d});
}

TransformerBlockStream::TransformerBlockStream(TransformerBlock& block) : block_(&block) {
  auto* mha = dynamic_cast<MultiHeadAttention*>(block.attention.get().get());
  ATTNLAB_CHECK(mha != nullptr,
                ValueError,
                "TransformerBlock::begin_stream: the attention module ",
                block.attention->describe(),
                " has no streaming form (MultiHeadAttention has)");
  ATTNLAB_CHECK(!block.is_training(),
                ValueError,
                "TransformerBlock::begin_stream: streaming is inference only; call eval() first");
  attention_ = std::make_unique<MultiHeadAttentionStream>(*mha);
}

TransformerBlockStream::TransformerBlockStream(TransformerBlockStream&&) noexcept = default;
TransformerBlockStream::~TransformerBlockStream() = default;

int64_t TransformerBlockStream::state_bytes() const {
  return attention_->state_bytes();
}

// The three layouts of TransformerBlock::forward on one row (dropout: identity in eval mode).
Tensor TransformerBlockStream::step(const Tensor& x_in) {
  ag::NoGradGuard no_grad;
  const TransformerBlock& b = *block_;
  const Var x = ag::constant(x_in);
  auto attend = [&](const Var& q, const Var& kv) {
    return ag::constant(attention_->step(q.value(), kv.value()));
  };
  Var h;
  switch (b.options.norm) {
    case NormPlacement::Pre: {
      const Var n = b.norm1->forward(x);
      h = x + attend(n, n);
      h = h + b.ffn->forward(b.norm2->forward(h));
      break;
    }
    case NormPlacement::Post: {
      h = b.norm1->forward(x + attend(x, x));
      h = b.norm2->forward(h + b.ffn->forward(h));
      break;
    }
    case NormPlacement::SASRec: {
      const Var q = b.norm1->forward(x);
      h = q + attend(q, x);
      const Var y = b.norm2->forward(h);
      h = y + b.ffn->forward(y);
      break;
    }
  }
  return h.value();
}

}  // namespace attnlab::nn
