#include "layers/recommender/recommender.hpp"

#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::rec {

Var SequenceRecommender::scores(const Var& hidden, const Tensor& item_ids) {
  ATTNLAB_CHECK(hidden.dim() == item_ids.dim(),
                ShapeError,
                "scores: hidden ",
                hidden.shape(),
                " [..., D] and candidates ",
                item_ids.shape(),
                " [..., C] need the same rank");
  Var v = item_vectors(item_ids);     // [..., C, D]
  Var h = ag::unsqueeze(hidden, -2);  // [..., 1, D]
  return ag::sum(v * h, -1);          // [..., C]
}

void SequenceRecommender::check_input_ids(const Tensor& ids, const char* model) const {
  ATTNLAB_CHECK(ids.dtype() == kInt64 && ids.dim() == 2 && ids.size(1) <= max_length(),
                ShapeError,
                model,
                ": input ids must be int64 [batch, length <= ",
                max_length(),
                "], got ",
                ids.dtype(),
                " ",
                ids.shape());
}

std::shared_ptr<const SequenceRecommender::StepState> SequenceRecommender::capture_step_state()
    const {
  auto s = std::make_shared<StepState>();
  s->forward = capture_forward_state(*this);
  return s;
}

void SequenceRecommender::restore_step_state(const StepState& state) {
  restore_forward_state(*this, state.forward);
}

}  // namespace attnlab::rec
