// Optimizers against the update rules written out by hand for 3-element parameters, gradient
// clipping, optimizer state dicts and learning-rate schedules.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/nn/basic.hpp"
#include "layers/optim/optim.hpp"
#include "layers/optim/schedule.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::optim;

namespace {

using Vec = std::vector<double>;

// Gives p exactly the gradient g (the backward of sum(p * g) is g).
void set_grad(const Var& p, const Vec& g) {
  p.zero_grad();
  sum(p * constant(from_vector(g, p.shape(), p.dtype()))).backward();
}

void check_values(const Var& p, const Vec& want, DType dt) {
  const double tol = dt == kFloat32 ? 2e-6 : 1e-14;
  const Vec got = p.value().to_vector<double>();
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
  }
}

const Vec kP0 = {1.0, -2.0, 0.5};
const Vec kG1 = {0.1, 0.2, -0.3}, kG2 = {-0.4, 0.05, 0.3}, kG3 = {0.2, -0.1, 0.0};

}  // namespace

TEST_SUITE("layers.optim") {
  TEST_CASE("SGD: plain and weight decay") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      Var p = param(from_vector(kP0, {3}, dt));
      SGD sgd({p}, 0.1);
      set_grad(p, kG1);
      sgd.step();
      // p - lr g = [1 - 0.01, -2 - 0.02, 0.5 + 0.03]
      check_values(p, {0.99, -2.02, 0.53}, dt);
      CHECK(sgd.steps() == 1);

      Var q = param(from_vector(kP0, {3}, dt));
      SGD wd({q}, 0.1, 0, false, 0.01);
      set_grad(q, kG1);
      wd.step();
      // d = g + 0.01 p = [0.11, 0.18, -0.295];  p - 0.1 d
      check_values(q, {1 - 0.011, -2 - 0.018, 0.5 + 0.0295}, dt);
    }
  }

  TEST_CASE("SGD: momentum and Nesterov over three steps") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      for (bool nesterov : {false, true}) {
        CAPTURE(nesterov);
        Var p = param(from_vector(kP0, {3}, dt));
        SGD sgd({p}, 0.1, 0.9, nesterov);
        Vec want = kP0, buf(3);
        const Vec* grads[] = {&kG1, &kG2, &kG3};
        for (int t = 0; t < 3; ++t) {
          set_grad(p, *grads[t]);
          sgd.step();
          for (int i = 0; i < 3; ++i) {
            const double g = (*grads[t])[i];
            buf[i] = t == 0 ? g : 0.9 * buf[i] + g;  // the first step copies the gradient
            want[i] -= 0.1 * (nesterov ? g + 0.9 * buf[i] : buf[i]);
          }
          check_values(p, want, dt);
        }
        // Written out for element 0 without Nesterov: buf = 0.1, then 0.09 - 0.4 = -0.31, then
        // -0.279 + 0.2 = -0.079; p = 1 - 0.01 + 0.031 + 0.0079 = 1.0289.
        if (!nesterov)
          CHECK(p.value().flat(0) == doctest::Approx(1.0289).epsilon(1e-6));
      }
    }
  }

  TEST_CASE("Adam: two steps written out") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      Var p = param(from_vector(kP0, {3}, dt));
      Adam adam({p}, 0.01);
      set_grad(p, kG1);
      adam.step();
      // Step 1: m = 0.1 g, v = 0.001 g^2, m / (1 - 0.9) = g, v / (1 - 0.999) = g^2:
      // p -= 0.01 * g / (|g| + 1e-8)
      Vec want(3);
      for (int i = 0; i < 3; ++i) want[i] = kP0[i] - 0.01 * kG1[i] / (std::fabs(kG1[i]) + 1e-8);
      check_values(p, want, dt);
      set_grad(p, kG2);
      adam.step();
      for (int i = 0; i < 3; ++i) {
        const double m = 0.9 * (0.1 * kG1[i]) + 0.1 * kG2[i];
        const double v = 0.999 * (0.001 * kG1[i] * kG1[i]) + 0.001 * kG2[i] * kG2[i];
        const double mhat = m / (1 - 0.81), denom = std::sqrt(v) / std::sqrt(1 - 0.998001) + 1e-8;
        want[i] -= 0.01 * mhat / denom;
      }
      check_values(p, want, dt);
    }
  }

  TEST_CASE("Adam with L2 weight decay and AdamW with decoupled decay") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      Var a = param(from_vector(kP0, {3}, dt)), w = param(from_vector(kP0, {3}, dt));
      Adam adam({a}, 0.01, 0.9, 0.999, 1e-8, 0.05);
      AdamW adamw({w}, 0.01, 0.9, 0.999, 1e-8, 0.05);
      set_grad(a, kG1);
      set_grad(w, kG1);
      adam.step();
      adamw.step();
      Vec want_a(3), want_w(3);
      for (int i = 0; i < 3; ++i) {
        const double g = kG1[i] + 0.05 * kP0[i];  // Adam: L2 term in the gradient
        want_a[i] = kP0[i] - 0.01 * g / (std::fabs(g) + 1e-8);
        // AdamW: p *= 1 - lr * wd = 0.9995 first, then the plain Adam step
        want_w[i] = kP0[i] * 0.9995 - 0.01 * kG1[i] / (std::fabs(kG1[i]) + 1e-8);
      }
      check_values(a, want_a, dt);
      check_values(w, want_w, dt);
      CHECK(std::string(adamw.name()) == "AdamW");
      CHECK(adamw.weight_decay() == 0.05);
    }
  }

  TEST_CASE("a parameter without a gradient is skipped and keeps its own step count") {
    Var a = param(from_vector(kP0, {3}, kFloat64)), b = param(from_vector(kP0, {3}, kFloat64));
    Adam adam({a, b}, 0.01);
    set_grad(a, kG1);
    adam.step();
    check_values(b, kP0, kFloat64);
    set_grad(b, kG1);
    a.zero_grad();
    const Vec a1 = a.value().to_vector<double>();
    adam.step();
    check_values(a, a1, kFloat64);
    // b's first update: its bias correction uses its own step (1), as in PyTorch.
    Vec want(3);
    for (int i = 0; i < 3; ++i) want[i] = kP0[i] - 0.01 * kG1[i] / (std::fabs(kG1[i]) + 1e-8);
    check_values(b, want, kFloat64);
    CHECK(adam.steps() == 2);
    for (const auto& [n, t] : adam.state_dict()) {
      if (n == "0.step" || n == "1.step")
        CHECK(t.item() == 1);
    }
  }

  TEST_CASE("zero_grad / set_lr / duplicates / hyper-parameter validation") {
    Var p = param(from_vector(kP0, {3}, kFloat32));
    SGD sgd({p, p}, 0.5);  // a Var listed twice is updated once
    CHECK(sgd.params().size() == 1);
    set_grad(p, kG1);
    sgd.step();
    check_values(p, {0.95, -2.1, 0.65}, kFloat32);
    sgd.zero_grad();
    CHECK(!p.has_grad());
    sgd.step();  // no gradient: nothing changes
    check_values(p, {0.95, -2.1, 0.65}, kFloat32);
    sgd.set_lr(0.25);
    CHECK(sgd.lr() == 0.25);
    CHECK_THROWS_WITH_AS(sgd.set_lr(-1), doctest::Contains("SGD: lr must be in [0, "), ValueError);
    CHECK_THROWS_WITH_AS(
        SGD({p}, -0.1), doctest::Contains("SGD: lr must be in [0, inf), got -0.1"), ValueError);
    CHECK_THROWS_WITH_AS(SGD({p}, 0.1, 0, true),
                         doctest::Contains("SGD: nesterov needs a positive momentum"),
                         ValueError);
    CHECK_THROWS_WITH_AS(Adam({p}, 1e-3, 1.0),
                         doctest::Contains("Adam: beta1 must be in [0, 1), got 1"),
                         ValueError);
    CHECK_THROWS_WITH_AS(AdamW({p}, 1e-3, 0.9, -0.5),
                         doctest::Contains("AdamW: beta2 must be in [0, 1), got -0.5"),
                         ValueError);
    CHECK_THROWS_WITH_AS(
        Adam({p}, 1e-3, 0.9, 0.999, NAN), doctest::Contains("Adam: eps must be in"), ValueError);
    CHECK_THROWS_WITH_AS(SGD(std::vector<Var>{}, 0.1),
                         doctest::Contains("SGD: got an empty parameter list"),
                         ValueError);
    CHECK_THROWS_WITH_AS(SGD({p * 2.0}, 0.1),
                         doctest::Contains("is not a leaf (it was produced by 'mul_scalar')"),
                         ValueError);
    CHECK_THROWS_AS(SGD({constant(zeros({2}, kInt64))}, 0.1), DTypeError);
  }

  TEST_CASE("state_dict round trip continues identically") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      Generator g(3);
      nn::Linear l1(3, 2, g), l2(3, 2, g);
      l1.to(dt);
      l2.to(dt);
      l2.load_state_dict(l1.state_dict());
      AdamW a(l1.named_parameters(), 0.05), b(l2.named_parameters(), 0.05);
      auto grads = [&](const nn::Linear& l, int t) {
        l.weight.zero_grad();
        l.bias.zero_grad();
        Tensor x = rand({4, 3}, RngKey{9, static_cast<uint64_t>(t)}, dt);
        sum(square(l.forward(constant(x)))).backward();
      };
      for (int t = 0; t < 2; ++t) {
        grads(l1, t);
        a.step();
      }
      const NamedTensors st = a.state_dict();
      std::vector<std::string> names;
      for (const auto& [n, v] : st) names.push_back(n);
      CHECK(names == std::vector<std::string>{"step",
                                              "lr",
                                              "weight.step",
                                              "weight.exp_avg",
                                              "weight.exp_avg_sq",
                                              "bias.step",
                                              "bias.exp_avg",
                                              "bias.exp_avg_sq"});
      l2.load_state_dict(l1.state_dict());
      b.load_state_dict(st);
      CHECK(b.steps() == 2);
      for (int t = 2; t < 4; ++t) {
        grads(l1, t);
        a.step();
        grads(l2, t);
        b.step();
      }
      CHECK(testing::bitwise_equal(l1.weight.value(), l2.weight.value()));
      CHECK(testing::bitwise_equal(l1.bias.value(), l2.bias.value()));
    }
  }

  TEST_CASE("load_state_dict errors name the entry and leave the optimizer unchanged") {
    Var p = param(from_vector(kP0, {3}, kFloat64));
    Adam adam({{"w", p}}, 0.01);
    set_grad(p, kG1);
    adam.step();
    NamedTensors st = adam.state_dict();
    Adam other({{"w", param(zeros({3}, kFloat64))}}, 0.02);
    SUBCASE("missing") {
      st.erase(st.begin() + 3);
      CHECK_THROWS_WITH_AS(other.load_state_dict(st),
                           doctest::Contains("Adam::load_state_dict: missing entry 'w.exp_avg'"),
                           ValueError);
    }
    SUBCASE("extra") {
      st.emplace_back("w.momentum_buffer", zeros({3}));
      CHECK_THROWS_WITH_AS(other.load_state_dict(st),
                           doctest::Contains("unexpected entries: 'w.momentum_buffer' [3]"),
                           ValueError);
    }
    SUBCASE("shape") {
      st[4].second = zeros({4}, kFloat64);
      CHECK_THROWS_WITH_AS(
          other.load_state_dict(st),
          doctest::Contains("entry 'w.exp_avg_sq' has shape [4] but [3] was expected"),
          ShapeError);
    }
    SUBCASE("dtype") {
      st[0].second = scalar_tensor(1.0, kFloat64);
      CHECK_THROWS_WITH_AS(other.load_state_dict(st),
                           doctest::Contains("entry 'step' is float64; expected int64"),
                           DTypeError);
    }
    SUBCASE("another optimizer's state") {
      SGD sgd({{"w", p}}, 0.1, 0.9);
      CHECK_THROWS_WITH_AS(sgd.load_state_dict(st),
                           doctest::Contains("missing entry 'w.momentum_buffer'"),
                           ValueError);
    }
    CHECK(other.steps() == 0);
    CHECK(other.lr() == 0.02);
  }

  TEST_CASE("optimizer state follows Module::to") {
    Generator g(4);
    nn::Linear lin(2, 2, g);
    Adam adam(lin.parameters(), 0.01);
    sum(lin.forward(constant(ones({1, 2})))).backward();
    adam.step();
    lin.to(kFloat64);
    sum(lin.forward(constant(ones({1, 2}, kFloat64)))).backward();
    adam.step();
    for (const auto& [n, t] : adam.state_dict()) {
      if (t.dim() > 0)
        CHECK(t.dtype() == kFloat64);
    }
  }

  TEST_CASE("clip_grad_norm: total norm / scaling / no-op below the threshold") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      Var a = param(zeros({2}, dt)), b = param(zeros({1}, dt)), c = param(zeros({3}, dt));
      set_grad(a, {3, 4});
      set_grad(b, {12});
      // c has no gradient: it counts as zero.
      const double norm = clip_grad_norm({a, b, c, a}, 6.5);  // a twice counts once
      CHECK(norm == doctest::Approx(13.0).epsilon(1e-12));
      const double k = 6.5 / (13.0 + 1e-6);
      CHECK(a.grad().flat(0) == doctest::Approx(3 * k).epsilon(1e-6));
      CHECK(a.grad().flat(1) == doctest::Approx(4 * k).epsilon(1e-6));
      CHECK(b.grad().flat(0) == doctest::Approx(12 * k).epsilon(1e-6));
      CHECK(grad_norm({a, b, c}) == doctest::Approx(6.5).epsilon(1e-6));
      CHECK(!c.has_grad());

      set_grad(a, {3, 4});
      const Tensor before = a.grad().clone();
      CHECK(clip_grad_norm({a}, 10.0) == doctest::Approx(5.0));
      CHECK(testing::bitwise_equal(a.grad(), before));

      set_grad(a, {INFINITY, 1});
      CHECK(std::isinf(clip_grad_norm({a}, 1.0)));
      CHECK(a.grad().flat(1) == 1.0);
      CHECK_THROWS_WITH_AS(clip_grad_norm({a}, 1.0, true),
                           doctest::Contains("clip_grad_norm: the total gradient norm is inf"),
                           ValueError);
      CHECK_THROWS_AS(clip_grad_norm({a}, 0.0), ValueError);
    }
  }

  TEST_CASE("schedules at key steps") {
    ConstantLR c(0.3);
    CHECK(c.lr(0) == 0.3);
    CHECK(c.lr(1000000) == 0.3);
    WarmupCosine w(1.0, 10, 110, 0.1);
    CHECK(w.lr(0) == 0.0);
    CHECK(w.lr(5) == 0.5);
    CHECK(w.lr(10) == 1.0);
    CHECK(w.lr(60) == doctest::Approx(0.55).epsilon(1e-12));  // halfway: min + (1 - min) / 2
    CHECK(w.lr(35) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 4))));
    CHECK(w.lr(110) == 0.1);
    CHECK(w.lr(5000) == 0.1);
    WarmupCosine no_warmup(2.0, 0, 4);
    CHECK(no_warmup.lr(0) == 2.0);
    CHECK(no_warmup.lr(2) == doctest::Approx(1.0));
    CHECK(no_warmup.lr(4) == 0.0);
    StepDecay s(1.0, 10, 0.5);
    CHECK(s.lr(0) == 1.0);
    CHECK(s.lr(9) == 1.0);
    CHECK(s.lr(10) == 0.5);
    CHECK(s.lr(25) == 0.25);
    CHECK_THROWS_AS(w.lr(-1), ValueError);
    CHECK_THROWS_WITH_AS(WarmupCosine(1.0, 20, 10),
                         doctest::Contains("need 0 <= warmup_steps <= total_steps"),
                         ValueError);
    CHECK_THROWS_AS(StepDecay(1.0, 0, 0.5), ValueError);
    CHECK_THROWS_AS(WarmupCosine(0.1, 0, 10, 0.2), ValueError);
  }

  TEST_CASE("parse_schedule: specs / defaults / round trip / errors") {
    auto c = parse_schedule("constant", 0.01);
    CHECK(c->lr(7) == 0.01);
    auto w = parse_schedule("cosine:warmup=10,min_lr=0.1", 1.0, 110);
    CHECK(w->lr(5) == 0.5);
    CHECK(w->lr(60) == doctest::Approx(0.55));
    CHECK(w->describe() == "cosine:base_lr=1,warmup=10,total=110,min_lr=0.1");
    auto again = parse_schedule(w->describe(), 123.0, 1);
    for (int64_t t : {0, 3, 10, 50, 109, 200}) CHECK(again->lr(t) == w->lr(t));
    auto s = parse_schedule("step:step_size=100,gamma=0.5,base_lr=0.2", 1.0);
    CHECK(s->lr(250) == doctest::Approx(0.05));
    CHECK(parse_schedule(s->describe(), 0)->lr(250) == s->lr(250));
    CHECK(parse_schedule("warmup_cosine:total=5", 3e-4)->lr(0) == 3e-4);
    CHECK_THROWS_WITH_AS(
        parse_schedule("linear", 0.1), doctest::Contains("unknown schedule 'linear'"), ValueError);
    CHECK_THROWS_WITH_AS(parse_schedule("cosine:warmpu=3", 0.1, 10),
                         doctest::Contains("unknown key 'warmpu'"),
                         ValueError);
    CHECK_THROWS_WITH_AS(parse_schedule("cosine:warmup=x", 0.1, 10),
                         doctest::Contains("warmup = 'x' is not an integer"),
                         ValueError);
    CHECK_THROWS_WITH_AS(
        parse_schedule("step", 0.1), doctest::Contains("needs step_size=N"), ValueError);
    CHECK_THROWS_WITH_AS(parse_schedule("cosine", 0.1),  // no total steps anywhere
                         doctest::Contains("parse_schedule: 'cosine': WarmupCosine: need"),
                         ValueError);
  }
}
