// The fused FAVOR+ feature-map op: one GEMM X~ W^T, then the map, stabiliser and epsilon in one
// pass over each row; the backward is the closed form of favor_feature_maps.hpp (derived in
// docs/derivations/favor_feature_maps.md 5): one GEMM for dx and, when needed, one for dW.
#include "layers/attention/favor/favor_feature_maps.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/function.hpp"
#include "core/core.hpp"
#include "core/vec.hpp"

namespace attnlab::nn {
namespace {

constexpr int64_t kRowGrain = 64;  // rows per parallel_for chunk in the element-wise passes

struct Geometry {
  int64_t batch = 0, heads = 0, length = 0, d = 0, m = 0, r = 0;
  int64_t rows() const { return batch * heads * length; }
};

// Row i of the flattened [B, H, L] is a real row (keys: not padded).
inline bool row_ok(const std::vector<uint8_t>& ok, const Geometry& g, int64_t i) {
  if (ok.empty())
    return true;
  const int64_t b = i / (g.heads * g.length), t = i % g.length;
  return ok[b * g.length + t] != 0;
}

template <class T>
T generalized(GeneralizedFn f, T z) {
  switch (f) {
    case GeneralizedFn::ReLU:
      return z > 0 ? z : T(0);
    case GeneralizedFn::Softplus:
      return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
    default:
      return z > 0 ? z + 1 : std::exp(z);
  }
}

template <class T>
T generalized_grad(GeneralizedFn f, T z) {
  switch (f) {
    case GeneralizedFn::ReLU:
      return z > 0 ? T(1) : T(0);
    case GeneralizedFn::Softplus:
      return T(1) / (T(1) + std::exp(-z));
    default:
      return z > 0 ? T(1) : std::exp(z);
  }
}

class FeatureMapOp : public ag::Function {
 public:
  FeatureMapOp(const FeatureMapSpec& spec, FeatureShift shift, Tensor key_padding, Tensor given)
      : spec_(spec),
        shift_mode_(shift),
        key_padding_(std::move(key_padding)),
        given_(std::move(given)) {}
  const char* name() const override { return "favor_feature_map"; }
  const Tensor& shift() const { return shift_; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor& x = in[0];
    validate(in);
    g_.batch = x.size(0);
    g_.heads = x.size(1);
    g_.length = x.size(2);
    g_.d = x.size(3);
    g_.m = uses_projection(spec_.map) ? in[1].size(0) : g_.d;
    g_.r = feature_count(spec_, g_.m, g_.d);
    if (key_padding_.defined()) {
      const auto flags = key_padding_.to_vector<double>();
      ok_.resize(flags.size());
      for (std::size_t i = 0; i < flags.size(); ++i) ok_[i] = flags[i] != 0;
    }
    Tensor phi = Tensor::empty({g_.batch, g_.heads, g_.length, g_.r}, x.dtype());
    shift_ = zeros({g_.batch, g_.heads, g_.length}, x.dtype());
    Tensor z;  // generalized maps keep their pre-activation for the backward
    dispatch_float(x.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      if (spec_.map == FeatureMap::EluPlusOne) {
        elu_forward<T>(x.data<T>(), phi.data<T>());
      } else {
        if (spec_.map == FeatureMap::Generalized)
          z = Tensor::empty({g_.batch, g_.heads, g_.length, g_.m}, x.dtype());
        projected_forward<T>(x.data<T>(),
                             in[1].data<T>(),
                             phi.data<T>(),
                             z.defined() ? z.data<T>() : nullptr,
                             shift_.data<T>());
      }
    });
    if (spec_.map == FeatureMap::EluPlusOne)
      save_for_backward({phi});
    else if (spec_.map == FeatureMap::Generalized)
      save_for_backward({x, in[1], z});
    else
      save_for_backward({x, in[1], phi});
    return {phi};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const auto& s = saved();
    if (spec_.map == FeatureMap::EluPlusOne) {
      Tensor dx = Tensor::empty({g_.batch, g_.heads, g_.length, g_.d}, s[0].dtype());
      dispatch_float(dx.dtype(), name(), [&](auto tag) {
        using T = decltype(tag);
        elu_backward<T>(s[0].data<T>(), grad[0].data<T>(), dx.data<T>());
      });
      return {dx};
    }
    const Tensor &x = s[0], &w = s[1];
    Tensor dx = needs_input_grad(0) ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dw = needs_input_grad(1) ? Tensor::empty(w.shape(), w.dtype()) : Tensor();
    dispatch_float(x.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      projected_backward<T>(x.data<T>(),
                            w.data<T>(),
                            s[2].data<T>(),
                            grad[0].data<T>(),
                            dx.defined() ? dx.data<T>() : nullptr,
                            dw.defined() ? dw.data<T>() : nullptr);
    });
    return {dx, dw};
  }

 private:
  void validate(const std::vector<Tensor>& in) const {
    const Tensor& x = in[0];
    ATTNLAB_CHECK(x.dim() == 4 && x.size(3) > 0,
                  ShapeError,
                  "favor_feature_map: x must be [batch, heads, length, head_dim], got ",
                  x.shape());
    ATTNLAB_CHECK(is_floating(x.dtype()),
                  DTypeError,
                  "favor_feature_map: x must be float32 or float64, got ",
                  x.dtype());
    ATTNLAB_CHECK(spec_.epsilon >= 0 && std::isfinite(spec_.epsilon),
                  ValueError,
                  "favor_feature_map: epsilon must be finite and >= 0, got ",
                  spec_.epsilon);
    if (uses_projection(spec_.map)) {
      ATTNLAB_CHECK(in.size() == 2 && in[1].defined(),
                    ValueError,
                    "favor_feature_map: the ",
                    feature_map_name(spec_.map),
                    " map needs a projection");
      const Tensor& w = in[1];
      ATTNLAB_CHECK(w.dim() == 2 && w.size(1) == x.size(3) && w.size(0) >= 1,
                    ShapeError,
                    "favor_feature_map: projection must be [features, head_dim = ",
                    x.size(3),
                    "], got ",
                    w.shape(),
                    " for x ",
                    x.shape());
      ATTNLAB_CHECK(w.dtype() == x.dtype(),
                    DTypeError,
                    "favor_feature_map: dtypes differ: x ",
                    x.dtype(),
                    ", projection ",
                    w.dtype());
    }
    if (key_padding_.defined()) {
      ATTNLAB_CHECK(key_padding_.shape() == Shape({x.size(0), x.size(2)}),
                    ShapeError,
                    "favor_feature_map: key_padding must be [batch, length] = [",
                    x.size(0),
                    ", ",
                    x.size(2),
                    "], got ",
                    key_padding_.shape());
    }
    if (shift_mode_ == FeatureShift::Given && has_stabilizer(spec_.map)) {
      ATTNLAB_CHECK(given_.defined() && given_.shape() == Shape({x.size(0), x.size(1), x.size(2)}),
                    ShapeError,
                    "favor_feature_map: a given shift must be [batch, heads, length] = [",
                    x.size(0),
                    ", ",
                    x.size(1),
                    ", ",
                    x.size(2),
                    "], got ",
                    given_.defined() ? given_.shape().str() : std::string("none"));
    }
  }

  template <class T>
  void elu_forward(const T* x, T* phi) const {
    const int64_t n = g_.rows(), d = g_.d;
    const T eps = static_cast<T>(spec_.epsilon);
    parallel_for(0, n, kRowGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const bool ok = row_ok(ok_, g_, i);
        for (int64_t c = 0; c < d; ++c) {
          const T v = x[i * d + c];
          phi[i * d + c] = ok ? (v > 0 ? v + 1 : std::exp(v)) + eps : T(0);
        }
      }
    });
  }

  template <class T>
  void elu_backward(const T* phi, const T* g, T* dx) const {
    const int64_t n = g_.rows(), d = g_.d;
    const T eps = static_cast<T>(spec_.epsilon);
    parallel_for(0, n, kRowGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const bool ok = row_ok(ok_, g_, i);
        for (int64_t c = 0; c < d; ++c) {
          // elu(x) + 1 is e^x for x <= 0 (derivative e^x = phi - eps <= 1) and x + 1 above.
          const T u = phi[i * d + c] - eps;
          dx[i * d + c] = ok ? g[i * d + c] * (u < T(1) ? u : T(1)) : T(0);
        }
      }
    });
  }

  template <class T>
  void projected_forward(const T* x, const T* w, T* phi, T* z, T* c) const {
    const VecFns<T>& vf = vec::fns<T>();
    const int64_t n = g_.rows(), d = g_.d, m = g_.m, r = g_.r;
    const T s = static_cast<T>(std::pow(static_cast<double>(d), -0.25));
    const T eps = static_cast<T>(spec_.epsilon);
    const FeatureMap map = spec_.map;
    const int64_t wide = map == FeatureMap::Hyperbolic ? 2 * m : m;
    const T inv = static_cast<T>(1.0 / std::sqrt(static_cast<double>(wide)));
    // A = x~ W^T into the first m columns of phi (or into z for generalized maps).
    T* a = z ? z : phi;
    const int64_t lda = z ? m : r;
    gemm<T>(false, true, n, m, d, s, x, d, w, d, T(0), a, lda);
    std::vector<T> half_sq(static_cast<std::size_t>(n)), rowlog(static_cast<std::size_t>(n));
    parallel_for(0, n, kRowGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const T hs = s * s * vf.dot(x + i * d, x + i * d, d) / 2;
        half_sq[i] = hs;
        T* ai = a + i * lda;
        if (map == FeatureMap::Positive) {
          vf.add_scalar(ai, ai, m, -hs);  // a - hs
          rowlog[i] = vf.max(ai, m);
        } else if (map == FeatureMap::Hyperbolic) {
          T mx = 0;
          for (int64_t k = 0; k < m; ++k) mx = std::max(mx, std::fabs(ai[k]));
          rowlog[i] = mx - hs;
        } else {
          rowlog[i] = hs;
        }
      }
    });
    if (has_stabilizer(map)) {
      detail::favor_shift<T>(rowlog.data(),
                             ok_.empty() ? nullptr : ok_.data(),
                             g_.batch,
                             g_.heads,
                             g_.length,
                             shift_mode_,
                             given_.defined() ? given_.data<T>() : nullptr,
                             c);
    }
    parallel_for(0, n, kRowGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T* pi = phi + i * r;
        if (!row_ok(ok_, g_, i)) {
          std::fill(pi, pi + r, T(0));
          continue;
        }
        const T ci = c[i];
        switch (map) {
          case FeatureMap::Positive: {
            vf.exp_affine(pi, pi, m, false, ci, inv, eps);  // exp(a - c) inv + eps
            break;
          }
          case FeatureMap::Hyperbolic: {
            const T k = half_sq[i] + ci;
            vf.exp_affine(pi, pi + m, m, true, k, inv, eps);  // exp(-u - k) inv + eps
            vf.exp_affine(pi, pi, m, false, k, inv, eps);     // exp(u - k) inv + eps
            break;
          }
          case FeatureMap::Trigonometric: {
            const T h = std::exp(half_sq[i] - ci) * inv;
            for (int64_t k = 0; k < m; ++k) {
              const T u = pi[k];
              pi[m + k] = h * std::cos(u) + eps;
              pi[k] = h * std::sin(u) + eps;
            }
            break;
          }
          default: {
            const T* zi = z + i * m;
            for (int64_t k = 0; k < m; ++k) pi[k] = generalized(spec_.fn, zi[k]) * inv + eps;
          }
        }
      }
    });
  }

  // dx = s (GD W + sign x~ rs), dW = GD^T x~ with GD, rs and sign per map (see the header).
  template <class T>
  void projected_backward(const T* x, const T* w, const T* saved, const T* g, T* dx, T* dw) const {
    const VecFns<T>& vf = vec::fns<T>();
    const int64_t n = g_.rows(), d = g_.d, m = g_.m, r = g_.r;
    const T s = static_cast<T>(std::pow(static_cast<double>(d), -0.25));
    const T eps = static_cast<T>(spec_.epsilon);
    const FeatureMap map = spec_.map;
    const int64_t wide = map == FeatureMap::Hyperbolic ? 2 * m : m;
    const T inv = static_cast<T>(1.0 / std::sqrt(static_cast<double>(wide)));
    const T sign = map == FeatureMap::Trigonometric ? T(1)
                   : map == FeatureMap::Generalized ? T(0)
                                                    : T(-1);
    Tensor gd_t = Tensor::empty({n, m}, dtype_of<T>());
    T* gd = gd_t.data<T>();
    std::vector<T> rs(static_cast<std::size_t>(n), T(0));
    parallel_for(0, n, kRowGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T* gdi = gd + i * m;
        if (!row_ok(ok_, g_, i)) {
          std::fill(gdi, gdi + m, T(0));
          continue;
        }
        const T* gi = g + i * r;
        const T* pi = saved + i * (map == FeatureMap::Generalized ? m : r);
        if (map == FeatureMap::Positive) {
          // gd = g . (phi - eps) and its row sum, with one batch accumulator and a scalar tail.
          rs[i] = vf.mul_shifted_sum(gi, pi, gdi, m, eps);
        } else if (map == FeatureMap::Hyperbolic || map == FeatureMap::Trigonometric) {
          const bool hyp = map == FeatureMap::Hyperbolic;
          T sum = 0;
          for (int64_t k = 0; k < m; ++k) {
            const T a = pi[k] - eps, b = pi[m + k] - eps;  // u+, u-  or  P_sin, P_cos
            const T ga = gi[k], gb = gi[m + k];
            gdi[k] = hyp ? ga * a - gb * b : ga * b - gb * a;
            sum += ga * a + gb * b;
          }
          rs[i] = sum;
        } else {
          for (int64_t k = 0; k < m; ++k) gdi[k] = gi[k] * generalized_grad(spec_.fn, pi[k]) * inv;
        }
      }
    });
    if (dx) {
      gemm<T>(false, false, n, d, m, s, gd, m, w, d, T(0), dx, d);
      if (sign != T(0)) {
        parallel_for(0, n, kRowGrain, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) {
            const T f = sign * s * s * rs[i];
            if (f != T(0))
              vf.axpy(f, x + i * d, dx + i * d, d);
          }
        });
      }
    }
    if (dw)
      gemm<T>(true, false, m, d, n, s, gd, m, x, d, T(0), dw, d);
  }

  FeatureMapSpec spec_;
  FeatureShift shift_mode_;
  Tensor key_padding_, given_, shift_;
  std::vector<uint8_t> ok_;
  Geometry g_;
};

}  // namespace

FeatureResult favor_feature_map(const Var& x,
                                const Var& projection,
                                const FeatureMapSpec& spec,
                                FeatureShift shift,
                                const Tensor& key_padding,
                                const Tensor& given_shift) {
  auto op =
      std::make_shared<FeatureMapOp>(spec, shift, key_padding, given_shift);
  std::vector<Var> inputs{x};
  if (uses_projection(spec.map)) {
    ATTNLAB_CHECK(projection.defined(),
                  ValueError,
                  "favor_feature_map: the ",
                  feature_map_name(spec.map),
                  " map needs a projection");
    inputs.push_back(projection);
  }
  Var phi = ag::apply(op, inputs)[0];
  return {phi, op->shift()};
}

}  // namespace attnlab::nn
