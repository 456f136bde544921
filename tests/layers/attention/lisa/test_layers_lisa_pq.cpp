// LISA's product quantizer and codeword selection: modes, ties, straight-through checks,
// gradchecks with fixed Gumbel noise, sampling statistics, temperature schedule, usage, errors.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/lisa/product_quantizer.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 21}, dt, lo, hi);
}

ProductQuantizerOptions small_options(bool residual, Selection train) {
  ProductQuantizerOptions o;
  o.dim = 6;
  o.codebooks = 3;
  o.codewords = 4;
  o.residual = residual;
  o.train_selection = train;
  o.temperature.start = 0.7;
  return o;
}

}  // namespace

TEST_SUITE("layers.lisa_pq") {
  TEST_CASE(
      "selection modes - soft is the softmax and hard modes the one-hot of the lowest argmax") {
    const Tensor logits =
        from_vector(std::vector<double>{1, 3, 3, 0, -1, 2, 0.5, 2}, {2, 4}, kFloat64);
    const Tensor p = softmax(mul(logits, 1 / 0.5), -1);
    CodewordSelection soft = select_codewords(param(logits), Selection::Soft, 0.5);
    CHECK_CLOSE(soft.selection.value(), p, 1e-15, 0);
    for (Selection m : {Selection::StraightThrough, Selection::Hard}) {
      CodewordSelection s = select_codewords(param(logits), m, 0.5);
      // Ties (3, 3) and (2, 2): the lowest index wins, a one-hot row, never multi-hot.
      CHECK(s.index.to_vector<int64_t>() == std::vector<int64_t>{1, 1});
      CHECK_CLOSE(s.selection.value(), one_hot(s.index, 4, kFloat64), 0, 0);
      CHECK_CLOSE(s.probs, p, 1e-15, 0);
    }
    CHECK_FALSE(select_codewords(param(logits), Selection::Hard, 0.5).selection.requires_grad());
    CHECK(
        select_codewords(param(logits), Selection::StraightThrough, 0.5).selection.requires_grad());
  }

  TEST_CASE("soft and Gumbel-soft selections pass gradcheck in float64 with fixed noise") {
    const Tensor noise = gumbel({3, 5}, RngKey{1, 2}, kFloat64);
    for (double tau : {0.3, 1.0}) {
      for (int with_noise = 0; with_noise < 2; ++with_noise) {
        CAPTURE(tau);
        auto f = [&](const std::vector<Var>& in) {
          return select_codewords(in[0],
                                  with_noise ? Selection::GumbelSoft : Selection::Soft,
                                  tau,
                                  with_noise ? noise : Tensor())
              .selection;
        };
        const auto r = gradcheck(f, {rnd({3, 5}, 30, kFloat64, -2, 2)});
        CHECK_MESSAGE(r.ok, r.report());
      }
    }
  }

  TEST_CASE("straight-through and Gumbel straight-through - forward one-hot and softmax gradient") {
    // Hand-chosen logits and noise whose (noisy) argmax is written down below, independently of
    // the code's softmax -> argmax pipeline. Rows 2 and 3 hold exact ties (sums exact in binary):
    // the lowest index wins (product_quantizer.hpp), never a multi-hot row.
    const Tensor logits = from_vector(std::vector<double>{0.1, 2.0,  -1, 0.5,  1.9,  0,     //
                                                          -3,  -2,   -1, -0.5, -0.4, -2,    //
                                                          0,   1.5,  -1, 1.5,  1.5,  0,     //
                                                          -1,  0.75, 0,  0.75, 0.75, 0.5},  //
                                      {4, 6},
                                      kFloat64);
    const Tensor noise = from_vector(std::vector<double>{0,    0,    0,    0,    0.25, 0,     //
                                                         0,    0,    0,    -0.5, 0,    0,     //
                                                         0.25, 0,    1.75, 0,    0.25, 0,     //
                                                         0,    -0.5, 0.5,  0.25, 0,    0.5},  //
                                     {4, 6},
                                     kFloat64);
    // Without noise: row 0 -> 1, row 1 -> 4, row 2 ties 1, 3, 4 -> 1, row 3 ties 1, 3, 4 -> 1.
    // With noise (logits + noise): row 0 {.., 2.0, .., 2.15, ..} -> 4; row 1 -> 4 (-0.4 > -1);
    // row 2 {0.25, 1.5, 0.75, 1.5, 1.75, 0} -> 4; row 3 {-1, 0.25, 0.5, 1.0, 0.75, 1.0} ties 3, 5
    // -> 3.
    const std::vector<int64_t> expected_plain = {1, 4, 1, 1}, expected_noisy = {4, 4, 4, 3};
    const double tau = 0.7;
    for (int with_noise = 0; with_noise < 2; ++with_noise) {
      CAPTURE(with_noise);
      const Tensor g = with_noise ? noise : zeros({4, 6}, kFloat64);
      const std::vector<int64_t>& want = with_noise ? expected_noisy : expected_plain;
      Tensor expected = zeros({4, 6}, kFloat64);
      for (int64_t r = 0; r < 4; ++r) expected.data<double>()[r * 6 + want[r]] = 1.0;
      const Selection mode =
          with_noise ? Selection::GumbelStraightThrough : Selection::StraightThrough;
      const CodewordSelection s = select_codewords(param(logits), mode, tau, g);
      CHECK(s.index.to_vector<int64_t>() == want);
      CHECK_CLOSE(s.selection.value(), expected, 0, 0);
      auto st = [&](const std::vector<Var>& in) {
        return std::vector<Var>{select_codewords(in[0], mode, tau, g).selection};
      };
      auto hard = [&](const std::vector<Var>&) {
        return std::vector<Var>{constant(expected)};
      };
      auto surrogate = [&](const std::vector<Var>& in) {
        return std::vector<Var>{ag::softmax((in[0] + constant(g)) / tau, -1)};
      };
      const auto r = check_straight_through(st, hard, surrogate, {logits});
      CHECK_MESSAGE(r.ok, r.report());
    }
  }

  TEST_CASE("sampled Gumbel selections follow the softmax probabilities") {
    // Gumbel-max: argmax(logits + G) ~ softmax(logits), whatever the temperature.
    const int64_t n = 40000, w = 5;
    const std::vector<double> lv{0.5, -1.0, 1.5, 0.0, 1.0};
    Tensor logits = Tensor::empty({n, w}, kFloat32);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < w; ++c) logits.data<float>()[i * w + c] = static_cast<float>(lv[c]);
    const Tensor p = softmax(from_vector(lv, {w}, kFloat64), -1);
    Generator rng(17);
    for (Selection m : {Selection::GumbelSoft, Selection::GumbelStraightThrough}) {
      CodewordSelection s = select_codewords(constant(logits), m, 0.5, {}, &rng);
      std::vector<double> freq(w, 0);
      for (int64_t v : s.index.to_vector<int64_t>()) freq[v] += 1.0 / n;
      for (int64_t c = 0; c < w; ++c) {
        const double pc = p.get({c});
        // 5 standard errors: a false alarm has probability ~6e-7 per class.
        CHECK(std::fabs(freq[c] - pc) < 5 * std::sqrt(pc * (1 - pc) / n));
      }
    }
  }

  TEST_CASE("temperature schedule - constant linear exponential") {
    TemperatureSchedule s{TemperatureSchedule::Kind::Constant, 0.7, 0.1, 10};
    CHECK(s.at(0) == 0.7);
    CHECK(s.at(100) == 0.7);
    s.kind = TemperatureSchedule::Kind::Linear;
    s.start = 1.0;
    s.end = 0.5;
    CHECK(s.at(0) == doctest::Approx(1.0));
    CHECK(s.at(5) == doctest::Approx(0.75));
    CHECK(s.at(50) == doctest::Approx(0.5));
    s.kind = TemperatureSchedule::Kind::Exponential;
    CHECK(s.at(5) == doctest::Approx(std::sqrt(0.5)));
    CHECK(s.at(10) == doctest::Approx(0.5));
  }

  TEST_CASE("residual and non-residual encoding pick the codes of their definitions") {
    for (int residual = 0; residual < 2; ++residual) {
      CAPTURE(residual);
      Generator init(9);
      ProductQuantizer pq(small_options(residual, Selection::StraightThrough),
                          init,
                          std::make_shared<Generator>(1));
      pq.to(kFloat64);
      pq.eval();
      const Tensor x = rnd({5, 6}, 40, kFloat64, -3, 3);
      QuantizedItems out = pq.forward(constant(x));
      const Tensor c = pq.codebooks.value(), m = pq.bilinear.value();
      Tensor r = x.clone(), recon = zeros({5, 6}, kFloat64);
      for (int64_t b = 0; b < 3; ++b) {
        const Tensor cb = slice(c, 0, b, b + 1).reshape({4, 6});
        const Tensor logits = matmul(matmul(residual ? r : x, m), cb, false, true);
        const Tensor code = argmax(logits, -1);
        CHECK(code.to_vector<int64_t>() ==
              slice(out.codes, 1, b, b + 1).reshape({5}).to_vector<int64_t>());
        const Tensor q = index_select(cb, 0, code);
        recon = recon + q;
        r = r - q;
      }
      CHECK_CLOSE(out.reconstruction.value(), recon, 1e-14, 1e-14);
      CHECK_CLOSE(out.selection.value(), one_hot(out.codes, 4, kFloat64), 0, 0);
      CHECK(out.logits.shape() == Shape({5, 3, 4}));
    }
  }

  TEST_CASE(
      "the quantizer passes gradcheck in float64 with soft and fixed-noise Gumbel-soft codes") {
    for (int residual = 0; residual < 2; ++residual) {
      for (Selection mode : {Selection::Soft, Selection::GumbelSoft}) {
        CAPTURE(residual);
        Generator init(11);
        ProductQuantizer pq(small_options(residual, mode), init, nullptr);
        pq.to(kFloat64);
        const Tensor noise = gumbel({2, 3, 3, 4}, RngKey{5, 6}, kFloat64);
        auto f = [&](const std::vector<Var>& in) {
          QuantizedItems q = pq.forward(in[0], noise);
          return std::vector<Var>{q.reconstruction, q.selection};
        };
        GradcheckOptions go;
        go.params = pq.parameters();
        const auto r = gradcheck(f, {rnd({2, 3, 6}, 41, kFloat64, -2, 2)}, go);
        CHECK_MESSAGE(r.ok, r.report());
      }
    }
  }

  TEST_CASE("codeword usage - used codewords and entropy per codebook and padding skipped") {
    const Tensor codes = from_vector(std::vector<int64_t>{0, 1, 0, 1, 2, 1, 3, 1, 5, 5}, {5, 2});
    Tensor keep = ones({5}, kFloat32);
    keep.set({4}, 0);  // the (5, 5) item is padding and would be out of range
    CodewordUsage u = codeword_usage(codes, 4, keep);
    CHECK(u.items == 4);
    CHECK(u.used == std::vector<int64_t>{3, 1});
    CHECK(u.entropy[0] == doctest::Approx(-(0.5 * std::log(0.5) + 2 * 0.25 * std::log(0.25))));
    CHECK(u.entropy[1] == doctest::Approx(0.0));
    CHECK(u.str().find("used 3") != std::string::npos);
    // The module accumulates over calls (keep == 0 items skipped) until reset.
    Generator init(12);
    ProductQuantizer pq(small_options(true, Selection::StraightThrough), init, nullptr);
    Tensor k2 = ones({2, 3}, kFloat32);
    k2.set({0, 0}, 0);
    pq.forward(constant(rnd({2, 3, 6}, 42, kFloat32)), {}, k2);
    pq.forward(constant(rnd({4, 6}, 43, kFloat32)));
    CHECK(pq.usage().items == 9);
    CHECK(sum(pq.usage().counts).item() == 27);
    pq.reset_usage();
    CHECK(pq.usage().items == 0);
  }

  TEST_CASE("bad inputs give clear errors") {
    const Var x = param(zeros({2, 4}));
    CHECK_THROWS_WITH_AS(
        select_codewords(x, Selection::Soft, 0.0), doctest::Contains("tau"), ValueError);
    CHECK_THROWS_WITH_AS(select_codewords(x, Selection::Soft, 1.0, zeros({2, 5})),
                         doctest::Contains("noise must match logits"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(select_codewords(x, Selection::GumbelSoft, 1.0),
                         doctest::Contains("generator"),
                         ValueError);
    CHECK_THROWS_AS(parse_selection("gumbel"), ValueError);
    CHECK(parse_selection("gumbel-st") == Selection::GumbelStraightThrough);
    Generator init(1);
    ProductQuantizer pq(small_options(true, Selection::Soft), init, nullptr);
    CHECK_THROWS_WITH_AS(
        pq.forward(param(zeros({2, 5}))), doctest::Contains("[..., 6]"), ShapeError);
    CHECK_THROWS_AS(pq.forward(param(zeros({2, 6})), zeros({2, 3})), ShapeError);
    CHECK_THROWS_AS(codeword_usage(zeros({2, 3}), 4), DTypeError);
    CHECK_THROWS_AS(codeword_usage(full({2, 3}, 4, kInt64), 4), ValueError);
    ProductQuantizerOptions bad;
    bad.codewords = 0;
    CHECK_THROWS_AS(ProductQuantizer(bad, init, nullptr), ValueError);
  }
}
