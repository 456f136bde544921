#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;

TEST_SUITE("autograd.engine") {
  TEST_CASE("a scalar expression: value and gradient") {
    Var x = param(scalar_tensor(2.0, kFloat64));
    Var y = x * x + 3.0 * x;  // dy/dx = 2x + 3
    CHECK(y.item() == 10);
    y.backward();
    CHECK(x.grad().item() == 7);
  }

  TEST_CASE("leaf gradients accumulate across backward calls until zero_grad") {
    Var x = param(tensor({1, 2}, kFloat64));
    sum(x * 2.0).backward();
    sum(x * 2.0).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{4, 4});
    x.zero_grad();
    CHECK_FALSE(x.has_grad());
    sum(x).backward();
    CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 1});
  }

  TEST_CASE("fan-out gradients are summed") {
    Var x = param(tensor({3}, kFloat64));
    Var a = exp(x);
    Var y = a * a + a;  // d/dx = 2 e^{2x} + e^x
    y.backward(ones({1}, kFloat64));
    CHECK(x.grad().item() == doctest::Approx(2 * std::exp(6.0) + std::exp(3.0)));
  }

  TEST_CASE("non-leaf gradients are kept only after retain_grad") {
    Var x = param(tensor({1, 2, 3}, kFloat64));
    Var h = x * 2.0, k = x * 3.0;
    h.retain_grad();
    sum(h * k).backward();
    CHECK(h.has_grad());
    CHECK(h.grad().to_vector<double>() == std::vector<double>{3, 6, 9});
    CHECK_FALSE(k.has_grad());
    CHECK_FALSE(h.is_leaf());
    CHECK_THROWS_WITH_AS(h.requires_grad_(false), doctest::Contains("only leaves"), GraphError);
  }

  TEST_CASE("retain_graph: a second backward needs it") {
    Var x = param(tensor({1.5}, kFloat64));
    Var y = sum(exp(x));
    y.backward(/*retain_graph=*/true);
    y.backward();
    CHECK(x.grad().item() == doctest::Approx(2 * std::exp(1.5)));
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("already released"), GraphError);
  }

  TEST_CASE("no-grad mode records nothing") {
    Var x = param(tensor({1, 2}));
    Var y;
    {
      NoGradGuard guard;
      y = exp(x);
      CHECK_FALSE(grad_enabled());
    }
    CHECK(grad_enabled());
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    CHECK_THROWS_WITH_AS(
        y.backward(ones({2})), doctest::Contains("does not require grad"), GraphError);
    Var c = constant(tensor({1}));
    CHECK_FALSE(exp(c).requires_grad());
  }

  TEST_CASE("backward needs a gradient for non-scalar outputs") {
    Var x = param(tensor({1, 2}, kFloat64));
    Var y = x * 2.0;
    CHECK_THROWS_WITH_AS(
        y.backward(), doctest::Contains("non-scalar output of shape [2]"), GraphError);
    CHECK_THROWS_WITH_AS(
        y.backward(ones({3}, kFloat64)), doctest::Contains("gradient [3] float64"), GraphError);
    y.backward(tensor({1, 10}, kFloat64));
    CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 20});
  }

  TEST_CASE("hooks read and replace gradients") {
    Var x = param(tensor({1, 2}, kFloat64));
    Var h = x * 3.0;
    Tensor seen;
    h.register_hook([&](const Tensor& g) {
      seen = g.clone();
      return mul(g, 10.0);  // replace: scale by 10
    });
    int leaf_calls = 0;
    const int id = x.register_hook([&](const Tensor& g) {
      ++leaf_calls;
      return g;
    });
    sum(h + h).backward();  // fan-out into h: the hook sees the summed gradient once
    CHECK(seen.to_vector<double>() == std::vector<double>{2, 2});
    CHECK(x.grad().to_vector<double>() == std::vector<double>{60, 60});
    CHECK(leaf_calls == 1);
    x.remove_hook(id);
    x.zero_grad();
    sum(x).backward();
    CHECK(leaf_calls == 1);
    CHECK_THROWS_AS(constant(tensor({1})).register_hook([](const Tensor& g) { return g; }),
                    GraphError);
  }

  TEST_CASE("non-differentiable outputs are flagged") {
    Var x = param(tensor({1, 5, 2}));
    Var idx = argmax(x, 0);
    CHECK(idx.value().dtype() == kInt64);
    CHECK_FALSE(idx.requires_grad());
    CHECK(std::string(idx.non_differentiable_op()) == "argmax");
    CHECK_THROWS_WITH_AS(idx.requires_grad_(),
                         doctest::Contains("output of 'argmax' is not differentiable"),
                         GraphError);
    Var oh = one_hot(idx, 3);
    CHECK(std::string(oh.non_differentiable_op()) == "one_hot");
    CHECK(oh.value().to_vector<double>() == std::vector<double>{0, 1, 0});
  }

  TEST_CASE("a chain of a million ops runs backward and is freed without recursion") {
    Var x = param(scalar_tensor(0.0, kFloat64));
    Var y = x;
    for (int i = 0; i < 1000000; ++i) y = y + 1.0;
    CHECK(y.item() == 1000000);
    y.backward();
    CHECK(x.grad().item() == 1);
    y = Var();  // frees the chain: a recursive destructor would overflow the stack here
    CHECK(x.grad().item() == 1);
  }

  TEST_CASE(
      "saved tensors are released after backward - an undifferentiated forward leaks nothing") {
    const int64_t base = memory_stats().live_bytes;
    Var x = param(ones({100000}, kFloat64));
    const int64_t with_x = memory_stats().live_bytes;
    CHECK(with_x - base == 800000);
    {
      Var loss = sum(exp(x) * exp(x));
      CHECK(memory_stats().live_bytes - with_x >= 2 * 800000);  // exp outputs saved by mul
      loss.backward();
      // Only x.grad (800 kB) and small scalars remain once the saved tensors are released.
      CHECK(memory_stats().live_bytes - with_x < 800000 + 1024);
    }
    x.zero_grad();
    CHECK(memory_stats().live_bytes == with_x);
    {
      Var never = sum(exp(x) * exp(x) + x);
      CHECK(memory_stats().live_bytes > with_x);
    }
    CHECK(memory_stats().live_bytes == with_x);
  }

  TEST_CASE("anomaly mode names the op that produced NaN / forward and backward") {
    Var x = param(tensor({-1.0, 4.0}, kFloat64));
    {
      AnomalyGuard anomaly;
      Scope scope("encoder");
      CHECK_THROWS_WITH_AS(
          log(x),
          doctest::Contains("scope 'encoder', inputs: unlabelled [2]) produced NaN"),
          AnomalyError);
    }
    CHECK_NOTHROW(log(x));  // off again outside the guard
    Var z = param(tensor({0.0, 4.0}, kFloat64));
    AnomalyGuard anomaly;
    Var r = sqrt(z);  // finite forward; d sqrt / dz = inf at 0
    label(r, "root");
    CHECK_THROWS_WITH_AS(
        sum(r).backward(), doctest::Contains("backward of 'sqrt' (node #"), AnomalyError);
    Var w = param(tensor({0.0}, kFloat64));
    Var r2 = sqrt(w);
    label(r2, "root2");
    CHECK_THROWS_WITH_AS(sum(r2).backward(), doctest::Contains("label 'root2'"), AnomalyError);
  }

  TEST_CASE("anomaly mode: the forward error names the node / op / scope and input labels") {
    Var x = param(tensor({-1.0, 4.0}, kFloat64));
    label(x, "logits");
    AnomalyGuard anomaly;
    Scope scope("head");
    try {
      log(x);
      FAIL("log of a negative number should raise an AnomalyError");
    } catch (const AnomalyError& e) {
      const std::string m = e.what();
      CAPTURE(m);
      CHECK(m.find("forward of 'log' (node #") != std::string::npos);
      CHECK(m.find("scope 'head'") != std::string::npos);
      CHECK(m.find("inputs: 'logits'") != std::string::npos);
      CHECK(m.find("this op created them") != std::string::npos);
    }
    // Without a node (nothing requires grad) the error still names the op and the inputs.
    CHECK_THROWS_WITH_AS(log(constant(tensor({-1.0}, kFloat64))),
                         doctest::Contains("forward of 'log' (no node: no input requires grad"),
                         AnomalyError);
  }

  TEST_CASE("anomaly mode blames a gradient hook that returns NaN / non-leaf and leaf") {
    const auto nan_hook = [](const Tensor& g) {
      return attnlab::mul(g, std::numeric_limits<double>::quiet_NaN());
    };
    AnomalyGuard anomaly;
    {
      Var x = param(tensor({1, 2}, kFloat64));
      Var h = x * 3.0;
      label(h, "hidden");
      const int id = h.register_hook(nan_hook);
      CHECK_THROWS_WITH_AS(
          sum(exp(h)).backward(),
          doctest::Contains(
              ("gradient hook " + std::to_string(id) + " on 'hidden' (output 0 of").c_str()),
          AnomalyError);
    }
    {
      Var w = param(tensor({1, 2}, kFloat64));
      label(w, "weight");
      w.register_hook([](const Tensor& g) { return g; });
      const int id = w.register_hook(nan_hook);
      CHECK_THROWS_WITH_AS(
          sum(w * 2.0).backward(),
          doctest::Contains(
              ("gradient hook " + std::to_string(id) + " on leaf 'weight' returned NaN").c_str()),
          AnomalyError);
      CHECK_FALSE(w.has_grad());  // the poisoned gradient was not accumulated
    }
  }

  TEST_CASE("dtype and shape errors name the op") {
    Var a = param(zeros({2, 3})), b = param(zeros({3, 3}));
    CHECK_THROWS_WITH_AS(add(a, b),
                         doctest::Contains("add: shapes [2, 3] and [3, 3] cannot be broadcast"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(mul(a, param(zeros({2, 3}, kFloat64))),
                         doctest::Contains("mul: dtypes differ"),
                         DTypeError);
    CHECK_THROWS_WITH_AS(
        Var(zeros({2}, kInt64), true), doctest::Contains("only float tensors"), DTypeError);
    CHECK_THROWS_AS(exp(Var()), ValueError);
  }
}
