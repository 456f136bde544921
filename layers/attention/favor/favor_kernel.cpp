// FavorKernel: FAVOR+ as a pluggable AttentionKernel (MultiHeadAttention, TransformerBlock, the
// attention factory), with its random features as a submodule and the last call's trace.
#include <cmath>
#include <sstream>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/attention/favor/favor_attention.hpp"

namespace attnlab::nn {

FavorKernel::FavorKernel(const FavorOptions& o) : AttentionKernel("FavorKernel"), options_(o) {
  ATTNLAB_CHECK(o.head_dim >= 1 && o.projections >= 1,
                ValueError,
                "FavorKernel: head_dim and projections must be >= 1, got head_dim ",
                o.head_dim,
                ", projections ",
                o.projections);
  ATTNLAB_CHECK(o.features.epsilon >= 0 && std::isfinite(o.features.epsilon),
                ValueError,
                "FavorKernel: epsilon must be finite and >= 0, got ",
                o.features.epsilon);
  if (uses_projection(o.features.map)) {
    ProjectionOptions p;
    p.features = o.projections;
    p.dim = o.head_dim;
    p.orthogonal = o.orthogonal;
    p.norm = o.norm;
    register_module("features", features_, std::make_shared<RandomFeatures>(p, o.redraw, o.seed));
  }
}

Var FavorKernel::attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) {
  // A replay under FreezeTracesGuard leaves the last trace (and its gradients) alone.
  const bool tracing = !traces_frozen();
  const bool keep = keep_trace && tracing, with_gradients = trace_gradients && tracing;
  if (tracing)
    trace_ = {};  // release the previous call's tensors before allocating new ones
  Var w;
  if (features_) {
    ATTNLAB_CHECK(q.dim() == 4 && q.size(3) == options_.head_dim,
                  ShapeError,
                  "FavorKernel: q must be [batch, heads, length, head_dim = ",
                  options_.head_dim,
                  "], got ",
                  q.shape());
    const Tensor& p = features_->next();
    Tensor wt = p.dtype() == q.dtype() ? p : p.to(q.dtype());
    w = with_gradients ? ag::param(wt) : ag::constant(wt);
  }
  FavorAttentionOptions o;
  o.features = options_.features;
  o.query_stabilizer = options_.query_stabilizer;
  o.key_stabilizer = options_.key_stabilizer;
  o.impl = options_.impl;
  FavorTrace tr;
  Var out = favor_attention(q, k, v, w, mask, o, keep || with_gradients ? &tr : nullptr);
  if (with_gradients) {
    for (const Var* x : {&tr.q_features, &tr.k_features, &tr.numerator, &tr.normalizer}) {
      if (x->requires_grad())
        x->retain_grad();
    }
  }
  if (keep || with_gradients)
    trace_ = tr;
  return out;
}

RandomFeatures& FavorKernel::random_features() const {
  ATTNLAB_CHECK(features_,
                ValueError,
                "FavorKernel: the ",
                feature_map_name(options_.features.map),
                " map has no random projection");
  return *features_;
}

std::string FavorKernel::describe() const {
  std::ostringstream os;
  os << "FavorKernel(" << feature_map_name(options_.features.map);
  if (options_.features.map == FeatureMap::Generalized)
    os << " " << generalized_fn_name(options_.features.fn);
  if (features_)
    os << ", m=" << options_.projections;
  os << ", eps=" << options_.features.epsilon
     << ", key_stabilizer=" << key_stabilizer_name(options_.key_stabilizer)
     << (options_.impl == FavorImpl::Reference ? ", reference" : "") << ")";
  return os.str();
}

}  // namespace attnlab::nn
