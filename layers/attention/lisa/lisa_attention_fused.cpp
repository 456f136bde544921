// The fused LISA histogram attention (lisa_attention.hpp) as one custom op.
//
// Forward, per (sequence n, chunk of kRows positions), for every position i and codebook b:
//   G = T_b[u_i, :] (hard: a pointer to the row) or q_i T_b (expected row: one GEMM per chunk)
//   z = scale G;   m = max over {w: h[w] > 0} of z[w];   s = sum_w h[w] e^(z[w] - m)
//   beta = e^(z - m) / s;   alpha = h . beta
// then Y_chunk = sum_b alpha_b [rows, W] x V_b [W, D]   (B GEMMs accumulated in order).
// Only the inputs are saved; the backward recomputes z, beta and alpha chunk by chunk
// (FlashAttention-style). Extra memory: the output [N, L, D] and per-thread scratch of
// O(kRows B W): the op itself adds nothing of size L B W (its histogram input is O(L B W)), and
// nothing is ever O(L^2).
//
// Backward (derived in docs/derivations/lisa_histograms.md 6; g = dY), per chunk after recomputing
// beta and alpha:
//   dalpha = g V_b^T;  c = sum_w alpha dalpha;  dh = beta (dalpha - c);  dz = alpha (dalpha - c)
//   dV_b += alpha^T g;  dG = scale dz;  hard: dT_b[u_i, :] += dG;  expected: dT_b += q^T dG and
//   dq = dG T_b^T.
// dh uses beta, not alpha / h, so it is exact where h = 0 (the straight-through gradient of an
// unused codeword; lisa_attention.hpp). Chunks are dealt to a fixed number of groups (chunk c to
// group c mod G, G from the shapes only); each group accumulates its own dV, dT and the groups
// are summed in order: results are bit-identical for any thread count.
//
// This file holds the custom op; the kernels are in
// layers/attention/lisa/lisa_attention_fused_kernels.cpp (compiled once per SIMD path:
// core/simd_dispatch.hpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/function.hpp"
#include "core/core.hpp"
#include "layers/attention/lisa/lisa_attention.hpp"
#include "layers/attention/lisa/lisa_attention_fused_kernels.hpp"

namespace attnlab::nn {
namespace lisa_fused_detail {

template <class T>
const LisaFusedFns<T>& kernels() {
  static const LisaFusedKernels& table = ATTNLAB_KERNELS(lisa_fused_kernels);
  if constexpr (std::is_same_v<T, float>)
    return table.f32;
  else
    return table.f64;
}

class LisaHistogramAttention : public ag::Function {
 public:
  LisaHistogramAttention(Tensor query_index, double scale)
      : idx_(std::move(query_index)), scale_(scale) {}
  const char* name() const override { return "lisa_histogram_attention_fused"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &t = in[0], &v = in[1], &h = in[2];
    const Tensor q = in.size() > 3 ? in[3] : Tensor();
    detail::check_lisa_inputs(t, v, h, idx_, q, name());
    g_ = Geometry{h.size(0), h.size(1), t.size(0), t.size(1), v.size(2), scale_, q.defined()};
    if (g_.scale == 0)
      g_.scale = 1.0 / std::sqrt(static_cast<double>(g_.d));
    Tensor out = Tensor::empty({g_.n, g_.l, g_.d}, t.dtype());
    dispatch_float(t.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      kernels<T>().forward(g_,
                           t.data<T>(),
                           v.data<T>(),
                           h.data<T>(),
                           idx_.defined() ? idx_.data<int64_t>() : nullptr,
                           q.defined() ? q.data<T>() : nullptr,
                           out.data<T>());
    });
    // Only the inputs are saved: the backward recomputes the weights (they cost one pass of
    // exps, cheaper than storing and re-reading an [N, L, B, W] tensor).
    if (q.defined())
      save_for_backward({t, v, h, q});
    else
      save_for_backward({t, v, h});
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const auto& s = saved();
    const Tensor &t = s[0], &v = s[1], &h = s[2];
    const Tensor q = s.size() > 3 ? s[3] : Tensor();
    const bool nt = needs_input_grad(0), nv = needs_input_grad(1), nh = needs_input_grad(2),
               nq = q.defined() && needs_input_grad(3);
    Tensor dt = nt ? Tensor::empty(t.shape(), t.dtype()) : Tensor();
    Tensor dv = nv ? Tensor::empty(v.shape(), v.dtype()) : Tensor();
    Tensor dh = nh ? Tensor::empty(h.shape(), h.dtype()) : Tensor();
    Tensor dq = nq ? Tensor::empty(h.shape(), h.dtype()) : Tensor();
    dispatch_float(t.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      auto ptr = [](const Tensor& x) {
        return x.defined() ? x.data<T>() : nullptr;
      };
      kernels<T>().backward(g_,
                            t.data<T>(),
                            v.data<T>(),
                            h.data<T>(),
                            idx_.defined() ? idx_.data<int64_t>() : nullptr,
                            ptr(q),
                            grad[0].data<T>(),
                            ptr(dt),
                            ptr(dv),
                            ptr(dh),
                            ptr(dq),
                            nt,
                            nv,
                            nh,
                            nq);
    });
    if (q.defined())
      return {dt, dv, dh, dq};
    return {dt, dv, dh};
  }

 private:
  Tensor idx_;
  double scale_;
  Geometry g_{};
};

}  // namespace lisa_fused_detail

Var lisa_histogram_attention_fused(const Var& tables,
                                   const Var& values,
                                   const Var& histograms,
                                   const Tensor& query_index,
                                   const Var& query_probs,
                                   double scale) {
  std::vector<Var> in{tables, values, histograms};
  if (query_probs.defined())
    in.push_back(query_probs);
  return ag::apply<lisa_fused_detail::LisaHistogramAttention>(in, query_index, scale)[0];
}

}  // namespace attnlab::nn
