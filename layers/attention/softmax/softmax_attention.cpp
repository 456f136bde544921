// The reference (composed) softmax attention and its dropout mask (the input checks and dense
// masks shared by all kernels: layers/attention/attention_inputs.cpp).
#include "layers/attention/softmax/softmax_attention.hpp"

#include <cmath>
#include <limits>

#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {
namespace detail {

Tensor attention_dropout_mask(const AttentionDropout& dropout, const Shape& s, DType dtype) {
  ATTNLAB_CHECK(dropout.p >= 0 && dropout.p < 1,
                ValueError,
                "softmax_attention: dropout p must be in [0, 1), got ",
                dropout.p);
  Tensor m = Tensor::empty(s, dtype);
  const int64_t bh = s[0] * s[1], lq = s[2], lk = s[3];
  // Weight e is kept iff keep32(key, e) (core/rng.hpp), as in the fused kernel.
  const double keep = 1.0 - dropout.p, scale = 1.0 / keep;
  const uint64_t threshold = keep32_threshold(keep);
  dispatch_float(dtype, "softmax_attention", [&](auto tag) {
    using T = decltype(tag);
    T* out = m.data<T>();
    parallel_for(0, bh * lq, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        const int64_t x = row / lq, i = row % lq;
        keep32_block(dropout.key,
                     dropout_index(x, i, 0, lq, lk),
                     lk,
                     threshold,
                     static_cast<T>(scale),
                     T(0),
                     out + row * lk);
      }
    });
  });
  return m;
}

}  // namespace detail

Var softmax_attention_reference(const Var& q,
                                const Var& k,
                                const Var& v,
                                const AttentionMask& mask,
                                double scale,
                                const AttentionDropout& dropout,
                                AttentionTrace* trace) {
  detail::check_attention_inputs(
      q.value(), k.value(), v.value(), mask, "softmax_attention_reference");
  const int64_t batch = q.size(0), lq = q.size(2), lk = k.size(2);
  if (scale == 0.0)
    scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  // scores = scale * q k^T (+ bias), then -inf where a key is not allowed.
  Var scores = ag::matmul(q, k, false, true) * scale;
  if (mask.decay > 0) {
    scores = scores + ag::constant(detail::attention_bias(mask, lq, lk, q.dtype()));
  }
  if (mask.causal || mask.key_padding.defined()) {
    Tensor blocked = sub(1.0, detail::attention_keep_mask(mask, batch, lq, lk, q.dtype()));
    scores = ag::masked_fill(scores, blocked, -std::numeric_limits<double>::infinity());
  }
  Var weights = ag::softmax(scores, -1);  // an all -inf row gives zeros (core/softmax.hpp)
  if (dropout.p > 0) {
    weights =
        weights * ag::constant(detail::attention_dropout_mask(dropout, weights.shape(), q.dtype()));
  }
  if (trace) {
    trace->scores = ag::label(scores, "scores");
    trace->weights = ag::label(weights, "weights");
  }
  return ag::matmul(weights, v);
}

const EnumNames<SoftmaxImpl>& enum_names(SoftmaxImpl) {
  static const EnumNames<SoftmaxImpl> names{
      {SoftmaxImpl::Reference, "reference", "composed from tape primitives, O(L^2) memory"},
      {SoftmaxImpl::Fused, "fused", "tiled online-softmax kernel, O(L d) memory"}};
  return names;
}

Var softmax_attention(const Var& q,
                      const Var& k,
                      const Var& v,
                      const AttentionMask& mask,
                      SoftmaxImpl impl,
                      double scale,
                      const AttentionDropout& dropout,
                      AttentionTrace* trace) {
  if (impl == SoftmaxImpl::Reference) {
    return softmax_attention_reference(q, k, v, mask, scale, dropout, trace);
  }
  ATTNLAB_CHECK(trace == nullptr,
                ValueError,
                "softmax_attention: a trace of scores and weights needs the reference "
                "implementation (the fused kernel never materialises them)");
  return softmax_attention_fused(q, k, v, mask, scale, dropout);
}

}  // namespace attnlab::nn
