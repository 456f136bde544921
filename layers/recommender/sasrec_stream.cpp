// SASRec one item at a time (layers/recommender/sasrec.hpp, SASRecStream): the embedding of the new
// item at the next position, each block's TransformerBlockStream, the final LayerNorm.
#include <cmath>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/recommender/sasrec.hpp"

namespace attnlab::rec {

SASRecStream::SASRecStream(SASRec& model) : model_(&model) {
  ATTNLAB_CHECK(!model.is_training(),
                ValueError,
                "SASRec::begin_stream: streaming is inference only; call eval() first");
  for (std::size_t i = 0; i < model.blocks->size(); ++i)
    blocks_.push_back(model.blocks->at<TransformerBlock>(i)->begin_stream());
}

Tensor SASRecStream::push(int64_t item) {
  const SASRecConfig& c = model_->config();
  ATTNLAB_CHECK(!model_->is_training(),
                ValueError,
                "SASRecStream::push: the model was put back in training mode");
  ATTNLAB_CHECK(item >= 1 && item <= c.num_items,
                ValueError,
                "SASRecStream::push: item must be in [1, ",
                c.num_items,
                "], got ",
                item);
  ATTNLAB_CHECK(length_ < c.max_length,
                ValueError,
                "SASRecStream::push: the history already holds max_length = ",
                c.max_length,
                " items (positions 0..",
                c.max_length - 1,
                "); SASRec has no position for item ",
                length_ + 1);
  ag::NoGradGuard no_grad;
  Var x = model_->item_embedding->forward(full({1}, static_cast<double>(item), kInt64)) *
          std::sqrt(static_cast<double>(c.dim));
  x = x + model_->position_embedding->forward(full({1}, static_cast<double>(length_), kInt64));
  Tensor row = x.value().reshape({c.dim});
  for (TransformerBlockStream& b : blocks_) row = b.step(row);
  ++length_;
  return model_->final_norm->forward(ag::constant(row)).value();
}

int64_t SASRecStream::state_bytes() const {
  int64_t bytes = 0;
  for (const TransformerBlockStream& b : blocks_) bytes += b.state_bytes();
  return bytes;
}

}  // namespace attnlab::rec
