// The fused softmax attention kernel (FlashAttention-2 structure, Dao 2023) as one custom op,
// derived in docs/derivations/flash_attention_backward.md.
//
// Forward, per (batch*head, tile of Br queries), over tiles of Bc keys:
//   S = scale * Q_i K_j^T + bias, -inf where masked;  m' = max(m, rowmax S)
//   P = exp(S - m');  l = l * exp(m - m') + rowsum P;  O = O * exp(m - m') + (P . M) V_j
// then O /= l and LSE = m + log l (M: dropout multipliers, 1 without dropout; l sums the
// undropped P because dropout applies to the normalised weights). Only O and LSE are saved.
//
// Backward, with Pn = exp(S - LSE) the normalised weights, W = Pn . M and D_i = dO_i . O_i:
//   dV_j = sum_i W^T dO_i;  dS = Pn . (M . (dO_i V_j^T) - D_i);  dK_j = scale sum_i dS^T Q_i;
//   dQ_i = scale sum_j dS K_j
// in one pass over key tiles that recomputes S once. dK and dV rows are owned by one task; dQ is
// accumulated per group of key tiles and the groups are summed in a fixed order (see dq_groups),
// so results are bit-identical for any thread count without atomics.
//
// This file holds the custom op; the kernels are in
// layers/attention/softmax/softmax_attention_fused_kernels.cpp (compiled once per SIMD path:
// core/simd_dispatch.hpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/function.hpp"
#include "core/core.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"
#include "layers/attention/softmax/softmax_attention_fused_kernels.hpp"

namespace attnlab::nn {
namespace flash_detail {

template <class T>
const FlashFns<T>& kernels() {
  static const FlashKernels& table = ATTNLAB_KERNELS(flash_kernels);
  if constexpr (std::is_same_v<T, float>)
    return table.f32;
  else
    return table.f64;
}

class FlashAttention : public ag::Function {
 public:
  FlashAttention(const AttentionMask& mask, double scale, const AttentionDropout& dropout)
      : mask_(mask), scale_(scale), dropout_(dropout) {}
  const char* name() const override { return "softmax_attention_fused"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &q = in[0], &k = in[1], &v = in[2];
    detail::check_attention_inputs(q, k, v, mask_, "softmax_attention_fused");
    ATTNLAB_CHECK(dropout_.p >= 0 && dropout_.p < 1,
                  ValueError,
                  "softmax_attention_fused: dropout p must be in [0, 1), got ",
                  dropout_.p);
    g_.batch = q.size(0);
    g_.heads = q.size(1);
    g_.lq = q.size(2);
    g_.lk = k.size(2);
    g_.d = q.size(3);
    g_.dv = v.size(3);
    g_.offset = g_.lk - g_.lq;
    g_.scale = scale_ != 0.0 ? scale_ : 1.0 / std::sqrt(static_cast<double>(g_.d));
    g_.causal = mask_.causal;
    g_.decay = mask_.decay;
    g_.drop_p = dropout_.p;
    g_.drop_key = dropout_.key;
    if (mask_.key_padding.defined()) {
      const auto flags = mask_.key_padding.to_vector<double>();
      key_ok_.resize(flags.size());
      for (std::size_t i = 0; i < flags.size(); ++i) key_ok_[i] = flags[i] != 0;
    }
    g_.key_ok = key_ok_.empty() ? nullptr : key_ok_.data();
    Tensor out = Tensor::empty({g_.batch, g_.heads, g_.lq, g_.dv}, q.dtype());
    Tensor lse = Tensor::empty({g_.batch, g_.heads, g_.lq}, q.dtype());
    dispatch_float(q.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      kernels<T>().forward(g_, q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>());
    });
    save_for_backward({q, k, v, out, lse});
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const auto& s = saved();
    const Tensor &q = s[0], &k = s[1], &v = s[2], &out = s[3], &lse = s[4];
    Tensor dq = Tensor::empty(q.shape(), q.dtype()), dk = Tensor::empty(k.shape(), k.dtype()),
           dv = Tensor::empty(v.shape(), v.dtype());
    dispatch_float(q.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      kernels<T>().backward(g_,
                            q.data<T>(),
                            k.data<T>(),
                            v.data<T>(),
                            out.data<T>(),
                            lse.data<T>(),
                            grad[0].data<T>(),
                            dq.data<T>(),
                            dk.data<T>(),
                            dv.data<T>());
    });
    return {dq, dk, dv};
  }

 private:
  AttentionMask mask_;
  double scale_;
  AttentionDropout dropout_;
  Geometry g_{};
  std::vector<uint8_t> key_ok_;  // g_.key_ok points here
};

}  // namespace flash_detail

Var softmax_attention_fused(const Var& q,
                            const Var& k,
                            const Var& v,
                            const AttentionMask& mask,
                            double scale,
                            const AttentionDropout& dropout) {
  return ag::apply<flash_detail::FlashAttention>({q, k, v}, mask, scale, dropout)[0];
}

}  // namespace attnlab::nn
