// Graphs recorded on several threads: backward must order nodes correctly whatever thread
// recorded each one, and independent graphs may be recorded and differentiated concurrently
// (the contract in autograd/engine.hpp). Run under ThreadSanitizer by .ci/tsan.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;

namespace {

// y = x + n, as a chain of n additions (n nodes).
Var add_ones(const Var& x, int n) {
  Var y = x;
  for (int i = 0; i < n; ++i) y = y + 1.0;
  return y;
}

// Runs f on a fresh thread and waits for it (each fresh thread used to restart node numbering).
template <class F>
void on_new_thread(F f) {
  std::thread t(f);
  t.join();
}

}  // namespace

TEST_SUITE("autograd.threads") {
  TEST_CASE("a graph continued on another thread differentiates correctly") {
    Var x = param(scalar_tensor(1.0, kFloat64));
    Var warm_up = x * 1.0;  // this thread now numbers nodes from a block older than the workers'
    Var y, z;
    on_new_thread([&] { y = add_ones(x, 11); });  // y = 12
    on_new_thread([&] { z = y * y; });            // dz/dx = 2y = 24
    z.backward(/*retain_graph=*/true);
    CHECK(x.grad().item() == 24);
    x.zero_grad();
    Var w = y * y;  // continued on this thread
    w.backward();
    CHECK(x.grad().item() == 24);
  }

  TEST_CASE("a graph built in pieces on several threads and joined") {
    Var x = param(tensor({1, 2}, kFloat64));
    // a = x + 3 on thread 1, b = a * a on thread 2 (continuing thread 1's graph), c = x + 5 on
    // thread 3; joined on this thread: loss = sum(b * c).
    Var a, b, c;
    on_new_thread([&] { a = add_ones(x, 3); });
    std::thread t2([&] { b = a * a; });
    std::thread t3([&] { c = add_ones(x, 5); });
    t2.join();
    t3.join();
    Var loss = sum(b * c);
    loss.backward();
    // d/dx (x+3)^2 (x+5) = 2 (x+3)(x+5) + (x+3)^2
    CHECK(x.grad().to_vector<double>() == std::vector<double>{2 * 4 * 6 + 16, 2 * 5 * 7 + 25});
  }

  TEST_CASE("eight threads record and differentiate independent graphs at once") {
    constexpr int kThreads = 8;
    constexpr int kRounds = 20;
    // Read-only inputs shared by every graph: a constant Var and a plain tensor.
    const Var shared_scale = constant(tensor({2, 3, 4}, kFloat64));
    const Tensor shared_shift = tensor({1, 1, 1}, kFloat64);
    std::vector<std::vector<double>> grads(kThreads);
    std::vector<std::string> reports(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        Var x = param(tensor({1.0 * t, 1.0, -1.0}, kFloat64));
        for (int r = 0; r < kRounds; ++r) {
          // Half the threads record on a Tape (thread-local) and name their scopes.
          std::unique_ptr<Tape> tape = t % 2 ? std::make_unique<Tape>() : nullptr;
          Scope scope("worker" + std::to_string(t));
          // loss = sum((x * s + shift)^2 + x): dx = 2 s (x s + shift) + 1
          Var h = x * shared_scale + constant(shared_shift);
          Var loss = sum(add_ones(h * h + x, 10));
          loss.backward();
          if (tape)
            reports[t] = tape->report();
        }
        grads[t] = x.grad().to_vector<double>();
      });
    }
    for (auto& th : threads) th.join();
    const std::vector<double> s = shared_scale.value().to_vector<double>();
    for (int t = 0; t < kThreads; ++t) {
      CAPTURE(t);
      const std::vector<double> x = {1.0 * t, 1.0, -1.0};
      std::vector<double> expected(3);
      for (int i = 0; i < 3; ++i) expected[i] = kRounds * (2 * s[i] * (x[i] * s[i] + 1) + 1);
      CHECK(grads[t] == expected);
      if (t % 2)
        CHECK(reports[t].find("worker" + std::to_string(t)) != std::string::npos);
    }
  }
}
