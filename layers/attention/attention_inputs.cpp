// The input checks and dense masks shared by all attention kernels
// (layers/attention/attention_inputs.hpp).
#include "layers/attention/attention_inputs.hpp"

#include <cmath>

#include "core/core.hpp"

namespace attnlab::nn::detail {

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

}  // namespace attnlab::nn::detail
