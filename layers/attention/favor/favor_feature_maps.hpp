// FAVOR+ feature maps phi: R^d -> R^r (Choromanski et al. 2021, Eq. 5 and Lemma 1), each one
// differentiable op (ag::Function) with its own backward; the estimators, the stabiliser and the
// gradients are derived in docs/derivations/favor_feature_maps.md.
// x: [B, H, L, d] queries or keys, W: [m, d] the projection (favor_features.hpp), out [B, H, L, r].
// x~ = d^(-1/4) x absorbs the 1/sqrt(d) of attention: exp(q.k / sqrt d) = SM(q~, k~) (Sec. 2.3).
//
// clang-format off
//   map            phi                                                           r    estimator
//   Positive       exp(W x~ - |x~|^2/2 - c) / sqrt(m) + eps                      m    SM+ (Lemma 1)
//   Hyperbolic     [exp(W x~ - ..), exp(-W x~ - ..)] / sqrt(2m) + eps            2m   SMhyp+
//   Trigonometric  exp(|x~|^2/2 - c) [sin(W x~), cos(W x~)] / sqrt(m) + eps      2m   SMtrig
//                  (signed features: rows of the estimated attention can sum to ~0 or below)
//   Generalized    f(W x~) / sqrt(m) + eps, f in {relu, softplus, elu+1}         m    (Eq. 5)
//   EluPlusOne     elu(x) + 1 + eps, no projection, no d^(-1/4)                  d    Linear
//                  Transformer (Katharopoulos et al. 2020; deterministic)
// clang-format on
//
// The stabiliser c (a per-row log-shift, exponential maps only) is a detached constant chosen by
// FeatureShift from the rows' largest log-feature  l_i = max_r log(phi_ir) before the shift:
// clang-format off
//   None        c = 0
//   RowMax      c_i = l_i                   (queries: each query row's own max; Google, pytorch)
//   Global      c = max_i l_i per (b, h)    (keys, bidirectional: over the sequence and features)
//   RunningMax  c_j = max_{i <= j} l_i      (keys, causal: sees no future key; -inf before the
//                                            first real key)
//   Given       c = the tensor passed in    (tests: the "frozen constant" version)
// clang-format on
// Padded keys (key_padding [B, L], 1 = real) get all-zero feature rows (numerator and normaliser
// alike: keys masked after the feature map, not only their values) and do not enter Global /
// RunningMax.
//
// How the detached stabiliser enters the gradient (favor_feature_maps.md 4). The op treats c as
// a constant: its backward is the gradient of phi with c frozen. In attention, query rows are
// scaled by e^(-c_i) and keys by a common e^(-c) (or, causally, e^(c_j - c_t) as applied by the
// fused op), so with eps = 0 every shift cancels exactly between numerator and normaliser: the
// output does not depend on c at all and the frozen-c gradient IS the true gradient
// (finite-difference gradcheck of the whole attention passes). With eps > 0 the shift no longer
// cancels: effectively the query features become phi_i + eps e^(c_i) in unshifted units, so c
// changes the result and a perturbation of the row holding the max moves c; that path is the
// one the detached gradient drops. Such a gradient is exact for the function with c frozen (what
// the tests check by passing FeatureShift::Given), not for the function a finite difference
// sees. The dropped term is O(eps e^c) relative and vanishes as eps -> 0.
//
// Backward (favor_feature_maps.md 5; u = phi without eps, g = dL/dphi, s = d^(-1/4)):
// clang-format off
//   Positive:       dx = s (W^T (g . u) - x~ (g . u)^T 1),   dW = (g . u)^T x~
//   Hyperbolic:     the same with g . u -> g+ . u+ - g- . u- in the first term
//                   and g+ . u+ + g- . u- in the second
//   Trigonometric:  dx = s (W^T (g_sin . P_cos - g_cos . P_sin) + x~ (g . u)^T 1)
//   Generalized:    dx = s W^T (g . f'(W x~)) / sqrt(m)
//   EluPlusOne:     dx = g . min(u, 1)
// clang-format on
#pragma once

#include <cstdint>
#include <string>

#include "autograd/var.hpp"
#include "core/enum_names.hpp"

namespace attnlab::nn {

using ag::Var;

enum class FeatureMap { Positive, Hyperbolic, Trigonometric, Generalized, EluPlusOne };
enum class GeneralizedFn { ReLU, Softplus, EluPlusOne };
enum class FeatureShift { None, RowMax, Global, RunningMax, Given };
const EnumNames<FeatureMap>& enum_names(FeatureMap);
const EnumNames<GeneralizedFn>& enum_names(GeneralizedFn);
const EnumNames<FeatureShift>& enum_names(FeatureShift);

const char* feature_map_name(
    FeatureMap m);  // "positive", "hyperbolic", "trig", "generalized", "elu+1"
FeatureMap parse_feature_map(const std::string& name);
const char* generalized_fn_name(GeneralizedFn f);  // "relu", "softplus", "elu+1"
const char* feature_shift_name(
    FeatureShift s);  // "none", "row-max", "global", "running-max", "given"

struct FeatureMapSpec {
  FeatureMap map = FeatureMap::Positive;
  GeneralizedFn fn = GeneralizedFn::ReLU;  // for Generalized
  double epsilon = 0.0;                    // added to every (real) feature; >= 0
};

// r, the feature width, for m projections and head width d.
int64_t feature_count(const FeatureMapSpec& spec, int64_t m, int64_t d);
bool uses_projection(FeatureMap m);  // all but EluPlusOne
bool has_stabilizer(FeatureMap m);   // the exponential maps: Positive, Hyperbolic, Trigonometric

struct FeatureResult {
  Var features;  // [B, H, L, r]
  // [B, H, L]: the constant c subtracted from each row's log-features (zeros when the map has no
  // exponential or shift is None). The causal attention op needs the keys' running max.
  Tensor shift;
};

// The fused op. projection is ignored (may be undefined) for EluPlusOne; gradients flow to x and,
// when it requires grad, to the projection. given_shift ([B, H, L]) is read for Given only.
FeatureResult favor_feature_map(const Var& x,
                                const Var& projection,
                                const FeatureMapSpec& spec,
                                FeatureShift shift,
                                const Tensor& key_padding = {},
                                const Tensor& given_shift = {});

// The same function composed from tape primitives (matmul, exp, sum, ...): the teaching version
// and the oracle of the tests.
FeatureResult favor_feature_map_reference(const Var& x,
                                          const Var& projection,
                                          const FeatureMapSpec& spec,
                                          FeatureShift shift,
                                          const Tensor& key_padding = {},
                                          const Tensor& given_shift = {});

namespace detail {
// The shift c [B, H, L] from the rows' largest log-features rowlog [B*H*L] (shared by the fused
// op and the reference so both stabilise identically). key_ok: [B*L] flags or nullptr.
template <class T>
void favor_shift(const T* rowlog,
                 const uint8_t* key_ok,
                 int64_t batch,
                 int64_t heads,
                 int64_t length,
                 FeatureShift shift,
                 const T* given,
                 T* c);
}  // namespace detail

}  // namespace attnlab::nn
