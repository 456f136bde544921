// Losses: values against numbers computed by plain loops, gradients against the closed forms and
// gradcheck (float64, slow mode), stability at |logits| = 1e4, zero-weight / all-ignored cases
// and error messages.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/nn/losses.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 21}, kFloat64, lo, hi);
}

double softplus_ref(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
double sigmoid_ref(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

void check_gradcheck(const std::function<Var(const std::vector<Var>&)>& f,
                     const std::vector<Tensor>& inputs) {
  const GradcheckResult r = gradcheck(f, inputs);
  CHECK_MESSAGE(r.ok, r.report());
}

bool all_finite(const Tensor& t) {
  return !has_nonfinite(t);
}

}  // namespace

TEST_SUITE("layers.losses") {
  TEST_CASE("bce_with_logits: values and gradient against the formulas") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      const std::vector<double> x = {0.0, 2.0, -1.0, 0.5}, t = {1.0, 0.0, 0.5, 1.0};
      Var logits = param(from_vector(x, {4}, dt));
      Var loss = bce_with_logits(logits, from_vector(t, {4}, dt));
      double want = 0;
      for (int i = 0; i < 4; ++i) want += softplus_ref(x[i]) - x[i] * t[i];
      want /= 4;
      CHECK(loss.dtype() == dt);
      CHECK(loss.item() == doctest::Approx(want).epsilon(1e-6));
      loss.backward();
      for (int i = 0; i < 4; ++i) {
        CHECK(logits.grad().flat(i) ==
              doctest::Approx((sigmoid_ref(x[i]) - t[i]) / 4).epsilon(1e-6));
      }
      // At x = 0 the gradient is exactly (1/2 - t) / n: no kink from a composed relu/abs.
      CHECK(logits.grad().flat(0) == -0.125);

      // Weighted: sum(w l) / sum(w); weight 0 drops an element entirely, even an Inf logit.
      const std::vector<double> w = {1.0, 0.0, 2.0, 0.0};
      std::vector<double> x2 = x;
      x2[3] = INFINITY;
      Var lw = param(from_vector(x2, {4}, dt));
      Var lossw = bce_with_logits(lw, from_vector(t, {4}, dt), from_vector(w, {4}, dt));
      const double l0 = softplus_ref(0.0) - 0.0, l2 = softplus_ref(-1.0) + 0.5;
      CHECK(lossw.item() == doctest::Approx((l0 + 2 * l2) / 3).epsilon(1e-6));
      lossw.backward();
      CHECK(lw.grad().flat(0) == doctest::Approx((0.5 - 1.0) / 3).epsilon(1e-6));
      CHECK(lw.grad().flat(1) == 0.0);
      CHECK(lw.grad().flat(2) == doctest::Approx(2 * (sigmoid_ref(-1) - 0.5) / 3).epsilon(1e-6));
      CHECK(lw.grad().flat(3) == 0.0);
    }
  }

  TEST_CASE("bce_with_logits: weight broadcasting / all-zero weight") {
    Tensor x = rnd({2, 3}, 1), t = rnd({2, 3}, 2, 0, 1);
    Tensor w = from_vector(std::vector<double>{1, 0}, {2, 1}, kFloat64);
    const double a = bce_with_logits(constant(x), t, w).item();
    double want = 0;
    for (int j = 0; j < 3; ++j) want += softplus_ref(x.get({0, j})) - x.get({0, j}) * t.get({0, j});
    CHECK(a == doctest::Approx(want / 3).epsilon(1e-12));
    Var p = param(x);
    Var z = bce_with_logits(p, t, zeros({2, 3}, kFloat64));
    CHECK(z.item() == 0.0);
    z.backward();
    CHECK(max(abs(p.grad())).item() == 0.0);
  }

  TEST_CASE("bce_with_logits: stable at |x| = 1e4") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      Var x = param(from_vector(std::vector<double>{1e4, -1e4, 1e4, -1e4}, {4}, dt));
      Var loss = bce_with_logits(x, from_vector(std::vector<double>{1, 0, 0, 1}, {4}, dt));
      // Per element: 0, 0, 1e4, 1e4.
      CHECK(loss.item() == doctest::Approx(5000.0).epsilon(1e-7));
      loss.backward();
      CHECK(all_finite(x.grad()));
      CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0, 0.25, -0.25});
    }
  }

  TEST_CASE("softmax_cross_entropy: values / ignore_index / gradient") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      const std::vector<double> x = {1, 2, 3, 1, 1, 1, 0.5, -2, 0};
      Var logits = param(from_vector(x, {3, 3}, dt));
      Tensor targets = from_vector(std::vector<int64_t>{2, 0, -100}, {3});
      Var loss = softmax_cross_entropy(logits, targets);
      const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
      const double want = ((lse0 - 3.0) + std::log(3.0)) / 2;  // row 2 ignored
      CHECK(loss.item() == doctest::Approx(want).epsilon(1e-6));
      loss.backward();
      const Tensor g = logits.grad();
      for (int j = 0; j < 3; ++j) {
        const double p0 = std::exp(x[j] - lse0);
        CHECK(g.get({0, j}) == doctest::Approx((p0 - (j == 2)) / 2).epsilon(1e-6));
        CHECK(g.get({1, j}) == doctest::Approx((1.0 / 3 - (j == 0)) / 2).epsilon(1e-6));
        CHECK(g.get({2, j}) == 0.0);
      }
    }
  }

  TEST_CASE("softmax_cross_entropy: all rows ignored gives 0 and a zero gradient") {
    Var logits = param(rnd({2, 4}, 3));
    Var loss = softmax_cross_entropy(logits, from_vector(std::vector<int64_t>{-1, -1}, {2}), -1);
    CHECK(loss.item() == 0.0);
    loss.backward();
    CHECK(max(abs(logits.grad())).item() == 0.0);
    // No rows at all.
    Var empty = param(zeros({0, 3}, kFloat64));
    CHECK(softmax_cross_entropy(empty, zeros({0}, kInt64)).item() == 0.0);
  }

  TEST_CASE("softmax_cross_entropy: stable at |x| = 1e4") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      Var logits = param(from_vector(std::vector<double>{1e4, 0, -1e4, -1e4, 1e4, 0}, {2, 3}, dt));
      Var loss = softmax_cross_entropy(logits, from_vector(std::vector<int64_t>{2, 1}, {2}));
      CHECK(loss.item() == doctest::Approx(1e4).epsilon(1e-7));  // rows: 2e4 and 0
      loss.backward();
      CHECK(all_finite(logits.grad()));
      CHECK(logits.grad().to_vector<double>() == std::vector<double>{0.5, 0, -0.5, 0, 0, 0});
    }
  }

  TEST_CASE("softmax_cross_entropy: any rank and weighted rows") {
    Tensor x = rnd({2, 3, 4}, 4);
    Tensor t = from_vector(std::vector<int64_t>{0, 3, 1, 2, -100, 1}, {2, 3});
    const double a = softmax_cross_entropy(constant(x), t).item();
    const double b = softmax_cross_entropy(constant(x.reshape({6, 4})), t.reshape({6})).item();
    CHECK(a == b);
    // Weighted: sum(w l) / sum(w) over non-ignored rows.
    Tensor w = from_vector(std::vector<double>{1, 2, 0, 1, 5, 1}, {2, 3}, kFloat64);
    double num = 0, den = 0;
    for (int r = 0; r < 6; ++r) {
      const int64_t tr = t.flat(r) < 0 ? -1 : static_cast<int64_t>(t.flat(r));
      if (tr < 0 || w.flat(r) == 0)
        continue;
      double s = 0;
      for (int j = 0; j < 4; ++j) s += std::exp(x.flat(r * 4 + j));
      num += w.flat(r) * (std::log(s) - x.flat(r * 4 + tr));
      den += w.flat(r);
    }
    CHECK(weighted_softmax_cross_entropy(constant(x), t, w).item() ==
          doctest::Approx(num / den).epsilon(1e-12));
  }

  TEST_CASE("softmax_cross_entropy: errors name the problem") {
    Var logits = constant(zeros({3, 4}, kFloat64));
    CHECK_THROWS_WITH_AS(
        softmax_cross_entropy(logits, from_vector(std::vector<int64_t>{0, 5, 1}, {3})),
        doctest::Contains("target 5 at (flattened) row 1 is out of range [0, 4)"),
        ValueError);
    CHECK_THROWS_WITH_AS(softmax_cross_entropy(logits, zeros({3}, kFloat64)),
                         doctest::Contains("targets must be int64"),
                         DTypeError);
    CHECK_THROWS_WITH_AS(softmax_cross_entropy(logits, zeros({4}, kInt64)),
                         doctest::Contains("targets [4] must be the logits' leading shape [3]"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(
        weighted_softmax_cross_entropy(logits, zeros({3}, kInt64), ones({2}, kFloat64)),
        doctest::Contains("weight [2] does not broadcast to [3]"),
        ShapeError);
  }

  TEST_CASE("bce_with_logits and masked_mean: errors name the problem") {
    Var x = constant(zeros({2, 3}));
    CHECK_THROWS_WITH_AS(bce_with_logits(x, zeros({3, 2})),
                         doctest::Contains("targets [3, 2] must have the logits' shape [2, 3]"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(bce_with_logits(x, zeros({2, 3}, kInt64)),
                         doctest::Contains("bce_with_logits: targets must be float32 or float64"),
                         DTypeError);
    CHECK_THROWS_WITH_AS(bce_with_logits(x, zeros({2, 3}), ones({3, 1})),
                         doctest::Contains("weight [3, 1] does not broadcast to [2, 3]"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(masked_mean(x, ones({4})),
                         doctest::Contains("masked_mean: mask [4] does not broadcast to [2, 3]"),
                         ShapeError);
    CHECK_THROWS_AS(masked_mean(constant(zeros({2}, kInt64)), ones({2})), DTypeError);
    // float32 side inputs are converted for float64 logits (they are constants).
    CHECK(bce_with_logits(constant(zeros({2}, kFloat64)), full({2}, 0.5)).item() ==
          doctest::Approx(std::log(2.0)));
  }

  TEST_CASE("masked_mean: values / broadcast mask / zero mask") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      Var v = param(from_vector(std::vector<double>{1, 2, 3, INFINITY}, {2, 2}, dt));
      Var m = masked_mean(v, from_vector(std::vector<double>{1, 1, 1, 0}, {2, 2}, dt));
      CHECK(m.item() == 2.0);
      m.backward();
      for (int i = 0; i < 3; ++i) CHECK(v.grad().flat(i) == doctest::Approx(1.0 / 3).epsilon(1e-7));
      CHECK(v.grad().flat(3) == 0.0);
      Var v2 = param(from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}, dt));
      CHECK(masked_mean(v2, from_vector(std::vector<double>{0, 1}, {2}, dt)).item() == 3.0);
      Var z = masked_mean(v2, zeros({2, 2}, dt));
      CHECK(z.item() == 0.0);
      z.backward();
      CHECK(max(abs(v2.grad())).item() == 0.0);
    }
  }

  TEST_CASE("sampled_softmax_loss: values against a plain loop") {
    const int64_t n = 3, d = 4, v = 6, k = 2;
    Tensor h = rnd({n, d}, 5), table = rnd({v, d}, 6);
    Tensor pos = from_vector(std::vector<int64_t>{1, 4, 0}, {n});
    Tensor neg = from_vector(std::vector<int64_t>{2, 3, 5, 1, 4, 4}, {n, k});
    Tensor w = from_vector(std::vector<double>{1, 0, 2}, {n}, kFloat64);
    auto dot = [&](int64_t r, int64_t item) {
      double s = 0;
      for (int64_t j = 0; j < d; ++j) s += h.get({r, j}) * table.get({item, j});
      return s;
    };
    double plain = 0, weighted = 0;
    for (int64_t r = 0; r < n; ++r) {
      const double lp = dot(r, static_cast<int64_t>(pos.flat(r)));
      double s = std::exp(lp);
      for (int64_t j = 0; j < k; ++j) s += std::exp(dot(r, static_cast<int64_t>(neg.get({r, j}))));
      plain += std::log(s) - lp;
      weighted += w.flat(r) * (std::log(s) - lp);
    }
    CHECK(sampled_softmax_loss(constant(h), constant(table), pos, neg).item() ==
          doctest::Approx(plain / n).epsilon(1e-12));
    CHECK(sampled_softmax_loss(constant(h), constant(table), pos, neg, w).item() ==
          doctest::Approx(weighted / 3).epsilon(1e-12));
    CHECK_THROWS_WITH_AS(
        sampled_softmax_loss(constant(h), constant(table), pos, add(neg.to(kFloat64), 0.0)),
        doctest::Contains("must be int64"),
        DTypeError);
    Tensor bad = neg.clone();
    bad.set({2, 1}, 6);
    CHECK_THROWS_WITH_AS(sampled_softmax_loss(constant(h), constant(table), pos, bad),
                         doctest::Contains("negative id 6 at row 2 is out of range [0, 6)"),
                         ValueError);
    CHECK_THROWS_AS(sampled_softmax_loss(constant(h), constant(rnd({v, d + 1}, 7)), pos, neg),
                    ShapeError);
  }

  TEST_CASE("cross-entropy and bce do not depend on the thread count") {
    Tensor x = rnd({3000, 7}, 15, -3, 3);
    Tensor t = randint({3000}, 0, 7, RngKey{16, 0});
    Tensor b = rnd({3000, 7}, 17, 0, 1);
    auto run = [&](int threads) {
      testing::ThreadCountGuard guard(threads);
      Var p = param(x);
      Var loss = softmax_cross_entropy(p, t) + bce_with_logits(p, b);
      loss.backward();
      return std::make_pair(loss.value(), p.grad());
    };
    const auto one = run(1), two = run(2);
    CHECK(testing::bitwise_equal(one.first, two.first));
    CHECK(testing::bitwise_equal(one.second, two.second));
  }

  TEST_CASE("gradcheck of every loss in float64") {
    Tensor x = rnd({3, 4}, 8, -2, 2), t01 = rnd({3, 4}, 9, 0, 1);
    Tensor w = from_vector(std::vector<double>{1, 0, 2, 0.5}, {1, 4}, kFloat64);
    check_gradcheck([&](const std::vector<Var>& v) { return bce_with_logits(v[0], t01); }, {x});
    check_gradcheck([&](const std::vector<Var>& v) { return bce_with_logits(v[0], t01, w); }, {x});
    Tensor ce_t = from_vector(std::vector<int64_t>{3, -100, 0}, {3});
    check_gradcheck([&](const std::vector<Var>& v) { return softmax_cross_entropy(v[0], ce_t); },
                    {x});
    Tensor rw = from_vector(std::vector<double>{0.5, 1, 2}, {3}, kFloat64);
    check_gradcheck(
        [&](const std::vector<Var>& v) { return weighted_softmax_cross_entropy(v[0], ce_t, rw); },
        {x});
    Tensor x3 = rnd({2, 2, 3}, 10);
    Tensor t3 = from_vector(std::vector<int64_t>{2, 0, 1, 1}, {2, 2});
    check_gradcheck([&](const std::vector<Var>& v) { return softmax_cross_entropy(v[0], t3); },
                    {x3});
    Tensor pos = from_vector(std::vector<int64_t>{1, 4, 0}, {3});
    Tensor neg = from_vector(std::vector<int64_t>{2, 3, 5, 1, 4, 1}, {3, 2});
    Tensor sw = from_vector(std::vector<double>{1, 0, 2}, {3}, kFloat64);
    check_gradcheck(
        [&](const std::vector<Var>& v) { return sampled_softmax_loss(v[0], v[1], pos, neg); },
        {rnd({3, 4}, 11), rnd({6, 4}, 12)});
    check_gradcheck(
        [&](const std::vector<Var>& v) { return sampled_softmax_loss(v[0], v[1], pos, neg, sw); },
        {rnd({3, 4}, 13), rnd({6, 4}, 14)});
    Tensor mask = from_vector(std::vector<double>{1, 0, 1, 1}, {4}, kFloat64);
    check_gradcheck([&](const std::vector<Var>& v) { return masked_mean(v[0], mask); }, {x});
    check_gradcheck(
        [&](const std::vector<Var>& v) {
          return masked_mean(v[0], zeros({3, 4}, kFloat64));
        },
        {x});
    check_gradcheck([&](const std::vector<Var>& v) { return mse_loss(v[0], t01); }, {x});
  }
}
