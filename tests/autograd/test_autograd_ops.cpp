// Every differentiable op gradchecked in float64 (slow mode: the full Jacobian) on small random
// shapes, broadcasting included. Inputs avoid kinks (|x| >= 0.1 for relu/abs/clamp, distinct
// values for max/min) so that finite differences are meaningful.
#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 11}, kFloat64, lo, hi);
}
// Values in [0.1, 1] with random signs: away from the kink at 0.
Tensor away_from_zero(const Shape& s, uint64_t seed) {
  Tensor mag = rnd(s, seed, 0.1, 1.0);
  Tensor sgn = sub(mul(gt(rnd(s, seed + 1000), 0.0), 2.0), 1.0);
  return mul(mag, sgn);
}

struct OpCase {
  std::string name;
  std::function<Var(const std::vector<Var>&)> f;
  std::vector<Tensor> inputs;
};

void check(const OpCase& c) {
  CAPTURE(c.name);
  const GradcheckResult r = gradcheck(c.f, c.inputs);
  CHECK_MESSAGE(r.ok, c.name << "\n" << r.report());
}

}  // namespace

TEST_SUITE("autograd.ops") {
  TEST_CASE("arithmetic with broadcasting") {
    const std::vector<std::pair<Shape, Shape>> shapes = {{{3}, {3}},
                                                         {{2, 3}, {3}},
                                                         {{2, 1}, {1, 4}},
                                                         {{2, 3, 1}, {}},
                                                         {{}, {2, 2}},
                                                         {{1, 3}, {2, 1}}};
    uint64_t seed = 1;
    for (const auto& [sa, sb] : shapes) {
      CAPTURE(sa);
      CAPTURE(sb);
      Tensor a = rnd(sa, seed++), b = rnd(sb, seed++, 0.5, 2.0), pos = rnd(sa, seed++, 0.5, 2.0);
      check({"add", [](auto& v) { return add(v[0], v[1]); }, {a, b}});
      check({"sub", [](auto& v) { return sub(v[0], v[1]); }, {a, b}});
      check({"mul", [](auto& v) { return mul(v[0], v[1]); }, {a, b}});
      check({"div", [](auto& v) { return div(v[0], v[1]); }, {a, b}});
      check({"pow", [](auto& v) { return pow(v[0], v[1]); }, {pos, b}});
      check({"maximum", [](auto& v) { return maximum(v[0], v[1]); }, {a, b}});
      check({"minimum", [](auto& v) { return minimum(v[0], v[1]); }, {a, b}});
    }
    Tensor x = rnd({2, 3}, 99, 0.5, 2.0);
    check({"add_scalar", [](auto& v) { return v[0] + 2.5; }, {x}});
    check({"sub_scalar", [](auto& v) { return v[0] - 2.5; }, {x}});
    check({"rsub_scalar", [](auto& v) { return 2.5 - v[0]; }, {x}});
    check({"mul_scalar", [](auto& v) { return v[0] * -1.5; }, {x}});
    check({"div_scalar", [](auto& v) { return v[0] / 4.0; }, {x}});
    check({"rdiv_scalar", [](auto& v) { return 3.0 / v[0]; }, {x}});
    check({"pow_scalar", [](auto& v) { return pow(v[0], 2.7); }, {x}});
    check({"neg", [](auto& v) { return -v[0]; }, {x}});
  }

  TEST_CASE("ties in maximum split the gradient") {
    Var a = param(tensor({1, 2}, kFloat64)), b = param(tensor({1, 3}, kFloat64));
    sum(maximum(a, b)).backward();
    CHECK(a.grad().to_vector<double>() == std::vector<double>{0.5, 0});
    CHECK(b.grad().to_vector<double>() == std::vector<double>{0.5, 1});
  }

  TEST_CASE("unary math") {
    Tensor x = rnd({2, 5}, 7), pos = rnd({2, 5}, 8, 0.2, 3.0), k = away_from_zero({2, 5}, 9);
    check({"exp", [](auto& v) { return exp(v[0]); }, {x}});
    check({"log", [](auto& v) { return log(v[0]); }, {pos}});
    check({"log1p", [](auto& v) { return log1p(v[0]); }, {pos}});
    check({"expm1", [](auto& v) { return expm1(v[0]); }, {x}});
    check({"sqrt", [](auto& v) { return sqrt(v[0]); }, {pos}});
    check({"rsqrt", [](auto& v) { return rsqrt(v[0]); }, {pos}});
    check({"square", [](auto& v) { return square(v[0]); }, {x}});
    check({"reciprocal", [](auto& v) { return reciprocal(v[0]); }, {pos}});
    check({"abs", [](auto& v) { return abs(v[0]); }, {k}});
    check({"tanh", [](auto& v) { return tanh(v[0]); }, {x}});
    check({"sigmoid", [](auto& v) { return sigmoid(v[0]); }, {x}});
    check({"relu", [](auto& v) { return relu(v[0]); }, {k}});
    check({"elu", [](auto& v) { return elu(v[0], 0.8); }, {k}});
    check({"softplus", [](auto& v) { return softplus(v[0]); }, {x}});
    check({"sin", [](auto& v) { return sin(v[0]); }, {x}});
    check({"cos", [](auto& v) { return cos(v[0]); }, {x}});
    check({"clamp", [](auto& v) { return clamp(v[0], -0.05, 0.05); }, {k}});
  }

  TEST_CASE("selection and masking") {
    Tensor a = rnd({2, 3}, 21), b = rnd({3}, 22);
    Tensor cond = from_vector(std::vector<double>{1, 0, 1, 0, 0, 1}, {2, 3}, kFloat64);
    check({"where", [cond](auto& v) { return where(cond, v[0], v[1]); }, {a, b}});
    Tensor mask = from_vector(std::vector<double>{0, 1, 0}, {3}, kFloat64);
    check({"masked_fill", [mask](auto& v) { return masked_fill(v[0], mask, -1e9); }, {a}});
    // The round trip quantises to float32, so the step must exceed float32's resolution (1e-2 keeps
    // the rounding error of the difference quotient near 1e-6 relative).
    GradcheckOptions coarse;
    coarse.eps = 1e-2;
    const auto r =
        gradcheck([](auto& v) { return cast(cast(v[0], kFloat32), kFloat64); }, {a}, coarse);
    CHECK_MESSAGE(r.ok, r.report());
  }

  TEST_CASE("reductions") {
    // Uniform random values are distinct, with gaps far above eps, so max/min have a unique winner.
    Tensor x = rnd({2, 3, 4}, 31), d = rnd({2, 3, 4}, 32);
    for (int axis : {0, 1, 2, -1}) {
      CAPTURE(axis);
      check({"sum_axis", [axis](auto& v) { return sum(v[0], axis); }, {x}});
      check({"sum_axis_keep", [axis](auto& v) { return sum(v[0], axis, true); }, {x}});
      check({"mean_axis", [axis](auto& v) { return mean(v[0], axis); }, {x}});
      check({"max_axis", [axis](auto& v) { return max(v[0], axis); }, {d}});
      check({"min_axis", [axis](auto& v) { return min(v[0], axis, true); }, {d}});
      check({"logsumexp", [axis](auto& v) { return logsumexp(v[0], axis); }, {x}});
      check({"norm", [axis](auto& v) { return norm(v[0], axis); }, {x}});
    }
    check({"sum_all", [](auto& v) { return sum(v[0]); }, {x}});
    check({"mean_all", [](auto& v) { return mean(v[0]); }, {x}});
    check({"sum_axes", [](auto& v) { return sum(v[0], std::vector<int>{0, 2}); }, {x}});
    check({"mean_axes", [](auto& v) { return mean(v[0], std::vector<int>{2, 1}, true); }, {x}});
    check({"broadcast_to",
           [](auto& v) {
             return broadcast_to(v[0], {2, 3, 3});
           },
           {rnd({3, 1}, 33)}});
    check({"sum_to_shape", [](auto& v) { return sum_to_shape(v[0], {3, 1}); }, {x}});
  }

  TEST_CASE("max ties split the gradient equally") {
    Var x = param(tensor({2, 7, 7, 1}, kFloat64));
    max(x, 0).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0.5, 0.5, 0});
  }

  TEST_CASE("matmul with transposes and batch broadcasting") {
    uint64_t seed = 40;
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        CAPTURE(ta);
        CAPTURE(tb);
        Tensor a = rnd(ta ? Shape{2, 4, 3} : Shape{2, 3, 4}, seed++);
        Tensor b = rnd(tb ? Shape{5, 4} : Shape{4, 5}, seed++);
        check({"matmul", [ta, tb](auto& v) { return matmul(v[0], v[1], ta, tb); }, {a, b}});
        Tensor c = rnd(ta ? Shape{1, 4, 3} : Shape{1, 3, 4}, seed++);
        Tensor e = rnd(tb ? Shape{2, 5, 4} : Shape{2, 4, 5}, seed++);
        check({"bmm_broadcast", [ta, tb](auto& v) { return matmul(v[0], v[1], ta, tb); }, {c, e}});
      }
    }
  }

  TEST_CASE("linear: gradcheck - and the values and gradients of matmul + add") {
    check({"linear",
           [](auto& v) { return linear(v[0], v[1], v[2]); },
           {rnd({7, 5}, 60), rnd({3, 5}, 61), rnd({3}, 62)}});
    // Bit for bit the composed form (k = in <= the GEMM's k slice), in both dtypes, with rows
    // enough for several threads and tiles.
    for (DType dt : {kFloat32, kFloat64}) {
      const Tensor x0 = rand({300, 50}, RngKey{63, 1}, dt, -1, 1);
      const Tensor w0 = rand({40, 50}, RngKey{63, 2}, dt, -1, 1);
      const Tensor b0 = rand({40}, RngKey{63, 3}, dt, -1, 1);
      const Tensor g = rand({300, 40}, RngKey{63, 4}, dt, -1, 1);
      Var x1 = param(x0), w1 = param(w0), b1 = param(b0);
      Var x2 = param(x0), w2 = param(w0), b2 = param(b0);
      Var fused = linear(x1, w1, b1), composed = matmul(x2, w2, false, true) + b2;
      CHECK_CLOSE(fused.value(), composed.value(), 0, 0);
      fused.backward(g);
      composed.backward(g);
      CHECK_CLOSE(x1.grad(), x2.grad(), 0, 0);
      CHECK_CLOSE(w1.grad(), w2.grad(), 0, 0);
      CHECK_CLOSE(b1.grad(), b2.grad(), 0, 0);
    }
    CHECK_THROWS_WITH_AS(linear(param(rnd({2, 3}, 1)), param(rnd({4, 5}, 2)), param(rnd({4}, 3))),
                         doctest::Contains("linear: need x [rows, in]"),
                         ShapeError);
    CHECK_THROWS_AS(
        linear(param(rnd({2, 3}, 1)), param(rnd({4, 3}, 2)), param(ones({4}, kFloat32))),
        DTypeError);
  }

  TEST_CASE("layer_norm: the affine part rounds like mul then add - dx like dy * w") {
    for (DType dt : {kFloat32, kFloat64}) {
      const Tensor x0 = rand({37, 50}, RngKey{64, 1}, dt, -3, 3);
      const Tensor w0 = rand({50}, RngKey{64, 2}, dt, -2, 2);
      const Tensor b0 = rand({50}, RngKey{64, 3}, dt, -1, 1);
      const Tensor g = rand({37, 50}, RngKey{64, 4}, dt, -1, 1);
      Var x1 = param(x0), w1 = param(w0), b1 = param(b0), x2 = param(x0);
      Var y1 = layer_norm(x1, w1, b1, 1e-5);
      Var xhat = layer_norm(x2, Var(), Var(), 1e-5);
      CHECK_CLOSE(y1.value(), attnlab::add(attnlab::mul(xhat.value(), w0), b0), 0, 0);
      y1.backward(g);
      xhat.backward(attnlab::mul(g, w0));
      CHECK_CLOSE(x1.grad(), x2.grad(), 0, 0);
      CHECK_CLOSE(w1.grad(), attnlab::sum(attnlab::mul(g, xhat.value()), 0), 0, 0);
      CHECK_CLOSE(b1.grad(), attnlab::sum(g, 0), 0, 0);
    }
  }

  // Batch invariance: a row's result must not depend on the rows around it or on how the rows
  // are split between threads (a kernel that reduces several rows together, or splits a row's
  // sums, must keep each row's order of operations).
  TEST_CASE("layer_norm: each row's values and dx are those of the row alone - bit for bit") {
    for (DType dt : {kFloat32, kFloat64}) {
      for (int64_t d : {1, 7, 50, 64}) {
        CAPTURE(d);
        const int64_t rows = 37;
        const Tensor x0 = rand({rows, d}, RngKey{65, 1}, dt, -3, 3);
        const Tensor w0 = rand({d}, RngKey{65, 2}, dt, -2, 2);
        const Tensor b0 = rand({d}, RngKey{65, 3}, dt, -1, 1);
        const Tensor g = rand({rows, d}, RngKey{65, 4}, dt, -1, 1);
        Var x = param(x0);
        Var y = layer_norm(x, constant(w0), constant(b0), 1e-5);
        y.backward(g);
        for (int64_t r = 0; r < rows; ++r) {
          CAPTURE(r);
          Var xr = param(slice(x0, 0, r, r + 1));
          Var yr = layer_norm(xr, constant(w0), constant(b0), 1e-5);
          yr.backward(slice(g, 0, r, r + 1));
          CHECK(testing::bitwise_equal(yr.value(), slice(y.value(), 0, r, r + 1)));
          CHECK(testing::bitwise_equal(xr.grad(), slice(x.grad(), 0, r, r + 1)));
        }
      }
    }
  }

  TEST_CASE("softmax and log_softmax on every axis") {
    Tensor x = rnd({2, 3, 4}, 50, -3, 3);
    for (int axis : {0, 1, -1}) {
      CAPTURE(axis);
      check({"softmax", [axis](auto& v) { return softmax(v[0], axis); }, {x}});
      check({"log_softmax", [axis](auto& v) { return log_softmax(v[0], axis); }, {x}});
    }
  }

  TEST_CASE("layout ops") {
    Tensor x = rnd({2, 3, 4}, 60);
    check({"reshape", [](auto& v) { return reshape(v[0], std::vector<int64_t>{4, -1}); }, {x}});
    check({"flatten", [](auto& v) { return flatten(v[0]); }, {x}});
    check({"permute", [](auto& v) { return permute(v[0], {2, 0, 1}); }, {x}});
    check({"transpose", [](auto& v) { return transpose(v[0], 0, 2); }, {x}});
    check({"slice", [](auto& v) { return slice(v[0], 2, 1, 4, 2); }, {x}});
    check({"slice_negative", [](auto& v) { return slice(v[0], 1, -2, 100); }, {x}});
    check({"concat",
           [](auto& v) {
             return concat({v[0], v[1], v[0]}, 1);
           },
           {x, rnd({2, 1, 4}, 61)}});
    check({"stack",
           [](auto& v) {
             return stack({v[0], v[1]}, -1);
           },
           {rnd({2, 3}, 62), rnd({2, 3}, 63)}});
    check({"pad", [](auto& v) { return pad(v[0], {{1, 0}, {0, 2}, {1, 1}}, 0.5); }, {x}});
    check({"unsqueeze", [](auto& v) { return unsqueeze(v[0], 1); }, {x}});
    check({"squeeze", [](auto& v) { return squeeze(v[0], 1); }, {rnd({2, 1, 3}, 64)}});
  }

  TEST_CASE("indexing and scans") {
    Tensor table = rnd({5, 3}, 70);
    Tensor ids = from_vector(std::vector<int64_t>{4, 0, 4, 2, 2, 2}, {2, 3});
    check({"embedding", [ids](auto& v) { return embedding(v[0], ids); }, {table}});
    check({"index_select",
           [ids](auto& v) { return index_select(v[0], 1, ids); },
           {rnd({2, 5, 2}, 71)}});
    Tensor gidx = from_vector(std::vector<int64_t>{2, 0, 1, 1}, {2, 2});
    check({"gather", [gidx](auto& v) { return gather(v[0], 1, gidx); }, {rnd({2, 3}, 72)}});
    Tensor x = rnd({2, 6, 3}, 73);
    for (bool reverse : {false, true}) {
      CAPTURE(reverse);
      check({"cumsum", [reverse](auto& v) { return cumsum(v[0], 1, reverse); }, {x}});
      check({"decayed_scan",
             [reverse](auto& v) { return decayed_scan(v[0], 1, 0.7, reverse); },
             {x}});
    }
  }

  TEST_CASE("straight_through: forward of hard / gradient of soft") {
    Tensor logits = rnd({3, 4}, 80, -2, 2);
    auto hard = [](const std::vector<Var>& v) {
      return std::vector<Var>{one_hot(argmax(v[0], -1), 4, kFloat64)};
    };
    auto soft = [](const std::vector<Var>& v) {
      return std::vector<Var>{softmax(v[0], -1)};
    };
    auto st = [&](const std::vector<Var>& v) {
      return std::vector<Var>{straight_through(hard(v)[0], soft(v)[0])};
    };
    const GradcheckResult r = check_straight_through(st, hard, soft, {logits});
    CHECK_MESSAGE(r.ok, r.report());
    // A wrong surrogate is caught.
    auto wrong = [](const std::vector<Var>& v) {
      return std::vector<Var>{sigmoid(v[0])};
    };
    CHECK_FALSE(check_straight_through(st, hard, wrong, {logits}).ok);
  }

  TEST_CASE("check_straight_through compares the gradients of captured parameters too") {
    // st(x) = ST(one_hot(argmax(x w)), softmax(x w)) with a captured leaf w: its gradient must
    // equal the surrogate's. A surrogate right in x but wrong in w is caught only through w.
    const Var w = param(tensor({0.5, -1.0, 2.0, 1.5}, kFloat64));
    auto hard = [&](const std::vector<Var>& v) {
      return std::vector<Var>{one_hot(argmax(v[0] * w, -1), 4, kFloat64)};
    };
    auto soft = [&](const std::vector<Var>& v) {
      return std::vector<Var>{softmax(v[0] * w, -1)};
    };
    auto st = [&](const std::vector<Var>& v) {
      return std::vector<Var>{straight_through(hard(v)[0], soft(v)[0])};
    };
    const Tensor x = rnd({3, 4}, 81, -2, 2);
    const GradcheckResult r = check_straight_through(st, hard, soft, {x}, 0, {w});
    CHECK_MESSAGE(r.ok, r.report());
    auto wrong_in_w = [&](const std::vector<Var>& v) {
      return std::vector<Var>{softmax(v[0] * w.detach(), -1) + sum(w) * 0.25};
    };
    const GradcheckResult bad = check_straight_through(st, hard, wrong_in_w, {x}, 0, {w});
    CHECK_FALSE(bad.ok);
    REQUIRE_FALSE(bad.worst.empty());
    CHECK(bad.worst[0].input == 1);  // the parameter, numbered after the one input
  }
}
