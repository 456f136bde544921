// cosFormer attention (Qin et al., "cosFormer: Rethinking Softmax in Attention", ICLR 2022), the
// attention kind "cosformer", on [batch, heads, L, d]:
//
//   s(i, j) = relu(q_i) . relu(k_j) cos(pi/2 (i - j) / M)                (re-weighted similarity)
//   out_i   = sum_j s(i, j) v_j / (sum_j s(i, j) + eps)
//
// cos(a - b) = cos a cos b + sin a sin b splits s(i, j) into two linear-attention terms, so with
// the 2d-wide features
//
//   phi_i = [relu(x_i) cos(theta_i), relu(x_i) sin(theta_i)],   theta_i = pi/2 i / M
//
// s(i, j) = phi(q)_i . phi(k)_j exactly, and the public FAVOR+ sums do the rest: favor_causal
// (a prefix sum, O(L d dv)) or favor_bidirectional, then favor_normalize. Derivation, the choice
// of M and of eps: docs/derivations/cosformer.md.
//
// Options (--horizon, --normalizer-epsilon on the command line):
// M, the re-weighting horizon: 0 (the default) takes max(Lq, Lk) of the call, as the paper does;
// a fixed M >= every length makes the weights of a pair (i, j) independent of the sequence's
// length (set it to the model's maximum length to stream a causal model). Every |i - j| < M, so
// every cos factor is in (0, 1] and the weights stay non-negative.
//
// Masks: causal (Lq == Lk) and key padding (a padded key's features are zero, so it leaves the
// numerator and the normaliser alike). Distance decay is refused: the cos factor is cosFormer's
// own locality bias, and a linear attention has no score matrix to add -decay (i - j) to.
//
// The whole kind is this file: the kernel module, its registry entry (capabilities, options, cost
// model, gradcheck cases) and its static registrar; nothing else in attnlab names it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/attention/attention_inputs.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/attention_stream.hpp"
#include "layers/attention/favor/favor_attention.hpp"

namespace attnlab::nn {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct CosformerOptions {
  double epsilon = 1e-6;  // added to the normaliser; a row with no real key gives 0, not NaN
  int64_t horizon = 0;    // M; 0: max(Lq, Lk) of each call
};

// [cos theta_i, sin theta_i] for i < l as two [1, 1, l, 1] constants, times the key padding
// [B, 1, l, 1] when given (so padded rows of the features are exactly zero).
std::pair<Tensor, Tensor> reweighting(int64_t l,
                                      int64_t horizon,
                                      const Tensor& key_padding,
                                      DType dt) {
  // Angles in float64, then cast: theta_i up to pi/2 loses nothing to the dtype of the inputs.
  const Tensor theta = arange(l, kFloat64) * (kPi / 2 / static_cast<double>(horizon));
  Tensor c = cos(theta).reshape({1, 1, l, 1}), s = sin(theta).reshape({1, 1, l, 1});
  if (key_padding.defined()) {
    const Tensor keep = key_padding.to(kFloat64).reshape({key_padding.size(0), 1, l, 1});
    c = c * keep;
    s = s * keep;
  }
  return {c.to(dt), s.to(dt)};
}

// phi(x) = [relu(x) cos theta, relu(x) sin theta]: [B, H, L, d] -> [B, H, L, 2d].
Var features(const Var& x, int64_t horizon, const Tensor& key_padding) {
  const auto [c, s] = reweighting(x.size(2), horizon, key_padding, x.dtype());
  const Var r = ag::relu(x);
  return ag::concat({r * ag::constant(c), r * ag::constant(s)}, -1);
}

Var cosformer_attention(const Var& q,
                        const Var& k,
                        const Var& v,
                        const AttentionMask& mask,
                        const CosformerOptions& opt) {
  detail::check_attention_inputs(q.value(), k.value(), v.value(), mask, "cosformer_attention");
  ATTNLAB_CHECK(mask.decay == 0,
                ValueError,
                "cosformer_attention: distance decay (",
                mask.decay,
                ") is not supported: the cos re-weighting is cosFormer's own distance bias, and "
                "there is no score matrix to add -decay (i - j) to");
  ATTNLAB_CHECK(!mask.causal || q.size(2) == k.size(2),
                ShapeError,
                "cosformer_attention: causal attention needs equal query and key lengths, got q ",
                q.shape(),
                ", k ",
                k.shape());
  const int64_t longest = std::max(q.size(2), k.size(2));
  const int64_t horizon = opt.horizon > 0 ? opt.horizon : longest;
  ATTNLAB_CHECK(horizon >= longest,
                ValueError,
                "cosformer_attention: the horizon M = ",
                horizon,
                " is shorter than the sequence (q ",
                q.shape(),
                ", k ",
                k.shape(),
                "); expected M >= ",
                longest,
                " (beyond M the cos weights turn negative)");
  const Var qf = features(q, horizon, Tensor());
  const Var kf = features(k, horizon, mask.key_padding);
  const FavorSums sums = mask.causal ? favor_causal(qf, kf, v) : favor_bidirectional(qf, kf, v);
  return favor_normalize(sums.numerator, sums.normalizer + opt.epsilon);
}

// Causal cosFormer one position at a time (online inference), with a fixed horizon M: the
// running sums S = sum_j phi(k_j) v_j^T [H, 2d, dv] and z = sum_j phi(k_j) [H, 2d] over the
// positions j = 0, 1, ... of the stream, and
//   o_t = phi(q_t) S / (phi(q_t) . z + eps),
// the last row of the causal kernel over positions 0..t, in O(d dv) per step and head whatever t.
struct CosformerStreamSetup {
  int64_t heads = 1;
  CosformerOptions options;
};

template <class T>
class CosformerStateStream : public AttentionStream {
 public:
  explicit CosformerStateStream(CosformerStreamSetup setup) : s_(std::move(setup)) {}

  Tensor step(const Tensor& q, const Tensor& k, const Tensor& v) override {
    detail::check_stream_step(q, k, v, s_.heads, "CosformerKernel stream");
    const int64_t heads = s_.heads, d = q.size(1), dv = v.size(1), f = 2 * d;
    if (steps_ == 0) {
      d_ = d;
      dv_ = dv;
      sums_.assign(static_cast<std::size_t>(heads * f * dv), T(0));
      norms_.assign(static_cast<std::size_t>(heads * f), T(0));
    }
    ATTNLAB_CHECK(d == d_ && dv == dv_,
                  ShapeError,
                  "CosformerKernel stream: head widths changed from dh ",
                  d_,
                  ", dv ",
                  dv_,
                  " to ",
                  d,
                  ", ",
                  dv);
    ATTNLAB_CHECK(steps_ < s_.options.horizon,
                  ValueError,
                  "CosformerKernel stream: position ",
                  steps_,
                  " is beyond the horizon M = ",
                  s_.options.horizon,
                  " (beyond M the cos weights turn negative)");
    const double theta = kPi / 2 * static_cast<double>(steps_) / s_.options.horizon;
    const double c = std::cos(theta), sn = std::sin(theta);
    Tensor out = zeros({heads, dv}, q.dtype());
    std::vector<T> qf(static_cast<std::size_t>(f)), kf(static_cast<std::size_t>(f));
    for (int64_t h = 0; h < heads; ++h) {
      phi(q.data<T>() + h * d, d, c, sn, qf.data());
      phi(k.data<T>() + h * d, d, c, sn, kf.data());
      T* sum = sums_.data() + h * f * dv;
      T* norm = norms_.data() + h * f;
      const T* vh = v.data<T>() + h * dv;
      for (int64_t i = 0; i < f; ++i) {  // the new key enters the state first (j <= t)
        norm[i] += kf[i];
        for (int64_t e = 0; e < dv; ++e) sum[i * dv + e] += kf[i] * vh[e];
      }
      double denominator = s_.options.epsilon;
      for (int64_t i = 0; i < f; ++i) denominator += static_cast<double>(qf[i] * norm[i]);
      T* oh = out.data<T>() + h * dv;
      // As favor_normalize: a vanishing normaliser (no mass at all) gives 0, never NaN.
      if (std::fabs(denominator) < std::sqrt(std::numeric_limits<T>::min()))
        continue;
      for (int64_t e = 0; e < dv; ++e) {
        double numerator = 0;
        for (int64_t i = 0; i < f; ++i) numerator += static_cast<double>(qf[i] * sum[i * dv + e]);
        oh[e] = static_cast<T>(numerator / denominator);
      }
    }
    ++steps_;
    return out;
  }

  int64_t state_bytes() const override {
    return static_cast<int64_t>((sums_.size() + norms_.size()) * sizeof(T));
  }

 private:
  // [relu(x) cos theta, relu(x) sin theta]
  static void phi(const T* x, int64_t d, double c, double s, T* out) {
    for (int64_t i = 0; i < d; ++i) {
      const T r = x[i] > T(0) ? x[i] : T(0);
      out[i] = static_cast<T>(r * c);
      out[d + i] = static_cast<T>(r * s);
    }
  }

  CosformerStreamSetup s_;
  int64_t d_ = 0, dv_ = 0;
  std::vector<T> sums_, norms_;  // S [H, 2d, dv], z [H, 2d]
};

// cosFormer as an AttentionKernel: no parameters, no state, no dropout (there are no weights).
class CosformerKernel : public AttentionKernel {
 public:
  explicit CosformerKernel(const CosformerOptions& o) : AttentionKernel("CosformerKernel"), o_(o) {
    ATTNLAB_CHECK(o.epsilon >= 0 && std::isfinite(o.epsilon),
                  ValueError,
                  "CosformerKernel: epsilon must be finite and >= 0, got ",
                  o.epsilon);
    ATTNLAB_CHECK(o.horizon >= 0,
                  ValueError,
                  "CosformerKernel: horizon must be >= 0 (0: the sequence length), got ",
                  o.horizon);
  }
  Var attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) override {
    return cosformer_attention(q, k, v, mask, o_);
  }
  // Needs a fixed horizon: with M = the sequence length, every new item would change the weights
  // of all the past pairs.
  std::unique_ptr<AttentionStream> begin_stream(int64_t heads) const override {
    ATTNLAB_CHECK(
        heads >= 1, ValueError, "CosformerKernel::begin_stream: heads must be >= 1, got ", heads);
    ATTNLAB_CHECK(!is_training(),
                  ValueError,
                  "CosformerKernel::begin_stream: streaming is inference only; call eval() first");
    ATTNLAB_CHECK(o_.horizon > 0,
                  ValueError,
                  "CosformerKernel::begin_stream: streaming needs a fixed horizon (--horizon M, "
                  "e.g. the model's maximum length); with M = the sequence length every new item "
                  "changes the weights of all the past pairs");
    return std::make_unique<DtypeDispatchedStream<CosformerStateStream, CosformerStreamSetup>>(
        CosformerStreamSetup{heads, o_});
  }
  std::string describe() const override {
    std::ostringstream os;
    os << "CosformerKernel(eps=" << o_.epsilon << ", horizon=";
    if (o_.horizon > 0)
      os << o_.horizon;
    else
      os << "length";
    os << ")";
    return os.str();
  }

 private:
  CosformerOptions o_;
};

// Useful FLOPs, counted as for the FAVOR+ kinds (layers/attention/favor/favor_kinds.cpp): the
// linear attention proper on F = 2d features, phi(k)^T v and phi(q) S at 2 L F dv each
// (prefix-summed or not; the feature maps and normalisers, O(L F), are not counted); the backward
// twice the forward. Bytes: q, k, v read and o written; the backward reads them and dO, writes dq,
// dk, dv.
AttentionCost cosformer_cost(const AttentionShape& s, const OptionValues&) {
  const double f = 2.0 * static_cast<double>(s.d);
  const double bh = static_cast<double>(s.batch_heads), e = static_cast<double>(s.element_bytes);
  const double q = s.lq * s.d, k = s.lk * s.d, v = s.lk * s.dv, out = s.lq * s.dv;
  AttentionCost c;
  c.forward_flops = bh * 2.0 * f * s.dv * (s.lq + s.lk);
  c.backward_flops = 2.0 * c.forward_flops;
  c.forward_bytes = bh * e * (q + k + v + out);
  c.backward_bytes = bh * e * (q + k + v + 2 * out + q + k + v);
  return c;
}

// Float64 checks of the whole attention (`attnlab gradcheck --filter kind/cosformer`): causal and
// bidirectional with padded keys (the second sequence keeps 4 of 6), and cross attention
// (Lq != Lk) with a fixed horizon.
std::vector<GradcheckCase> cosformer_gradcheck_cases() {
  auto u = [](const Shape& shape, uint64_t seed) {
    return rand(shape, RngKey{seed, 77}, kFloat64, -1.0, 2.0);
  };
  const Tensor pad =
      from_vector(std::vector<double>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {2, 6}, kFloat64);
  std::vector<GradcheckCase> cases;
  for (int causal = 0; causal < 2; ++causal) {
    AttentionMask m;
    m.causal = causal;
    m.key_padding = pad;
    cases.push_back(
        {std::string("kind/cosformer/") + (causal ? "causal" : "bidirectional") + "_padded",
         [m](const std::vector<Var>& v) {
           return cosformer_attention(v[0], v[1], v[2], m, CosformerOptions{});
         },
         {u({2, 1, 6, 3}, 1), u({2, 1, 6, 3}, 2), u({2, 1, 6, 2}, 3)},
         nullptr});
  }
  CosformerOptions fixed;
  fixed.horizon = 9;
  cases.push_back({"kind/cosformer/cross_horizon9",
                   [fixed](const std::vector<Var>& v) {
                     return cosformer_attention(v[0], v[1], v[2], AttentionMask{}, fixed);
                   },
                   {u({1, 2, 4, 3}, 4), u({1, 2, 7, 3}, 5), u({1, 2, 7, 2}, 6)},
                   nullptr});
  return cases;
}

AttentionKind cosformer_kind() {
  KindCapabilities caps;
  caps.causal = caps.bidirectional = caps.key_padding = true;
  AttentionKind kind = AttentionKind::with_options<CosformerOptions>(
      "cosformer",
      "cosformer",
      "cosFormer: relu features re-weighted by cos(pi/2 (i - j) / M), a prefix sum when causal",
      "Qin et al. 2022 (cosFormer, ICLR)",
      caps,
      OptionBinder<CosformerOptions>()
          .bind("normalizer-epsilon",
                &CosformerOptions::epsilon,
                "cosFormer: added to the normaliser (>= 0)",
                option_checks::NonNegative{})
          .bind("horizon",
                &CosformerOptions::horizon,
                "cosFormer: the re-weighting horizon M (0: the sequence length; fix it at the "
                "maximum length for length-independent causal outputs)",
                option_checks::NonNegative{}),
      [](const CosformerOptions& o, const KernelContext&) {
        return std::make_shared<CosformerKernel>(o);
      });
  kind.gradcheck_cases = cosformer_gradcheck_cases;
  kind.cost = cosformer_cost;
  return kind;
}

const RegisterAttentionKind cosformer_kinds{{cosformer_kind()}};

}  // namespace
}  // namespace attnlab::nn
