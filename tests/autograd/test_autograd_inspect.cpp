#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;

namespace {

// y = x^2 with a correct hand-written backward (the README's worked example).
class Square : public Function {
 public:
  const char* name() const override { return "square_fn"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    save_for_backward({in[0]});
    return {attnlab::mul(in[0], in[0])};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    return {attnlab::mul(attnlab::mul(grad[0], saved()[0]), 2.0)};
  }
};

// The same with a planted bug: the factor 2 is missing.
class BrokenSquare : public Square {
 public:
  const char* name() const override { return "broken_square"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    return {attnlab::mul(grad[0], saved()[0])};
  }
};

// Two outputs, one of them non-differentiable: (x * scale, argmax of x).
class ScaleAndArgmax : public Function {
 public:
  explicit ScaleAndArgmax(double scale) : scale_(scale) {}
  const char* name() const override { return "scale_and_argmax"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    mark_non_differentiable(1);
    return {attnlab::mul(in[0], scale_), attnlab::argmax(in[0], -1)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    return {attnlab::mul(grad[0], scale_)};
  }

 private:
  double scale_;
};

// Two differentiable outputs (x * 2, x * 3); backward_nan plants a NaN in the input gradient.
class TwoOutputs : public Function {
 public:
  explicit TwoOutputs(bool backward_nan = false) : backward_nan_(backward_nan) {}
  const char* name() const override { return "two_outputs"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    return {attnlab::mul(in[0], 2.0), attnlab::mul(in[0], 3.0)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    Tensor g = attnlab::add(attnlab::mul(grad[0], 2.0), attnlab::mul(grad[1], 3.0));
    return {backward_nan_ ? attnlab::mul(g, std::nan("")) : g};
  }

 private:
  bool backward_nan_;
};

}  // namespace

TEST_SUITE("autograd.inspect") {
  TEST_CASE("tape report: ops / labels / scopes / shapes / saved bytes and gradient norms") {
    Tape tape;
    Var x = param(from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}, kFloat64));
    label(x, "x");
    Var h;
    {
      Scope s("layer");
      h = exp(x);
      label(h, "hidden");
    }
    Var loss = sum(h * 2.0);
    label(loss, "loss");
    CHECK(tape.size() == 3);
    tape.backward(loss);
    const std::string r = tape.report();
    CAPTURE(r);
    CHECK(r.find("exp") != std::string::npos);
    CHECK(r.find("hidden") != std::string::npos);
    CHECK(r.find("layer") != std::string::npos);
    CHECK(r.find("x[2, 2]") != std::string::npos);   // the input named by its label
    CHECK(r.find("#1[2, 2]") != std::string::npos);  // mul's input: row 1's output
    CHECK(r.find("32 B") != std::string::npos);      // exp saved its 2x2 float64 output
    CHECK(r.find("3 nodes") != std::string::npos);
    // grad norm of exp's output: |2 * ones(2,2)| = 4
    CHECK(tape.nodes()[0]->info->grad_norm == doctest::Approx(4.0));
    const std::string dot = tape.to_dot();
    CHECK(dot.find("digraph tape") != std::string::npos);
    CHECK(dot.find("n" + std::to_string(tape.nodes()[0]->seq) + " -> n" +
                   std::to_string(tape.nodes()[1]->seq)) != std::string::npos);
    CHECK(dot.find("x\\n[2, 2]") != std::string::npos);
  }

  TEST_CASE("a two-output node shows both output labels / report / DOT / anomaly error") {
    Var x = param(tensor({1.0, 2.0}, kFloat64));
    {
      Tape tape;
      auto out = apply<TwoOutputs>({x});
      label(out[0], "doubled");
      label(out[1], "tripled");
      const std::string r = tape.report();
      CAPTURE(r);
      CHECK(r.find("doubled, tripled") != std::string::npos);
      const std::string dot = tape.to_dot();
      CAPTURE(dot);
      CHECK(dot.find("doubled, tripled") != std::string::npos);
    }
    AnomalyGuard anomaly;
    auto out = apply<TwoOutputs>({x}, true);
    label(out[0], "doubled");
    label(out[1], "tripled");
    CHECK_THROWS_WITH_AS(sum(out[0] + out[1]).backward(),
                         doctest::Contains("labels 'doubled', 'tripled'"),
                         AnomalyError);
  }

  TEST_CASE("without a tape nothing is recorded") {
    CHECK(Tape::current() == nullptr);
    Var x = param(tensor({1.0}));
    Var y = exp(x);
    CHECK(y.grad_fn()->info == nullptr);
    {
      Tape outer;
      {
        Tape inner;
        Var z = exp(x);
        CHECK(inner.size() == 1);
      }
      CHECK(outer.size() == 0);
      CHECK(Tape::current() == &outer);
    }
  }

  TEST_CASE("custom Function: forward / saved tensors / backward / gradcheck") {
    Tape tape;
    Var x = param(tensor({1.5, -2.0}, kFloat64));
    Var y = apply<Square>({x})[0];
    CHECK(y.value().to_vector<double>() == std::vector<double>{2.25, 4.0});
    CHECK(tape.nodes()[0]->saved_bytes == 16);
    sum(y).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{3.0, -4.0});
    CHECK(tape.nodes()[0]->saved.empty());  // released after backward
    const auto r = gradcheck([](const std::vector<Var>& v) { return apply<Square>({v[0]})[0]; },
                             {tensor({0.3, -1.2, 2.0}, kFloat64)});
    CHECK_MESSAGE(r.ok, r.report());
    // No gradient needed: nothing is saved.
    NoGradGuard no_grad;
    Var c = apply<Square>({constant(tensor({3.0}))})[0];
    CHECK(c.grad_fn() == nullptr);
  }

  TEST_CASE("gradcheck reports a wrong backward with its worst entries") {
    const auto f = [](const std::vector<Var>& v) {
      return apply<BrokenSquare>({v[0]})[0];
    };
    const Tensor x = tensor({0.5, 1.0, -2.0}, kFloat64);
    const GradcheckResult slow = gradcheck(f, {x});
    CHECK_FALSE(slow.ok);
    CHECK(slow.worst.size() == 3);
    CHECK(slow.worst[0].index == std::vector<int64_t>{2});   // largest error at x = -2
    CHECK(slow.worst[0].analytic == doctest::Approx(-2.0));  // x instead of 2x
    CHECK(slow.worst[0].numeric == doctest::Approx(-4.0));
    CHECK(slow.report().find("FAIL") != std::string::npos);
    // The Jacobian entry names its output element too (it named only the input's, so entries
    // of different outputs printed alike).
    CHECK(slow.worst[0].output_index == std::vector<int64_t>{2});
    CHECK(slow.report().find("output 0 at [2] (flat 2) wrt input 0 at [2] (flat 2): analytic -2") !=
          std::string::npos);
    GradcheckOptions fast;
    fast.fast_mode = true;
    const GradcheckResult fr = gradcheck(f, {x}, fast);
    CHECK_FALSE(fr.ok);
    CHECK(fr.mode.find("re-checked in slow mode") != std::string::npos);
    CHECK_FALSE(fr.worst.empty());
    // Fast mode passes a correct op.
    const auto ok =
        gradcheck([](const std::vector<Var>& v) { return apply<Square>({v[0]})[0]; }, {x}, fast);
    CHECK_MESSAGE(ok.ok, ok.report());
  }

  TEST_CASE("gradcheck checks reentrancy and linearity") {
    // A backward that depends on hidden state: not reentrant.
    int calls = 0;
    struct Flaky : public Function {
      int* calls;
      explicit Flaky(int* c) : calls(c) {}
      const char* name() const override { return "flaky"; }
      std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
        return {in[0].clone()};
      }
      std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
        return {attnlab::mul(g[0], 1.0 + 1e-12 * (++*calls))};
      }
    };
    const auto r = gradcheck(
        [&](const std::vector<Var>& v) {
          return apply(std::make_shared<Flaky>(&calls), {v[0]})[0];
        },
        {tensor({1.0, 2.0}, kFloat64)});
    CHECK_FALSE(r.ok);
    CHECK(r.report().find("not reentrant") != std::string::npos);
    // A backward that ignores its output gradient: not linear.
    struct Constant : public Function {
      const char* name() const override { return "constant_grad"; }
      std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
        return {in[0].clone()};
      }
      std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
        return {attnlab::ones_like(g[0])};
      }
    };
    const auto r2 = gradcheck([](const std::vector<Var>& v) { return apply<Constant>({v[0]})[0]; },
                              {tensor({1.0}, kFloat64)});
    CHECK_FALSE(r2.ok);
    CHECK(r2.report().find("not linear") != std::string::npos);
  }

  TEST_CASE("custom Function with a non-differentiable output") {
    Var x = param(tensor({1.0, 5.0, 2.0}, kFloat64));
    auto out = apply<ScaleAndArgmax>({x}, 3.0);
    CHECK(out[1].value().dtype() == kInt64);
    CHECK(out[1].item() == 1);
    CHECK_FALSE(out[1].requires_grad());
    CHECK(std::string(out[1].non_differentiable_op()) == "scale_and_argmax");
    sum(out[0]).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 3, 3});
    GradcheckOptions o;
    const auto r = gradcheck(GradcheckFn([](const std::vector<Var>& v) {
                               return std::vector<Var>{apply<ScaleAndArgmax>({v[0]}, 0.5)[0]};
                             }),
                             {tensor({0.1, 0.4}, kFloat64)},
                             o);
    CHECK_MESSAGE(r.ok, r.report());
  }

  TEST_CASE("int64 inputs pass through as constants in slow and fast mode") {
    // x [3] float64 and idx int64: f = x[idx] * x, the index is a constant of the function.
    const auto f = [](const std::vector<Var>& v) {
      return mul(index_select(v[0], 0, v[1].value()), v[0]);
    };
    const Tensor x = tensor({0.5, -1.5, 2.0}, kFloat64);
    const Tensor idx = from_vector(std::vector<int64_t>{2, 0, 0}, {3});
    GradcheckOptions o;
    const auto slow = gradcheck(f, {x, idx}, o);
    CHECK_MESSAGE(slow.ok, slow.report());
    o.fast_mode = true;
    const auto fast = gradcheck(f, {x, idx}, o);
    CHECK_MESSAGE(fast.ok, fast.report());
    CHECK(fast.mode == "fast");
    // A wrong backward is still caught in fast mode with an int64 input present.
    const auto broken = [](const std::vector<Var>& v) {
      return mul(apply<BrokenSquare>({v[0]})[0], index_select(v[0], 0, v[1].value()));
    };
    CHECK_FALSE(gradcheck(broken, {x, idx}, o).ok);
  }

  TEST_CASE("gradcheck rejects unusable inputs clearly") {
    const auto f = [](const std::vector<Var>& v) {
      return sum(v[0]);
    };
    CHECK_THROWS_WITH_AS(gradcheck(f, {zeros({2}, kInt64)}),
                         doctest::Contains("no input to differentiate"),
                         ValueError);
    GradcheckOptions o;
    o.wrt = {true};
    CHECK_THROWS_AS(gradcheck(f, {zeros({2}, kInt64)}, o), DTypeError);
    // A function computing in float32 from float64 inputs is caught.
    const auto bad = [](const std::vector<Var>& v) {
      return cast(v[0], kFloat32);
    };
    CHECK_THROWS_WITH_AS(gradcheck(bad, {tensor({1.0}, kFloat64)}),
                         doctest::Contains("compute in the inputs' dtype"),
                         DTypeError);
  }

  TEST_CASE("float32 gradcheck preset") {
    const auto f = [](const std::vector<Var>& v) {
      return softmax(v[0] * 2.0, -1);
    };
    const auto r =
        gradcheck(f, {rand({2, 5}, RngKey{1, 2}, kFloat32)}, GradcheckOptions::float32());
    CHECK_MESSAGE(r.ok, r.report());
  }
}
