// FAVOR+ attention: the bidirectional fused op (Performer Alg. 1 with [V 1] augmented), the
// composed references, normalisation, and favor_attention() that strings features, sums and
// normalisation together. The causal fused op is in favor_causal.cpp, the kernel module in
// favor_kernel.cpp.
#include "layers/attention/favor/favor_attention.hpp"

#include <cmath>
#include <limits>

#include "autograd/function.hpp"
#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "core/vec.hpp"
#include "layers/attention/attention_inputs.hpp"

namespace attnlab::nn {
namespace {

// Runs fn(x) for every (batch*head) x: in parallel over x when there are enough of them (the
// GEMMs inside then run serially), otherwise one after the other with parallel GEMMs. Either way
// each GEMM result is thread-count independent.
template <class F>
void for_each_head(int64_t bh, F&& fn) {
  if (bh >= num_threads() && !in_parallel_region()) {
    parallel_for(0, bh, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t x = lo; x < hi; ++x) fn(x);
    });
  } else {
    for (int64_t x = 0; x < bh; ++x) fn(x);
  }
}

// Performer Alg. 1 with the normaliser column kept apart (an augmented width dv + 1 = 65 wastes
// half a GEMM micro-tile): S = K'^T V (r x dv), z = K'^T 1, N = Q' S, D = Q' z.
// Backward: dQ' = dN S^T + dD z^T, dS = Q'^T dN, dz = Q'^T dD, dK' = V dS^T + 1 dz^T, dV = K' dS.
class FavorBidirectional : public ag::Function {
 public:
  const char* name() const override { return "favor_bidirectional"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &qf = in[0], &kf = in[1], &v = in[2];
    AttentionMask none;
    detail::check_attention_inputs(qf, kf, v, none, "favor_bidirectional");
    bh_ = qf.size(0) * qf.size(1);
    lq_ = qf.size(2);
    lk_ = kf.size(2);
    r_ = qf.size(3);
    dv_ = v.size(3);
    Tensor num = Tensor::empty({qf.size(0), qf.size(1), lq_, dv_}, qf.dtype());
    Tensor den = Tensor::empty({qf.size(0), qf.size(1), lq_}, qf.dtype());
    Tensor s = Tensor::empty({bh_, r_, dv_}, qf.dtype());
    Tensor z = Tensor::empty({bh_, r_}, qf.dtype());
    dispatch_float(qf.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      const T *pq = qf.data<T>(), *pk = kf.data<T>(), *pv = v.data<T>();
      T *ps = s.data<T>(), *pz = z.data<T>(), *pn = num.data<T>(), *pd = den.data<T>();
      for_each_head(bh_, [&](int64_t x) {
        const T *qx = pq + x * lq_ * r_, *kx = pk + x * lk_ * r_;
        T *sx = ps + x * r_ * dv_, *zx = pz + x * r_;
        gemm<T>(true, false, r_, dv_, lk_, T(1), kx, r_, pv + x * lk_ * dv_, dv_, T(0), sx, dv_);
        std::fill(zx, zx + r_, T(0));
        for (int64_t j = 0; j < lk_; ++j) vec::fns<T>().axpy(T(1), kx + j * r_, zx, r_);
        gemm<T>(false, false, lq_, dv_, r_, T(1), qx, r_, sx, dv_, T(0), pn + x * lq_ * dv_, dv_);
        T* dx = pd + x * lq_;
        parallel_for(0, lq_, 256, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) dx[i] = vec::fns<T>().dot(qx + i * r_, zx, r_);
        });
      });
    });
    save_for_backward({qf, kf, v, s, z});
    return {num, den};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const auto& sv = saved();
    const Tensor &qf = sv[0], &kf = sv[1], &v = sv[2], &s = sv[3], &z = sv[4];
    Tensor dq = needs_input_grad(0) ? Tensor::empty(qf.shape(), qf.dtype()) : Tensor();
    Tensor dk = needs_input_grad(1) ? Tensor::empty(kf.shape(), kf.dtype()) : Tensor();
    Tensor dv = needs_input_grad(2) ? Tensor::empty(v.shape(), v.dtype()) : Tensor();
    dispatch_float(qf.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      const T *pq = qf.data<T>(), *pk = kf.data<T>(), *pv = v.data<T>(), *ps = s.data<T>(),
              *pz = z.data<T>(), *gn = grad[0].data<T>(), *gd = grad[1].data<T>();
      Tensor ds_t = Tensor::empty({bh_, r_, dv_}, qf.dtype()), dz_t = zeros({bh_, r_}, qf.dtype());
      for_each_head(bh_, [&](int64_t x) {
        const T *qx = pq + x * lq_ * r_, *gnx = gn + x * lq_ * dv_, *gdx = gd + x * lq_;
        const T* zx = pz + x * r_;
        if (dq.defined()) {
          T* dqx = dq.data<T>() + x * lq_ * r_;
          gemm<T>(false, true, lq_, r_, dv_, T(1), gnx, dv_, ps + x * r_ * dv_, dv_, T(0), dqx, r_);
          parallel_for(0, lq_, 256, [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) vec::fns<T>().axpy(gdx[i], zx, dqx + i * r_, r_);
          });
        }
        if (!dk.defined() && !dv.defined())
          return;
        T *dsx = ds_t.data<T>() + x * r_ * dv_, *dzx = dz_t.data<T>() + x * r_;
        gemm<T>(true, false, r_, dv_, lq_, T(1), qx, r_, gnx, dv_, T(0), dsx, dv_);
        for (int64_t i = 0; i < lq_; ++i) vec::fns<T>().axpy(gdx[i], qx + i * r_, dzx, r_);
        if (dk.defined()) {
          T* dkx = dk.data<T>() + x * lk_ * r_;
          gemm<T>(
              false, true, lk_, r_, dv_, T(1), pv + x * lk_ * dv_, dv_, dsx, dv_, T(0), dkx, r_);
          parallel_for(0, lk_, 256, [&](int64_t lo, int64_t hi) {
            for (int64_t j = lo; j < hi; ++j) vec::fns<T>().axpy(T(1), dzx, dkx + j * r_, r_);
          });
        }
        if (dv.defined())
          gemm<T>(false,
                  false,
                  lk_,
                  dv_,
                  r_,
                  T(1),
                  pk + x * lk_ * r_,
                  r_,
                  dsx,
                  dv_,
                  T(0),
                  dv.data<T>() + x * lk_ * dv_,
                  dv_);
      });
    });
    return {dq, dk, dv};
  }

 private:
  int64_t bh_ = 0, lq_ = 0, lk_ = 0, r_ = 0, dv_ = 0;
};

// exp(c_j - c_ref) with the conventions of the fused op: equal values (also -inf) give 1,
// c_j = -inf gives 0. `inverse` gives exp(c_ref - c_j) instead, 0 where c_j = -inf.
Tensor scale_factors(const Tensor& c, bool inverse) {
  const int64_t l = c.size(2);
  Tensor out = Tensor::empty(c.shape(), c.dtype());
  dispatch_float(c.dtype(), "favor_causal_reference", [&](auto tag) {
    using T = decltype(tag);
    const T* pc = c.data<T>();
    T* po = out.data<T>();
    constexpr T kNegInf = -std::numeric_limits<T>::infinity();
    for (int64_t x = 0; x < c.numel() / l; ++x) {
      const T ref = pc[x * l + l - 1];
      for (int64_t j = 0; j < l; ++j) {
        const T cj = pc[x * l + j];
        if (cj == ref)
          po[x * l + j] = T(1);
        else if (cj == kNegInf)
          po[x * l + j] = T(0);
        else
          po[x * l + j] = inverse ? std::exp(ref - cj) : std::exp(cj - ref);
      }
    }
  });
  return out;
}

}  // namespace

const EnumNames<KeyStabilizer>& enum_names(KeyStabilizer) {
  static const EnumNames<KeyStabilizer> names{
      {KeyStabilizer::Auto, "auto", "running-max when causal, else global"},
      {KeyStabilizer::Global, "global", "max over the sequence (bidirectional only)"},
      {KeyStabilizer::RunningMax, "running-max", "max over the keys so far"},
      {KeyStabilizer::None, "none", "no shift"}};
  return names;
}
const char* key_stabilizer_name(KeyStabilizer s) {
  return enum_names(s).name(s);
}
KeyStabilizer parse_key_stabilizer(const std::string& s) {
  return enum_names(KeyStabilizer{}).parse(s, "key stabilizer");
}

const EnumNames<FavorImpl>& enum_names(FavorImpl) {
  static const EnumNames<FavorImpl> names{
      {FavorImpl::Fused, "fused", "fused ops, O(m dv) state"},
      {FavorImpl::Reference, "reference", "composed from tape primitives"}};
  return names;
}

FavorSums favor_bidirectional(const Var& qf, const Var& kf, const Var& v) {
  auto out = ag::apply<FavorBidirectional>({qf, kf, v});
  return {out[0], out[1]};
}

FavorSums favor_bidirectional_reference(const Var& qf, const Var& kf, const Var& v) {
  detail::check_attention_inputs(qf.value(), kf.value(), v.value(), {}, "favor_bidirectional");
  Var s = ag::matmul(kf, v, /*trans_a=*/true);      // K'^T V   [B, H, r, dv]
  Var z = ag::sum(kf, 2, /*keepdim=*/true);         // K'^T 1   [B, H, 1, r]
  return {ag::matmul(qf, s), ag::sum(qf * z, -1)};  // Q' S, Q' z
}

FavorSums favor_causal_reference(const Var& qf,
                                 const Var& kf,
                                 const Var& v,
                                 const Tensor& key_log_scale) {
  detail::check_attention_inputs(qf.value(), kf.value(), v.value(), {}, "favor_causal");
  ATTNLAB_CHECK(qf.size(2) == kf.size(2),
                ShapeError,
                "favor_causal: causal attention needs equal query and key lengths, got q ",
                qf.shape(),
                ", k ",
                kf.shape());
  const int64_t b = v.size(0), h = v.size(1), l = v.size(2), dv = v.size(3);
  Var kt = kf;
  Tensor out_scale;
  if (key_log_scale.defined()) {
    // e^(c_j - c_i) = e^(c_j - c_L) e^(c_L - c_i): scale the keys by the first factor before the
    // prefix sums, the sums by the second after them (c_L = the last position's shift).
    const Tensor c = key_log_scale.to(qf.dtype());
    kt = kf * ag::constant(scale_factors(c, false).reshape({b, h, l, 1}));
    out_scale = scale_factors(c, true);
  }
  Var v1 = ag::concat({v, ag::constant(ones({b, h, l, 1}, v.dtype()))}, -1);  // [V 1]
  // G^PS_i = sum_{j <= i} k'_j [v_j 1]^T, materialised: [B, H, L, r, dv + 1] (Performer Eq. 11).
  Var prefix = ag::cumsum(ag::unsqueeze(kt, -1) * ag::unsqueeze(v1, -2), 2);
  Var nd = ag::squeeze(ag::matmul(ag::unsqueeze(qf, -2), prefix), -2);  // [B, H, L, dv + 1]
  Var num = ag::slice(nd, -1, 0, dv);
  Var den = ag::squeeze(ag::slice(nd, -1, dv, dv + 1), -1);
  if (out_scale.defined()) {
    num = num * ag::constant(out_scale.reshape({b, h, l, 1}));
    den = den * ag::constant(out_scale);
  }
  return {num, den};
}

namespace {

// out = N / D per row, as one op so that its backward can be written in terms of out:
//   dN = g / D,   dD = -(g . out) / D
// instead of the quotient rule's -g N / D^2, which overflows long before out does. A row whose
// |D| is below sqrt(smallest normal) (~1e-19 in float32, ~1e-154 in float64) is EMPTY: output 0
// and zero gradients. That covers rows without any real key (D = 0) and rows whose features
// share no mass with any key's, which happens with huge query/key norms (|x|^2 / sqrt(d) in the
// thousands): the features are then one-hot-like after the stabiliser, N and D both underflow
// and their ratio is rounding noise; its gradient would be inf * 0 = NaN further up.
class FavorNormalize : public ag::Function {
 public:
  const char* name() const override { return "favor_normalize"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor& n = in[0];
    const Tensor& d = in[1];
    const double tiny =
        std::sqrt(d.dtype() == kFloat32 ? static_cast<double>(std::numeric_limits<float>::min())
                                        : std::numeric_limits<double>::min());
    const Tensor live = ge(abs(d), full_like(d, tiny));      // 1 for rows with an answer
    const Tensor inv = live / where(live, d, ones_like(d));  // 1 / D, 0 on empty rows
    const Tensor inv_col = unsqueeze(inv, -1);
    Tensor out = n * inv_col;
    save_for_backward({out, inv_col});
    return {out};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const Tensor& g = grad[0];
    const Tensor &out = saved()[0], &inv_col = saved()[1];
    Tensor dn, dd;
    if (needs_input_grad(0))
      dn = g * inv_col;
    if (needs_input_grad(1))
      dd = squeeze(neg(sum(g * out, -1, true) * inv_col), -1);
    return {dn, dd};
  }
};

}  // namespace

Var favor_normalize(const Var& numerator, const Var& normalizer) {
  ATTNLAB_CHECK(numerator.dim() >= 1 && normalizer.dim() == numerator.dim() - 1,
                ShapeError,
                "favor_normalize: expected numerator [..., dv] and normalizer [...], got ",
                numerator.shape(),
                " and ",
                normalizer.shape());
  for (int a = 0; a < normalizer.dim(); ++a) {
    ATTNLAB_CHECK(normalizer.size(a) == numerator.size(a),
                  ShapeError,
                  "favor_normalize: numerator ",
                  numerator.shape(),
                  " and normalizer ",
                  normalizer.shape(),
                  " differ in their leading dimensions");
  }
  return ag::apply<FavorNormalize>({numerator, normalizer})[0];
}

Var favor_attention(const Var& q,
                    const Var& k,
                    const Var& v,
                    const Var& projection,
                    const AttentionMask& mask,
                    const FavorAttentionOptions& opt,
                    FavorTrace* trace) {
  detail::check_attention_inputs(q.value(), k.value(), v.value(), mask, "favor_attention");
  ATTNLAB_CHECK(mask.decay == 0,
                ValueError,
                "favor_attention: distance decay (",
                mask.decay,
                ") is not supported by FAVOR+ (there is no score matrix to bias)");
  ATTNLAB_CHECK(!mask.causal || q.size(2) == k.size(2),
                ShapeError,
                "favor_attention: causal attention needs equal query and key lengths, got q ",
                q.shape(),
                ", k ",
                k.shape());
  KeyStabilizer ks = opt.key_stabilizer;
  if (ks == KeyStabilizer::Auto)
    ks = mask.causal ? KeyStabilizer::RunningMax : KeyStabilizer::Global;
  ATTNLAB_CHECK(!(mask.causal && ks == KeyStabilizer::Global),
                ValueError,
                "favor_attention: the global key max is not causal (with epsilon > 0 future keys "
                "would change past outputs); use running-max or none");
  if (!mask.causal && ks == KeyStabilizer::RunningMax)
    ks = KeyStabilizer::Global;  // over the whole sequence the running max is the global max
  const FeatureShift kmode = opt.key_shift.defined()       ? FeatureShift::Given
                             : ks == KeyStabilizer::None   ? FeatureShift::None
                             : ks == KeyStabilizer::Global ? FeatureShift::Global
                                                           : FeatureShift::RunningMax;
  const FeatureShift qmode = opt.query_shift.defined() ? FeatureShift::Given
                             : opt.query_stabilizer    ? FeatureShift::RowMax
                                                       : FeatureShift::None;
  const bool fused = opt.impl == FavorImpl::Fused;
  auto features = fused ? favor_feature_map : favor_feature_map_reference;
  FeatureResult qf = features(q, projection, opt.features, qmode, Tensor(), opt.query_shift);
  FeatureResult kf = features(k, projection, opt.features, kmode, mask.key_padding, opt.key_shift);
  label(qf.features, "q_features");
  label(kf.features, "k_features");
  FavorSums sums;
  if (mask.causal) {
    const bool scaled = has_stabilizer(opt.features.map) &&
                        (kmode == FeatureShift::RunningMax || kmode == FeatureShift::Given);
    const Tensor ls = scaled ? kf.shift : Tensor();
    sums = fused ? favor_causal(qf.features, kf.features, v, ls)
                 : favor_causal_reference(qf.features, kf.features, v, ls);
  } else {
    sums = fused ? favor_bidirectional(qf.features, kf.features, v)
                 : favor_bidirectional_reference(qf.features, kf.features, v);
  }
  label(sums.numerator, "numerator");
  label(sums.normalizer, "normalizer");
  Var out = favor_normalize(sums.numerator, sums.normalizer);
  if (trace) {
    trace->projection = projection;
    if (projection.defined())
      label(projection, "projection");
    trace->q_features = qf.features;
    trace->k_features = kf.features;
    trace->numerator = sums.numerator;
    trace->normalizer = sums.normalizer;
    trace->query_shift = qf.shift;
    trace->key_shift = kf.shift;
  }
  return out;
}

}  // namespace attnlab::nn
