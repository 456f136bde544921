// Feature-map names, the stabiliser rule shared by the fused op and the reference, and the
// composed (tape-primitive) reference of every map. See favor_feature_maps.hpp.
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/attention/favor/favor_feature_maps.hpp"

namespace attnlab::nn {

const EnumNames<FeatureMap>& enum_names(FeatureMap) {
  static const EnumNames<FeatureMap> names{
      {FeatureMap::Positive, "positive", "exp(w.x - |x|^2 / 2)"},
      {FeatureMap::Hyperbolic, "hyperbolic", "[exp(u), exp(-u)], 2m features"},
      {FeatureMap::Trigonometric, "trig", "[sin, cos], 2m features, signed"},
      {FeatureMap::Generalized, "generalized", "f(W x)"},
      {FeatureMap::EluPlusOne, "elu+1", "elu(x) + 1, no projection"}};
  return names;
}
const char* feature_map_name(FeatureMap m) {
  return enum_names(m).name(m);
}
FeatureMap parse_feature_map(const std::string& s) {
  return enum_names(FeatureMap{}).parse(s, "feature map");
}

const EnumNames<GeneralizedFn>& enum_names(GeneralizedFn) {
  static const EnumNames<GeneralizedFn> names{{GeneralizedFn::ReLU, "relu"},
                                              {GeneralizedFn::Softplus, "softplus"},
                                              {GeneralizedFn::EluPlusOne, "elu+1"}};
  return names;
}
const char* generalized_fn_name(GeneralizedFn f) {
  return enum_names(f).name(f);
}

const EnumNames<FeatureShift>& enum_names(FeatureShift) {
  static const EnumNames<FeatureShift> names{{FeatureShift::None, "none"},
                                             {FeatureShift::RowMax, "row-max"},
                                             {FeatureShift::Global, "global"},
                                             {FeatureShift::RunningMax, "running-max"},
                                             {FeatureShift::Given, "given"}};
  return names;
}
const char* feature_shift_name(FeatureShift s) {
  return enum_names(s).name(s);
}

int64_t feature_count(const FeatureMapSpec& spec, int64_t m, int64_t d) {
  switch (spec.map) {
    case FeatureMap::Hyperbolic:
    case FeatureMap::Trigonometric:
      return 2 * m;
    case FeatureMap::EluPlusOne:
      return d;
    default:
      return m;
  }
}

bool uses_projection(FeatureMap m) {
  return m != FeatureMap::EluPlusOne;
}

bool has_stabilizer(FeatureMap m) {
  return m == FeatureMap::Positive || m == FeatureMap::Hyperbolic || m == FeatureMap::Trigonometric;
}

namespace detail {

template <class T>
void favor_shift(const T* rowlog,
                 const uint8_t* key_ok,
                 int64_t batch,
                 int64_t heads,
                 int64_t length,
                 FeatureShift shift,
                 const T* given,
                 T* c) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  const int64_t n = batch * heads * length;
  switch (shift) {
    case FeatureShift::None:
      std::fill(c, c + n, T(0));
      return;
    case FeatureShift::RowMax:
      std::copy(rowlog, rowlog + n, c);
      return;
    case FeatureShift::Given:
      std::copy(given, given + n, c);
      return;
    default:
      break;
  }
  for (int64_t bh = 0; bh < batch * heads; ++bh) {
    const uint8_t* ok = key_ok ? key_ok + (bh / heads) * length : nullptr;
    const T* l = rowlog + bh * length;
    T* cb = c + bh * length;
    T run = kNegInf;
    for (int64_t t = 0; t < length; ++t) {
      // A NaN row must not vanish into the max: let it propagate (std::max would drop it).
      if (!ok || ok[t])
        run = (l[t] > run || std::isnan(l[t])) ? l[t] : run;
      cb[t] = run;
    }
    if (shift == FeatureShift::Global)  // every row gets the final max (0 with no real row)
      std::fill(cb, cb + length, run == kNegInf ? T(0) : run);
  }
}

template void favor_shift<float>(
    const float*, const uint8_t*, int64_t, int64_t, int64_t, FeatureShift, const float*, float*);
template void favor_shift<double>(
    const double*, const uint8_t*, int64_t, int64_t, int64_t, FeatureShift, const double*, double*);

}  // namespace detail

FeatureResult favor_feature_map_reference(const Var& x,
                                          const Var& projection,
                                          const FeatureMapSpec& spec,
                                          FeatureShift shift,
                                          const Tensor& key_padding,
                                          const Tensor& given_shift) {
  ATTNLAB_CHECK(x.dim() == 4,
                ShapeError,
                "favor_feature_map_reference: x must be [batch, heads, length, head_dim], got ",
                x.shape());
  const int64_t b = x.size(0), h = x.size(1), l = x.size(2), d = x.size(3);
  const DType dt = x.dtype();
  const double eps = spec.epsilon;
  // [B, 1, L, 1] keep mask (1 = real row).
  Tensor keep;
  std::vector<uint8_t> ok;
  if (key_padding.defined()) {
    keep = ne(key_padding.to(dt), zeros({b, l}, dt)).reshape({b, 1, l, 1});
    const auto flags = key_padding.to_vector<double>();
    for (double f : flags) ok.push_back(f != 0);
  }
  Tensor c = zeros({b, h, l}, dt);
  Var phi;
  if (spec.map == FeatureMap::EluPlusOne) {
    phi = ag::elu(x) + (1.0 + eps);
  } else {
    const double s = std::pow(static_cast<double>(d), -0.25);
    const int64_t m = projection.size(0);
    Var xs = x * s;
    Var a = ag::matmul(xs, projection, false, true);        // [B, H, L, m]
    Var hs = ag::sum(xs * xs, -1, /*keepdim=*/true) * 0.5;  // [B, H, L, 1]
    if (has_stabilizer(spec.map)) {
      Tensor rowlog;
      if (spec.map == FeatureMap::Positive)
        rowlog = max(a.value() - hs.value(), -1);
      else if (spec.map == FeatureMap::Hyperbolic)
        rowlog = max(abs(a.value()), -1) - hs.value().reshape({b, h, l});
      else
        rowlog = hs.value().reshape({b, h, l}).clone();
      rowlog = rowlog.reshape({b, h, l});
      Tensor given = given_shift.defined() ? given_shift.to(dt) : Tensor();
      dispatch_float(dt, "favor_feature_map_reference", [&](auto tag) {
        using T = decltype(tag);
        detail::favor_shift<T>(rowlog.data<T>(),
                               ok.empty() ? nullptr : ok.data(),
                               b,
                               h,
                               l,
                               shift,
                               given.defined() ? given.data<T>() : nullptr,
                               c.data<T>());
      });
    }
    // A padded prefix has c = -inf under RunningMax; its rows are zeroed below, so any finite
    // value does here (and keeps exp() from producing inf * 0 = NaN).
    Tensor c_exp = where(eq(c, -std::numeric_limits<double>::infinity()), zeros_like(c), c);
    Var cv = ag::constant(c_exp.reshape({b, h, l, 1}));
    switch (spec.map) {
      case FeatureMap::Positive:
        phi = ag::exp(a - hs - cv) * (1.0 / std::sqrt(static_cast<double>(m))) + eps;
        break;
      case FeatureMap::Hyperbolic: {
        const double inv = 1.0 / std::sqrt(2.0 * static_cast<double>(m));
        phi = ag::concat({ag::exp(a - hs - cv), ag::exp(-a - hs - cv)}, -1) * inv + eps;
        break;
      }
      case FeatureMap::Trigonometric: {
        Var hx = ag::exp(hs - cv) * (1.0 / std::sqrt(static_cast<double>(m)));
        phi = ag::concat({hx * ag::sin(a), hx * ag::cos(a)}, -1) + eps;
        break;
      }
      default: {
        Var f = spec.fn == GeneralizedFn::ReLU       ? ag::relu(a)
                : spec.fn == GeneralizedFn::Softplus ? ag::softplus(a)
                                                     : ag::elu(a) + 1.0;
        phi = f * (1.0 / std::sqrt(static_cast<double>(m))) + eps;
      }
    }
  }
  if (keep.defined())
    phi = phi * ag::constant(keep);
  return {phi, c};
}

}  // namespace attnlab::nn
