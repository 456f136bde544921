// The reference (composed) softmax attention and the mask semantics shared by all kernels.
#include "layers/softmax_attention.hpp"

#include <cmath>
#include <limits>

#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {
namespace detail {

void check_attention_inputs(
    const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask, const char* op) {
  ATTNLAB_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
                ShapeError,
                op,
                ": q, k, v must be [batch, heads, length, head_dim], got q ",
                q.shape(),
                ", k ",
                k.shape(),
                ", v ",
                v.shape());
  ATTNLAB_CHECK(q.size(0) == k.size(0) && q.size(0) == v.size(0) && q.size(1) == k.size(1) &&
                    q.size(1) == v.size(1),
                ShapeError,
                op,
                ": batch and heads must agree: q ",
                q.shape(),
                ", k ",
                k.shape(),
                ", v ",
                v.shape());
  ATTNLAB_CHECK(k.size(2) == v.size(2),
                ShapeError,
                op,
                ": k and v must have the same length: k ",
                k.shape(),
                ", v ",
                v.shape());
  ATTNLAB_CHECK(q.size(3) == k.size(3),
                ShapeError,
                op,
                ": q and k must have the same head_dim: q ",
                q.shape(),
                ", k ",
                k.shape());
  ATTNLAB_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(),
                DTypeError,
                op,
                ": dtypes differ: q ",
                q.dtype(),
                ", k ",
                k.dtype(),
                ", v ",
                v.dtype());
  ATTNLAB_CHECK(q.size(3) > 0, ShapeError, op, ": head_dim must be positive, got q ", q.shape());
  if (mask.key_padding.defined()) {
    ATTNLAB_CHECK(mask.key_padding.shape() == Shape({k.size(0), k.size(2)}),
                  ShapeError,
                  op,
                  ": key_padding must be [batch, key_length] = [",
                  k.size(0),
                  ", ",
                  k.size(2),
                  "], got ",
                  mask.key_padding.shape());
  }
  ATTNLAB_CHECK(mask.decay >= 0 && std::isfinite(mask.decay),
                ValueError,
                op,
                ": decay must be finite and >= 0, got ",
                mask.decay);
}

Tensor attention_keep_mask(
    const AttentionMask& mask, int64_t batch, int64_t lq, int64_t lk, DType dtype) {
  const int64_t offset = lk - lq;
  const bool pad = mask.key_padding.defined();
  const int64_t b_out = pad ? batch : 1;
  const Tensor padding = pad ? mask.key_padding.to(kFloat64) : Tensor();
  Tensor keep = Tensor::empty({b_out, 1, lq, lk}, dtype);
  dispatch_float(dtype, "softmax_attention", [&](auto tag) {
    using T = decltype(tag);
    T* out = keep.data<T>();
    for (int64_t b = 0; b < b_out; ++b) {
      const double* real = pad ? padding.data<double>() + b * lk : nullptr;
      for (int64_t i = 0; i < lq; ++i) {
        T* row = out + (b * lq + i) * lk;
        for (int64_t j = 0; j < lk; ++j) {
          const bool ok = !(mask.causal && j > i + offset) && !(real && real[j] == 0);
          row[j] = ok ? T(1) : T(0);
        }
      }
    }
  });
  return keep;
}

Tensor attention_bias(const AttentionMask& mask, int64_t lq, int64_t lk, DType dtype) {
  const int64_t offset = lk - lq;
  Tensor bias = Tensor::empty({1, 1, lq, lk}, dtype);
  dispatch_float(dtype, "softmax_attention", [&](auto tag) {
    using T = decltype(tag);
    T* out = bias.data<T>();
    for (int64_t i = 0; i < lq; ++i) {
      for (int64_t j = 0; j < lk; ++j) {
        out[i * lk + j] =
            static_cast<T>(-mask.decay * std::fabs(static_cast<double>(i + offset - j)));
      }
    }
  });
  return bias;
}

Tensor attention_dropout_mask(const AttentionDropout& dropout, const Shape& s, DType dtype) {
  ATTNLAB_CHECK(dropout.p >= 0 && dropout.p < 1,
                ValueError,
                "softmax_attention: dropout p must be in [0, 1), got ",
                dropout.p);
  Tensor m = Tensor::empty(s, dtype);
  const int64_t bh = s[0] * s[1], lq = s[2], lk = s[3];
  const double keep = 1.0 - dropout.p, scale = 1.0 / keep;
  dispatch_float(dtype, "softmax_attention", [&](auto tag) {
    using T = decltype(tag);
    T* out = m.data<T>();
    parallel_for(0, bh * lq, 16, [&](int64_t lo, int64_t hi) {
      std::vector<double> u(lk);
      for (int64_t row = lo; row < hi; ++row) {
        const int64_t x = row / lq, i = row % lq;
        uniform01_block(dropout.key, dropout_index(x, i, 0, lq, lk), lk, u.data());
        for (int64_t j = 0; j < lk; ++j)
          out[row * lk + j] = u[j] < keep ? static_cast<T>(scale) : T(0);
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
