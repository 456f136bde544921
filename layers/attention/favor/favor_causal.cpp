// The fused causal FAVOR+ op: prefix-sum linear attention as a token recurrence with an O(m dv)
// state per (batch, head), and the two-sweep recompute backward (Katharopoulos et al. 2020,
// Sec. 3.3.1, Alg. 1), derived in docs/derivations/favor_causal_backward.md.
//
// Everything runs on one kernel, the (optionally reversed) causal product with a log-scale:
//   forward:  out_t = a_t^T S_t,  S_t = f_t S_(t-1) + b_t c_t^T,  f_t = e^(ls_(t-1) - ls_t)
//   reverse:  out_t = a_t^T R_t,  R_t = f_t R_(t+1) + b_t c_t^T,  f_t = e^(ls_t - ls_(t+1))
// with a, b: [L, E] and c, out: [L, W]. It is used four times (favor_causal_backward.md 5; the
// normaliser is the augmented column):
//   N   = fwd(a = Q',      b = K',      c = V)       plus D_t = q'_t . z_t, z_t = sum k'_j
//   dQ' = fwd(a = [dN dD], b = [V 1],   c = K')
//   dK' = rev(a = [V 1],   b = [dN dD], c = Q')
//   dV  = rev(a = K',      b = Q',      c = dN)
// Only Q', K' and V are saved; the states are recomputed, never rebuilt by subtraction.
//
// Vectorisation: the W columns of the state are independent, so the kernel keeps a chunk of NB
// SIMD batches of output in registers (NB a template parameter: measured ~4x faster than a
// runtime width) and streams the E rows of its state slice: per row, one FMA
// updates the state and one accumulates the output; no horizontal reductions, no -ffast-math.
// (xsimd::fma is a fused multiply-add where the compiler contracts x * y + z, as GCC does in
// every optimised build here; all step kinds are compiled alike, so within a build the grouping
// of tokens never changes a result.)
// Four consecutive tokens share one pass over the state (a quarter of the loads and stores;
// on paths with 32 vector registers, else two), unless the log-scale changes between them; every
// grouping does the one-token arithmetic, so results do not depend on it. All column chunks of a
// (batch, head) advance together, a group of tokens at a time, so that the rows of c and out are
// read and written whole. Measured at L = 4096, m = 256, dv = 64 on one AVX-512 core
// (2026-12-06, fifth session): the four sweeps of a forward + backward ran at 94-111 GFLOP/s with
// two tokens per pass and one chunk at a time, 126-137 GFLOP/s now (the whole op 0.78x the time).
// Widths that are not a multiple of the SIMD width are zero-padded into a scratch copy.
// Measured and not adopted (2026-12-06): the chunked form (intra-chunk tiles and one state update
// per chunk as core GEMMs) took 1.15-1.5x this kernel's CPU time (favor_causal_backward.md 9).
//
// Parallelism: tasks are (batch*head, group of column chunks); when batch*heads is below the
// thread count the chunks are made narrower and split into groups so every thread gets work. A
// column's arithmetic is the same in every chunk width and group, so results are bit-identical
// for any thread count.
//
// This file holds the custom op; the kernels are in
// layers/attention/favor/favor_causal_kernels.cpp (compiled once per SIMD path:
// core/simd_dispatch.hpp).
#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/function.hpp"
#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/attention/attention_inputs.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/attention/favor/favor_causal_kernels.hpp"

namespace attnlab::nn {
namespace favor_causal_detail {

template <class T>
SweepsFn<T> sweeps_fn() {
  static const FavorCausalKernels& table = ATTNLAB_KERNELS(favor_causal_kernels);
  if constexpr (std::is_same_v<T, float>)
    return table.f32;
  else
    return table.f64;
}

// [x | col] per row: x [R, w] and col [R] (or ones) -> [R, w + 1].
template <class T>
Tensor augment(const T* x, const T* col, int64_t rows, int64_t w) {
  Tensor out = Tensor::empty({rows, w + 1}, dtype_of<T>());
  T* o = out.data<T>();
  parallel_for(0, rows, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      std::copy(x + r * w, x + r * w + w, o + r * (w + 1));
      o[r * (w + 1) + w] = col ? col[r] : T(1);
    }
  });
  return out;
}

class FavorCausal : public ag::Function {
 public:
  explicit FavorCausal(Tensor log_scale) : ls_(std::move(log_scale)) {}
  const char* name() const override { return "favor_causal"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &qf = in[0], &kf = in[1], &v = in[2];
    check(qf, kf, v);
    bh_ = qf.size(0) * qf.size(1);
    l_ = qf.size(2);
    r_ = qf.size(3);
    dv_ = v.size(3);
    if (ls_.defined() && ls_.dtype() != qf.dtype())
      ls_ = ls_.to(qf.dtype());
    Tensor num = Tensor::empty({qf.size(0), qf.size(1), l_, dv_}, qf.dtype());
    Tensor den = Tensor::empty({qf.size(0), qf.size(1), l_}, qf.dtype());
    dispatch_float(qf.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      sweeps_fn<T>()(bh_,
                     l_,
                     r_,
                     dv_,
                     qf.data<T>(),
                     kf.data<T>(),
                     v.data<T>(),
                     lsp<T>(),
                     num.data<T>(),
                     den.data<T>(),
                     false);
    });
    save_for_backward({qf, kf, v});
    return {num, den};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const auto& s = saved();
    const Tensor &qf = s[0], &kf = s[1], &v = s[2];
    const Tensor &dn = grad[0], &dd = grad[1];
    Tensor dq, dk, dvv;
    dispatch_float(qf.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      const int64_t rows = bh_ * l_;
      Tensor g1, v1;  // [dN dD] and [V 1], [BH * L, dv + 1]
      if (needs_input_grad(0) || needs_input_grad(1)) {
        g1 = augment<T>(dn.data<T>(), dd.data<T>(), rows, dv_);
        v1 = augment<T>(v.data<T>(), nullptr, rows, dv_);
      }
      if (needs_input_grad(0)) {
        dq = Tensor::empty(qf.shape(), qf.dtype());
        sweeps_fn<T>()(bh_,
                       l_,
                       dv_ + 1,
                       r_,
                       g1.data<T>(),
                       v1.data<T>(),
                       kf.data<T>(),
                       lsp<T>(),
                       dq.data<T>(),
                       nullptr,
                       false);
      }
      if (needs_input_grad(1)) {
        dk = Tensor::empty(kf.shape(), kf.dtype());
        sweeps_fn<T>()(bh_,
                       l_,
                       dv_ + 1,
                       r_,
                       v1.data<T>(),
                       g1.data<T>(),
                       qf.data<T>(),
                       lsp<T>(),
                       dk.data<T>(),
                       nullptr,
                       true);
      }
      if (needs_input_grad(2)) {
        dvv = Tensor::empty(v.shape(), v.dtype());
        sweeps_fn<T>()(bh_,
                       l_,
                       r_,
                       dv_,
                       kf.data<T>(),
                       qf.data<T>(),
                       dn.data<T>(),
                       lsp<T>(),
                       dvv.data<T>(),
                       nullptr,
                       true);
      }
    });
    return {dq, dk, dvv};
  }

 private:
  template <class T>
  const T* lsp() const {
    return ls_.defined() ? ls_.data<T>() : nullptr;
  }

  void check(const Tensor& qf, const Tensor& kf, const Tensor& v) const {
    AttentionMask none;
    detail::check_attention_inputs(qf, kf, v, none, "favor_causal");
    ATTNLAB_CHECK(qf.size(2) == kf.size(2),
                  ShapeError,
                  "favor_causal: causal attention needs equal query and key lengths, got q ",
                  qf.shape(),
                  ", k ",
                  kf.shape());
    if (ls_.defined()) {
      ATTNLAB_CHECK(ls_.shape() == Shape({kf.size(0), kf.size(1), kf.size(2)}),
                    ShapeError,
                    "favor_causal: key_log_scale must be [batch, heads, length] = [",
                    kf.size(0),
                    ", ",
                    kf.size(1),
                    ", ",
                    kf.size(2),
                    "], got ",
                    ls_.shape());
    }
  }

  Tensor ls_;
  int64_t bh_ = 0, l_ = 0, r_ = 0, dv_ = 0;
};

}  // namespace favor_causal_detail

FavorSums favor_causal(const Var& qf, const Var& kf, const Var& v, const Tensor& key_log_scale) {
  auto out = ag::apply<favor_causal_detail::FavorCausal>({qf, kf, v}, key_log_scale);
  return {out[0], out[1]};
}

}  // namespace attnlab::nn
