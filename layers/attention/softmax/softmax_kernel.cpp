#include "layers/attention/softmax/softmax_kernel.hpp"

#include <sstream>

#include "core/core.hpp"

namespace attnlab::nn {

SoftmaxKernel::SoftmaxKernel(SoftmaxImpl i, double p, std::shared_ptr<Generator> rng)
    : AttentionKernel("SoftmaxKernel"), impl(i), dropout(p), rng_(std::move(rng)) {
  ATTNLAB_CHECK(p >= 0 && p < 1, ValueError, "SoftmaxKernel: dropout must be in [0, 1), got ", p);
  if (!rng_)
    rng_ = std::make_shared<Generator>(0);
  register_generator("rng", rng_);
}

Var SoftmaxKernel::attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) {
  AttentionDropout drop;
  if (is_training() && dropout > 0)
    drop = {dropout, rng_->next()};
  if (impl == SoftmaxImpl::Reference) {
    AttentionTrace replayed;  // a replay under FreezeTracesGuard leaves the last trace alone
    return softmax_attention_reference(
        q, k, v, mask, 0.0, drop, traces_frozen() ? &replayed : &trace_);
  }
  return softmax_attention_fused(q, k, v, mask, 0.0, drop);
}

std::string SoftmaxKernel::describe() const {
  std::ostringstream os;
  os << "SoftmaxKernel(" << (impl == SoftmaxImpl::Fused ? "fused" : "reference")
     << ", dropout=" << dropout << ")";
  return os.str();
}

}  // namespace attnlab::nn
