// FAVOR+ (and the linear elu+1 kernel) one position at a time: the running state of the causal
// form (App. B.1 of Choromanski et al. 2021; Katharopoulos et al. 2020, Eq. 9-12). Per head,
//   c_t = max(c_(t-1), l_t)               the keys' running max of their largest log-feature
//   S_t = e^(c_(t-1) - c_t) S_(t-1) + k'_t v_t^T      [r, dv]
//   z_t = e^(c_(t-1) - c_t) z_(t-1) + k'_t            [r]
//   o_t = q'_t^T S_t / q'_t . z_t         (0 when |q'_t . z_t| is below sqrt(smallest normal))
// with k'_t = phi(k_t) e^(-c_t) + eps and q'_t = phi(q_t) e^(-l(q_t)) + eps computed by the same
// feature-map op, projection and stabiliser choices as the fused causal op, so the outputs agree
// with its last row up to the summation order. O(r d) per step whatever t; the state is
// H (r dv + r) values. Maps without an exponential (elu+1, generalized) have no shift (c = 0).
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "core/vec.hpp"
#include "layers/attention/favor/favor_attention.hpp"

namespace attnlab::nn {
namespace {

struct FavorStreamSetup {
  FeatureMapSpec spec;
  Tensor projection;  // [m, d], undefined for elu+1
  bool query_shift = true;
  bool key_shift = true;  // running max (exponential maps, key stabiliser not None)
  int64_t heads = 1;
};

template <class T>
class FavorStateStream : public AttentionStream {
 public:
  explicit FavorStateStream(FavorStreamSetup setup) : s_(std::move(setup)) {}

  Tensor step(const Tensor& q, const Tensor& k, const Tensor& v) override {
    detail::check_stream_step(q, k, v, s_.heads, "FavorKernel stream");
    const int64_t h = s_.heads, dh = q.size(1), dv = v.size(1);
    const Tensor qf = query_features(q);
    const Tensor kf = key_features(k);
    const int64_t r = qf.size(3);
    if (steps_ == 0) {
      dh_ = dh;
      dv_ = dv;
      state_.assign(static_cast<std::size_t>(h * r * dv), T(0));
      norm_.assign(static_cast<std::size_t>(h * r), T(0));
    }
    ATTNLAB_CHECK(dh == dh_ && dv == dv_,
                  ShapeError,
                  "FavorKernel stream: head widths changed from dh ",
                  dh_,
                  ", dv ",
                  dv_,
                  " to ",
                  dh,
                  ", ",
                  dv);
    const VecFns<T>& vf = vec::fns<T>();
    Tensor out = zeros({h, dv}, q.dtype());
    const T tiny = static_cast<T>(std::sqrt(static_cast<double>(std::numeric_limits<T>::min())));
    std::vector<T> num(static_cast<std::size_t>(dv));
    for (int64_t i = 0; i < h; ++i) {
      T* st = state_.data() + i * r * dv;
      T* z = norm_.data() + i * r;
      const T* ki = kf.data<T>() + i * r;
      const T* qi = qf.data<T>() + i * r;
      const T* vi = v.data<T>() + i * dv;
      rescale(i, st, z, r * dv, r);
      std::fill(num.begin(), num.end(), T(0));
      for (int64_t e = 0; e < r; ++e) {
        vf.axpy(ki[e], vi, st + e * dv, dv);  // S += k'_t v_t^T
        z[e] += ki[e];
        vf.axpy(qi[e], st + e * dv, num.data(), dv);  // q'_t^T S
      }
      const T den = vf.dot(qi, z, r);
      if (std::abs(den) >= tiny) {
        T* oi = out.data<T>() + i * dv;
        for (int64_t c = 0; c < dv; ++c) oi[c] = num[c] / den;
      }
    }
    ++steps_;
    return out;
  }

  int64_t state_bytes() const override {
    return static_cast<int64_t>((state_.size() + norm_.size() + shift_.size()) * sizeof(T));
  }

 private:
  // Multiplies head i's state by e^(c_(t-1) - c_t) when the new key raised the running max
  // (every factor <= 1; an empty state, c = -inf, stays zero).
  void rescale(int64_t i, T* st, T* z, int64_t ns, int64_t nz) {
    if (!s_.key_shift)
      return;
    const T prev = shift_[i], now = new_shift_[i];
    shift_[i] = now;
    if (prev == now || !std::isfinite(prev))
      return;
    const T f = std::exp(prev - now);
    for (int64_t e = 0; e < ns; ++e) st[e] *= f;
    for (int64_t e = 0; e < nz; ++e) z[e] *= f;
  }

  Var as_rows(const Tensor& x) const {  // [H, d] -> [1, H, 1, d]
    return ag::constant(x.reshape({1, s_.heads, 1, x.size(1)}));
  }

  Var projection(DType dt) const {
    if (!s_.projection.defined())
      return Var();
    return ag::constant(s_.projection.dtype() == dt ? s_.projection : s_.projection.to(dt));
  }

  Tensor query_features(const Tensor& q) const {
    const FeatureShift mode = s_.query_shift ? FeatureShift::RowMax : FeatureShift::None;
    return favor_feature_map(as_rows(q), projection(q.dtype()), s_.spec, mode).features.value();
  }

  // The key's features shifted by the new running max c_t = max(c_(t-1), l_t): its own largest
  // log-feature l_t comes from a RowMax pass, the features from a Given pass with c_t (what
  // RunningMax gives at position t of the whole sequence).
  Tensor key_features(const Tensor& k) {
    const Var x = as_rows(k), w = projection(k.dtype());
    if (!s_.key_shift)
      return favor_feature_map(x, w, s_.spec, FeatureShift::None).features.value();
    if (shift_.empty())
      shift_.assign(static_cast<std::size_t>(s_.heads), -std::numeric_limits<T>::infinity());
    const Tensor own = favor_feature_map(x, w, s_.spec, FeatureShift::RowMax).shift;
    new_shift_.resize(shift_.size());
    for (int64_t i = 0; i < s_.heads; ++i) new_shift_[i] = std::max(shift_[i], own.data<T>()[i]);
    Tensor given = from_vector(std::vector<double>(new_shift_.begin(), new_shift_.end()),
                               Shape{1, s_.heads, 1},
                               k.dtype());
    return favor_feature_map(x, w, s_.spec, FeatureShift::Given, Tensor(), given).features.value();
  }

  FavorStreamSetup s_;
  int64_t dh_ = 0, dv_ = 0;
  std::vector<T> state_, norm_;       // per head: S [r, dv], z [r]
  std::vector<T> shift_, new_shift_;  // per head: c_(t-1), c_t
};

}  // namespace

std::unique_ptr<AttentionStream> FavorKernel::begin_stream(int64_t heads) const {
  ATTNLAB_CHECK(
      heads >= 1, ValueError, "FavorKernel::begin_stream: heads must be >= 1, got ", heads);
  ATTNLAB_CHECK(!is_training(),
                ValueError,
                "FavorKernel::begin_stream: streaming is inference only (a training forward "
                "may redraw the features); call eval() first");
  ATTNLAB_CHECK(options_.key_stabilizer != KeyStabilizer::Global,
                ValueError,
                "FavorKernel::begin_stream: the global key max is not causal; use running-max "
                "or none");
  FavorStreamSetup s;
  s.spec = options_.features;
  if (features_)
    s.projection = features_->projection();
  s.query_shift = options_.query_stabilizer;
  s.key_shift =
      has_stabilizer(options_.features.map) && options_.key_stabilizer != KeyStabilizer::None;
  s.heads = heads;
  return std::make_unique<DtypeDispatchedStream<FavorStateStream, FavorStreamSetup>>(std::move(s));
}

}  // namespace attnlab::nn
