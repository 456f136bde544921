// FAVOR+ feature maps: the fused op against the composed reference (values and gradients for x
// and W), gradcheck in float64 with fixed features, the stabilisers, padding and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 13}, dt, lo, hi);
}

Tensor padding(int64_t batch, int64_t l) {  // batch b keeps its first l - 2b - 1 positions
  Tensor p = zeros({batch, l});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < std::max<int64_t>(1, l - 2 * b - 1); ++j) p.set({b, j}, 1);
  return p;
}

std::vector<FeatureMapSpec> all_specs(double eps) {
  std::vector<FeatureMapSpec> out;
  for (FeatureMap m : {FeatureMap::Positive,
                       FeatureMap::Hyperbolic,
                       FeatureMap::Trigonometric,
                       FeatureMap::Generalized,
                       FeatureMap::EluPlusOne}) {
    FeatureMapSpec s;
    s.map = m;
    s.epsilon = eps;
    out.push_back(s);
  }
  for (GeneralizedFn f : {GeneralizedFn::Softplus, GeneralizedFn::EluPlusOne}) {
    FeatureMapSpec s;
    s.map = FeatureMap::Generalized;
    s.fn = f;
    s.epsilon = eps;
    out.push_back(s);
  }
  return out;
}

struct MapResult {
  Tensor phi, shift, dx, dw;
};
MapResult run_map(bool fused,
                  const FeatureMapSpec& spec,
                  FeatureShift shift,
                  const Tensor& x,
                  const Tensor& w,
                  const Tensor& g,
                  const Tensor& pad) {
  Var vx = param(x), vw = param(w);
  FeatureResult r = fused ? favor_feature_map(vx, vw, spec, shift, pad)
                          : favor_feature_map_reference(vx, vw, spec, shift, pad);
  r.features.backward(g);
  return {r.features.value(), r.shift, vx.grad(), uses_projection(spec.map) ? vw.grad() : Tensor()};
}

}  // namespace

TEST_SUITE("layers.favor_maps") {
  TEST_CASE_TEMPLATE(
      "fused maps equal the composed reference in value and gradient", T, float, double) {
    const DType dt = dtype_of<T>();
    const double tol = dt == kFloat32 ? 3e-5 : 1e-12;
    const int64_t b = 2, h = 2, l = 9, d = 5, m = 7;
    uint64_t seed = 1;
    for (const FeatureMapSpec& spec : all_specs(0.01)) {
      for (FeatureShift shift : {FeatureShift::None,
                                 FeatureShift::RowMax,
                                 FeatureShift::Global,
                                 FeatureShift::RunningMax}) {
        for (int pad = 0; pad < 2; ++pad) {
          CAPTURE(feature_map_name(spec.map));
          CAPTURE(generalized_fn_name(spec.fn));
          CAPTURE(feature_shift_name(shift));
          CAPTURE(pad);
          Tensor x = rnd({b, h, l, d}, seed++, dt, -1.5, 1.5);
          Tensor w = randn({m, d}, RngKey{seed++, 0}, dt);
          const int64_t r = feature_count(spec, m, d);
          Tensor g = rnd({b, h, l, r}, seed++, dt);
          Tensor p = pad ? padding(b, l) : Tensor();
          const MapResult fus = run_map(true, spec, shift, x, w, g, p);
          const MapResult ref = run_map(false, spec, shift, x, w, g, p);
          CHECK(fus.phi.shape() == Shape{b, h, l, r});
          CHECK_CLOSE(fus.phi, ref.phi, tol, tol);
          CHECK_CLOSE(fus.shift, ref.shift, tol, tol);
          CHECK_CLOSE(fus.dx, ref.dx, tol, tol);
          if (uses_projection(spec.map))
            CHECK_CLOSE(fus.dw, ref.dw, tol, tol);
        }
      }
    }
  }

  TEST_CASE("every map passes gradcheck in float64 for x and W with fixed features") {
    // Shift None, or a Given (frozen) shift: the gradient of the function with c constant.
    const Tensor pad = padding(2, 4);
    for (const FeatureMapSpec& spec : all_specs(0.05)) {
      for (FeatureShift shift : {FeatureShift::None, FeatureShift::Given}) {
        CAPTURE(feature_map_name(spec.map));
        CAPTURE(generalized_fn_name(spec.fn));
        CAPTURE(feature_shift_name(shift));
        Tensor given = rnd({2, 1, 4}, 40, kFloat64, -0.5, 0.5);
        auto f = [&](const std::vector<Var>& in) {
          return favor_feature_map(in[0], in[1], spec, shift, pad, given).features;
        };
        const auto r =
            gradcheck(f, {rnd({2, 1, 4, 3}, 41, kFloat64), randn({5, 3}, RngKey{42, 0}, kFloat64)});
        CHECK_MESSAGE(r.ok, r.report());
      }
    }
  }

  TEST_CASE("stabilisers - row max / global max / running max of the log-features") {
    const int64_t m = 16;
    Tensor x = rnd({1, 2, 12, 4}, 50, kFloat64, -2, 2);
    Tensor w = randn({m, 4}, RngKey{51, 0}, kFloat64);
    FeatureMapSpec spec;  // positive, eps 0
    // RowMax: every row's largest feature is exactly 1 / sqrt(m).
    Tensor q =
        favor_feature_map(constant(x), constant(w), spec, FeatureShift::RowMax).features.value();
    Tensor rowmax = max(q, -1);
    CHECK_CLOSE(rowmax, full_like(rowmax, 0.25), 1e-14, 0);
    // Global: the largest feature over a (b, h) is 1 / sqrt(m); per-row maxima are below.
    Tensor k =
        favor_feature_map(constant(x), constant(w), spec, FeatureShift::Global).features.value();
    for (int64_t hh = 0; hh < 2; ++hh) {
      CHECK(max(slice(k, 1, hh, hh + 1)).item() == doctest::Approx(0.25).epsilon(1e-14));
    }
    // Every shift changes each row by a constant factor only (what makes it cancel).
    Tensor none =
        favor_feature_map(constant(x), constant(w), spec, FeatureShift::None).features.value();
    FeatureResult run = favor_feature_map(constant(x), constant(w), spec, FeatureShift::RunningMax);
    Tensor ratio = run.features.value() / none;
    Tensor expect = exp(-run.shift).reshape({1, 2, 12, 1});
    CHECK_CLOSE(ratio, broadcast_to(expect, ratio.shape()), 1e-12, 0);
    // The running max is non-decreasing and equals the row max where it grows.
    for (int64_t t = 1; t < 12; ++t)
      CHECK(run.shift.get({0, 1, t}) >= run.shift.get({0, 1, t - 1}));
  }

  TEST_CASE("the running max sees no future row and padded rows are zero") {
    Tensor x = rnd({2, 1, 10, 4}, 60, kFloat32, -2, 2);
    Tensor w = randn({8, 4}, RngKey{61, 0}, kFloat32);
    Tensor pad = padding(2, 10);
    FeatureMapSpec spec;
    spec.epsilon = 1e-3;
    FeatureResult a =
        favor_feature_map(constant(x), constant(w), spec, FeatureShift::RunningMax, pad);
    Tensor x2 = x.clone();
    for (int64_t t = 6; t < 10; ++t)
      for (int64_t c = 0; c < 4; ++c) x2.set({0, 0, t, c}, 3.0);  // a large later key
    FeatureResult b =
        favor_feature_map(constant(x2), constant(w), spec, FeatureShift::RunningMax, pad);
    CHECK_CLOSE(slice(b.features.value(), 2, 0, 6), slice(a.features.value(), 2, 0, 6), 0, 0);
    CHECK_CLOSE(slice(b.shift, 2, 0, 6), slice(a.shift, 2, 0, 6), 0, 0);
    // Batch 1 keeps 7 keys: rows 7..9 are zero (eps included), and get no gradient.
    CHECK(max_abs_diff(slice(slice(a.features.value(), 0, 1, 2), 2, 7, 10), zeros({1, 1, 3, 8})) ==
          0);
    Var vx = param(x);
    sum(favor_feature_map(vx, constant(w), spec, FeatureShift::RunningMax, pad).features)
        .backward();
    CHECK(max_abs_diff(slice(slice(vx.grad(), 0, 1, 2), 2, 7, 10), zeros({1, 1, 3, 4})) == 0);
    CHECK(max_abs_diff(slice(slice(vx.grad(), 0, 1, 2), 2, 0, 7), zeros({1, 1, 7, 4})) > 0);
  }

  TEST_CASE("bad inputs give clear errors") {
    FeatureMapSpec spec;
    Var x = constant(zeros({1, 1, 3, 4}));
    CHECK_THROWS_WITH_AS(
        favor_feature_map(x, constant(zeros({6, 5})), spec, FeatureShift::None),
        doctest::Contains("projection must be [features, head_dim = 4], got [6, 5]"),
        ShapeError);
    CHECK_THROWS_WITH_AS(
        favor_feature_map(x, constant(zeros({6, 4}, kFloat64)), spec, FeatureShift::None),
        doctest::Contains("dtypes differ"),
        DTypeError);
    CHECK_THROWS_WITH_AS(
        favor_feature_map(
            constant(zeros({3, 4})), constant(zeros({6, 4})), spec, FeatureShift::None),
        doctest::Contains("[batch, heads, length, head_dim]"),
        ShapeError);
    CHECK_THROWS_AS(favor_feature_map(x, Var(), spec, FeatureShift::None), ValueError);
    CHECK_THROWS_WITH_AS(
        favor_feature_map(x, constant(zeros({6, 4})), spec, FeatureShift::Given),
        doctest::Contains("given shift must be [batch, heads, length] = [1, 1, 3]"),
        ShapeError);
    CHECK_THROWS_WITH_AS(
        favor_feature_map(x, constant(zeros({6, 4})), spec, FeatureShift::None, ones({2, 3})),
        doctest::Contains("key_padding must be [batch, length] = [1, 3]"),
        ShapeError);
    spec.epsilon = -1;
    CHECK_THROWS_AS(favor_feature_map(x, constant(zeros({6, 4})), spec, FeatureShift::None),
                    ValueError);
    CHECK_THROWS_AS(parse_feature_map("cosine"), ValueError);
    CHECK(parse_feature_map("trig") == FeatureMap::Trigonometric);
    // elu+1 needs no projection.
    FeatureMapSpec elu;
    elu.map = FeatureMap::EluPlusOne;
    CHECK(
        favor_feature_map(x, Var(), elu, FeatureShift::RowMax).features.value().get({0, 0, 0, 0}) ==
        1.0);
  }
}
