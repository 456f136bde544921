// FAVOR+ random projections: Householder QR, the sign fix, orthogonal blocks, norms, redraw
// policy and replay, and the Monte-Carlo unbiasedness of the positive softmax-kernel estimate.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::nn;

namespace {

// |A B^T - expect|_max for row-major [n, d] blocks of a [m, d] tensor.
double gram_error(const Tensor& w, int64_t r0, int64_t rows, bool unit) {
  const int64_t d = w.size(1);
  double worst = 0;
  for (int64_t i = r0; i < r0 + rows; ++i) {
    for (int64_t j = r0; j < r0 + rows; ++j) {
      double s = 0, ni = 0, nj = 0;
      for (int64_t c = 0; c < d; ++c) {
        s += w.get({i, c}) * w.get({j, c});
        ni += w.get({i, c}) * w.get({i, c});
        nj += w.get({j, c}) * w.get({j, c});
      }
      const double cosine = s / std::sqrt(ni * nj);
      const double want = i == j ? 1.0 : 0.0;
      worst = std::max(worst, std::fabs((unit ? s : cosine) - want));
    }
  }
  return worst;
}

double row_norm(const Tensor& w, int64_t i) {
  double s = 0;
  for (int64_t c = 0; c < w.size(1); ++c) s += w.get({i, c}) * w.get({i, c});
  return std::sqrt(s);
}

// Mean and standard error of phi(x) . phi(y) (positive features, no stabiliser, eps = 0) over
// `draws` projections; x, y are [1, 1, 1, d] and the estimate targets exp(x . y / sqrt(d)).
struct Estimate {
  double mean, sem;
};
template <class Draw>
Estimate kernel_estimate(const Tensor& x, const Tensor& y, int draws, Draw&& draw) {
  FeatureMapSpec spec;  // positive, eps 0
  double s1 = 0, s2 = 0;
  for (int n = 0; n < draws; ++n) {
    ag::Var w = ag::constant(draw(n));
    Tensor fx = favor_feature_map(ag::constant(x), w, spec, FeatureShift::None).features.value();
    Tensor fy = favor_feature_map(ag::constant(y), w, spec, FeatureShift::None).features.value();
    double e = 0;
    for (int64_t r = 0; r < fx.numel(); ++r) e += fx.flat(r) * fy.flat(r);
    s1 += e;
    s2 += e * e;
  }
  const double mean = s1 / draws, var = s2 / draws - mean * mean;
  return {mean, std::sqrt(var / draws)};
}

}  // namespace

TEST_SUITE("layers.favor_features") {
  TEST_CASE("Householder QR gives an orthogonal Q with Q^T G upper triangular and diag R") {
    const int64_t d = 9;
    Tensor g = randn({d, d}, RngKey{3, 1}, kFloat64);
    Tensor q = g.clone();
    std::vector<double> r(d);
    householder_qr(q.data<double>(), r.data(), d);
    Tensor qtq = matmul(q, q, true, false);
    CHECK(max_abs_diff(qtq, [&] {
            Tensor e = zeros({d, d}, kFloat64);
            for (int64_t i = 0; i < d; ++i) e.set({i, i}, 1);
            return e;
          }()) < 1e-13);
    Tensor rr = matmul(q, g, true, false);  // R = Q^T G
    for (int64_t i = 0; i < d; ++i) {
      CHECK(rr.get({i, i}) == doctest::Approx(r[i]).epsilon(1e-12));
      for (int64_t j = 0; j < i; ++j) CHECK(std::fabs(rr.get({i, j})) < 1e-12);
    }
  }

  TEST_CASE("the sign fix makes first coordinates positive about half the time") {
    // Without the fix the LAPACK convention makes Q[0, 0] = -|g_00| / |g_0| < 0 in every draw
    // (favor_feature_maps.md 3); with Q[:, j] *= sign(R_jj) Q is Haar: P(Q[0, 0] > 0) = 1/2.
    const int draws = 400, d = 8;
    int fixed_pos = 0, raw_pos = 0, fixed_last_pos = 0;
    for (int n = 0; n < draws; ++n) {
      const RngKey key{11, static_cast<uint64_t>(n)};
      Tensor fixed = random_orthogonal(d, key, true), raw = random_orthogonal(d, key, false);
      fixed_pos += fixed.get({0, 0}) > 0;
      fixed_last_pos += fixed.get({d - 1, d - 1}) > 0;
      raw_pos += raw.get({0, 0}) > 0;
      // The fix only flips columns: still orthogonal, and |entries| agree.
      CHECK(std::fabs(std::fabs(fixed.get({3, 2})) - std::fabs(raw.get({3, 2}))) < 1e-15);
    }
    // Binomial(400, 1/2): sd 10; 5 sd bounds.
    CHECK(raw_pos == 0);
    CHECK(std::abs(fixed_pos - draws / 2) < 50);
    CHECK(std::abs(fixed_last_pos - draws / 2) < 50);
  }

  TEST_CASE("orthogonal projections: orthogonal blocks and chi or fixed norms") {
    for (int64_t m : {8, 20, 3}) {  // one block, 2.5 blocks (m not a multiple of d), a part block
      CAPTURE(m);
      ProjectionOptions o;
      o.features = m;
      o.dim = 8;
      o.norm = FeatureNorm::Fixed;
      Tensor w = draw_projection(o, RngKey{5, 0});
      CHECK(w.shape() == Shape{m, 8});
      for (int64_t b = 0; b * 8 < m; ++b) {
        CHECK(gram_error(w, b * 8, std::min<int64_t>(8, m - b * 8), false) < 1e-12);
      }
      for (int64_t i = 0; i < m; ++i) CHECK(row_norm(w, i) == doctest::Approx(std::sqrt(8.0)));
      o.norm = FeatureNorm::Chi;
      Tensor wc = draw_projection(o, RngKey{5, 0});
      for (int64_t b = 0; b * 8 < m; ++b)
        CHECK(gram_error(wc, b * 8, std::min<int64_t>(8, m - b * 8), false) < 1e-12);
      // Chi norms differ row to row (independent chi(8) draws).
      if (m > 1)
        CHECK(std::fabs(row_norm(wc, 0) - row_norm(wc, 1)) > 1e-6);
    }
    // Blocks are independent: rows 0 and 8 are not orthogonal in general.
    ProjectionOptions o;
    o.features = 16;
    o.dim = 8;
    Tensor w = draw_projection(o, RngKey{6, 0});
    double dot = 0;
    for (int64_t c = 0; c < 8; ++c) dot += w.get({0, c}) * w.get({8, c});
    CHECK(std::fabs(dot) > 1e-6);
    // Chi norms: E|w|^2 = d. Mean over 64 blocks x 8 rows.
    o.features = 512;
    Tensor big = draw_projection(o, RngKey{7, 0});
    double s = 0;
    for (int64_t i = 0; i < 512; ++i) s += row_norm(big, i) * row_norm(big, i);
    CHECK(s / 512 == doctest::Approx(8.0).epsilon(0.05));  // sd of the mean ~ 0.18
    // iid rows: Gaussian entries, not orthogonal.
    o.orthogonal = false;
    o.features = 8;
    CHECK(gram_error(draw_projection(o, RngKey{8, 0}), 0, 8, false) > 1e-3);
  }

  TEST_CASE("projections are a pure function of the key") {
    ProjectionOptions o;
    o.features = 12;
    o.dim = 5;
    CHECK(
        testing::bitwise_equal(draw_projection(o, RngKey{1, 2}), draw_projection(o, RngKey{1, 2})));
    CHECK(max_abs_diff(draw_projection(o, RngKey{1, 2}), draw_projection(o, RngKey{1, 3})) > 0.1);
    testing::ThreadCountGuard one(1);
    Tensor a = draw_projection(o, RngKey{4, 4});
    testing::ThreadCountGuard two(2);
    CHECK(testing::bitwise_equal(a, draw_projection(o, RngKey{4, 4})));
  }

  TEST_CASE("Monte Carlo - the positive-feature estimate of exp(q.k / sqrt d) is unbiased") {
    // Lemma 1: E[phi(x) . phi(y)] = SM(x~, y~). Small norms keep the variance
    // (e^(|x~ + y~|^2) - 1) / m moderate; the bound is 5 standard errors of the sample mean.
    const int64_t d = 16, m = 32;
    const int draws = 3000;
    Tensor x = full({1, 1, 1, d}, 0.3, kFloat64), y = full({1, 1, 1, d}, 0.3, kFloat64);
    y.set({0, 0, 0, 0}, -0.5);
    double xy = 0;
    for (int64_t c = 0; c < d; ++c) xy += x.flat(c) * y.flat(c);
    const double exact = std::exp(xy / std::sqrt(static_cast<double>(d)));
    ProjectionOptions o;
    o.features = m;
    o.dim = d;
    for (bool orthogonal : {false, true}) {
      CAPTURE(orthogonal);
      o.orthogonal = orthogonal;
      const Estimate e = kernel_estimate(x, y, draws, [&](int n) {
        return draw_projection(o, RngKey{21, static_cast<uint64_t>(n)});
      });
      MESSAGE("estimate ", e.mean, " +- ", e.sem, " exact ", exact);
      CHECK(std::fabs(e.mean - exact) < 5 * e.sem);
      CHECK(e.sem < 0.01 * exact);  // the bound is informative
    }
    // Without the sign fix the first row of each block is biased (Q[0, 0] < 0 always): with x and
    // y along the first axis the estimate is far off.
    Tensor xa = zeros({1, 1, 1, d}, kFloat64), ya = zeros({1, 1, 1, d}, kFloat64);
    xa.set({0, 0, 0, 0}, 1.0);
    ya.set({0, 0, 0, 0}, 1.0);
    const double exact_a = std::exp(1.0 / 4.0);
    auto orf = [&](bool fix) {
      return kernel_estimate(xa, ya, draws, [&](int n) {
        Tensor w = zeros({m, d}, kFloat64);
        for (int64_t b = 0; b < m / d; ++b) {
          Tensor q = random_orthogonal(d, RngKey{31, static_cast<uint64_t>(n * 4 + b)}, fix);
          Tensor norms = randn({d, d}, RngKey{32, static_cast<uint64_t>(n * 4 + b)}, kFloat64);
          for (int64_t i = 0; i < d; ++i) {
            double nn = 0;
            for (int64_t c = 0; c < d; ++c) nn += norms.get({i, c}) * norms.get({i, c});
            for (int64_t c = 0; c < d; ++c) w.set({b * d + i, c}, q.get({c, i}) * std::sqrt(nn));
          }
        }
        return w;
      });
    };
    const Estimate fixed = orf(true), raw = orf(false);
    MESSAGE("fixed ",
            fixed.mean,
            " +- ",
            fixed.sem,
            " raw ",
            raw.mean,
            " +- ",
            raw.sem,
            " exact ",
            exact_a);
    CHECK(std::fabs(fixed.mean - exact_a) < 5 * fixed.sem);
    CHECK(std::fabs(raw.mean - exact_a) > 10 * raw.sem);
  }

  TEST_CASE("redraw policy - never / every call / every n calls / training only") {
    ProjectionOptions p;
    p.features = 6;
    p.dim = 4;
    RandomFeatures never(p, {RedrawPolicy::Never, 1}, 3);
    Tensor w0 = never.projection().clone();
    for (int i = 0; i < 3; ++i) CHECK(testing::bitwise_equal(never.next(), w0));
    CHECK(never.calls() == 3);
    CHECK(never.draw() == 0);

    RandomFeatures every(p, {RedrawPolicy::EveryCall, 1}, 3);
    CHECK(testing::bitwise_equal(every.projection(), w0));  // draw 0 of the same seed
    Tensor c0 = every.next().clone();
    Tensor c1 = every.next().clone();
    CHECK(testing::bitwise_equal(c0, w0));
    CHECK(max_abs_diff(c1, c0) > 1e-3);
    CHECK(every.draw() == 1);
    every.eval();
    CHECK(testing::bitwise_equal(every.next(), c1));  // evaluation never redraws or counts
    CHECK(every.calls() == 2);

    RandomFeatures periodic(p, {RedrawPolicy::EveryNCalls, 3}, 3);
    std::vector<Tensor> seen;
    for (int i = 0; i < 7; ++i) seen.push_back(periodic.next().clone());
    CHECK(testing::bitwise_equal(seen[0], seen[2]));
    CHECK_FALSE(testing::bitwise_equal(seen[2], seen[3]));
    CHECK(testing::bitwise_equal(seen[3], seen[5]));
    CHECK_FALSE(testing::bitwise_equal(seen[5], seen[6]));
    CHECK(periodic.draw() == 2);
    // Draw n depends only on (seed, n): the periodic module's draw 1 is the every-call one's.
    CHECK(testing::bitwise_equal(seen[3], c1));
    CHECK_THROWS_AS(RandomFeatures(p, {RedrawPolicy::EveryNCalls, 0}, 3), ValueError);
  }

  TEST_CASE("replay - set_calls and a state_dict round trip give the same features") {
    ProjectionOptions p;
    p.features = 5;
    p.dim = 3;
    RandomFeatures a(p, {RedrawPolicy::EveryNCalls, 2}, 9);
    std::vector<Tensor> seen;
    for (int i = 0; i < 6; ++i) seen.push_back(a.next().clone());
    a.set_calls(2);  // replay call 2 (a recompute, e.g. activation checkpointing)
    CHECK(testing::bitwise_equal(a.next(), seen[2]));
    CHECK(testing::bitwise_equal(a.next(), seen[3]));
    // A fresh module restored from the state continues the same sequence.
    a.set_calls(3);
    RandomFeatures b(p, {RedrawPolicy::EveryNCalls, 2}, 9);
    b.load_state_dict(a.state_dict());
    CHECK(b.calls() == 3);
    CHECK(testing::bitwise_equal(b.next(), seen[3]));
    CHECK(testing::bitwise_equal(b.next(), seen[4]));
    // Module::to converts the projection; redraws keep the dtype.
    b.to(kFloat64);
    CHECK(b.projection().dtype() == kFloat64);
    b.next();
    CHECK(b.next().dtype() == kFloat64);
  }

  TEST_CASE("set_projection validates and holds until the next redraw") {
    ProjectionOptions p;
    p.features = 4;
    p.dim = 2;
    RandomFeatures a(p, {RedrawPolicy::EveryNCalls, 2}, 1);
    Tensor mine = full({4, 2}, 0.5, kFloat64);
    a.next();  // call 0
    a.set_projection(mine);
    CHECK(a.draw() == -1);
    CHECK(a.projection().dtype() == kFloat32);
    CHECK(max_abs_diff(a.next(), mine.to(kFloat32)) == 0);  // call 1: same draw window
    CHECK(max_abs_diff(a.next(), mine.to(kFloat32)) > 0);   // call 2: a new draw
    CHECK_THROWS_WITH_AS(a.set_projection(zeros({3, 2})),
                         doctest::Contains("expected a float [4, 2] tensor, got [3, 2]"),
                         ShapeError);
    CHECK_THROWS_AS(a.set_projection(zeros({4, 2}, kInt64)), ShapeError);
    CHECK_THROWS_AS(parse_feature_norm("gauss"), ValueError);
    CHECK(parse_redraw_policy("every-call") == RedrawPolicy::EveryCall);
  }
}
