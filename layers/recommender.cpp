#include "layers/recommender.hpp"

#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {

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

}  // namespace attnlab::nn
