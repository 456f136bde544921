#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using attnlab::testing::random_tensor;

namespace {
// Reference softmax over the last axis in double.
Tensor ref_softmax(const Tensor& x, bool log_space) {
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  const int64_t n = x.shape().back(), rows = x.numel() / n;
  for (int64_t r = 0; r < rows; ++r) {
    double m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, x.flat(r * n + i));
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(x.flat(r * n + i) - m);
    for (int64_t i = 0; i < n; ++i) {
      const double v = x.flat(r * n + i) - m;
      const double out = log_space ? v - std::log(s) : std::exp(v) / s;
      dispatch_float(x.dtype(), "ref", [&](auto tag) {
        using T = decltype(tag);
        y.data<T>()[r * n + i] = static_cast<T>(out);
      });
    }
  }
  return y;
}
}  // namespace

TEST_SUITE("core.softmax") {
  TEST_CASE_TEMPLATE("softmax and log_softmax match the reference", T, float, double) {
    const DType dt = dtype_of<T>();
    const double rtol = dt == kFloat32 ? 1e-5 : 1e-13;
    uint64_t seed = 1;
    for (Shape s :
         {Shape{1}, Shape{7}, Shape{3, 16}, Shape{5, 17}, Shape{2, 3, 100}, Shape{4, 1000}}) {
      CAPTURE(s);
      Tensor x = random_tensor(s, dt, seed++, -8, 8);
      CHECK_CLOSE(softmax(x), ref_softmax(x, false), rtol, 1e-7);
      CHECK_CLOSE(log_softmax(x), ref_softmax(x, true), rtol, 1e-6);
      Tensor rowsum = sum(softmax(x), -1);
      for (int64_t i = 0; i < rowsum.numel(); ++i)
        CHECK(rowsum.flat(i) == doctest::Approx(1.0).epsilon(rtol * 10));
    }
  }

  TEST_CASE("softmax along a non-last axis equals the transposed computation") {
    Tensor x = random_tensor({4, 5, 6}, kFloat64, 9);
    CHECK_CLOSE(softmax(x, 1), transpose(softmax(transpose(x, 1, 2)), 1, 2), 1e-14, 0);
    CHECK_CLOSE(log_softmax(x, 0), transpose(log_softmax(transpose(x, 0, 2)), 0, 2), 1e-14, 0);
  }

  TEST_CASE("large logits / fully masked rows and NaN follow the documented rule") {
    const double inf = std::numeric_limits<double>::infinity();
    for (DType dt : {kFloat32, kFloat64}) {
      Tensor x =
          from_vector(std::vector<double>{1e4, -1e4, 1e4, -inf, -inf, -inf, 0, NAN, 1}, {3, 3}, dt);
      Tensor y = softmax(x), ly = log_softmax(x);
      CHECK(y.get({0, 0}) == doctest::Approx(0.5));
      CHECK(y.get({0, 1}) == 0);
      CHECK(ly.get({0, 0}) == doctest::Approx(-std::log(2.0)));
      CHECK(ly.get({0, 1}) == doctest::Approx(-2e4 - std::log(2.0)));
      for (int i = 0; i < 3; ++i) {
        CHECK(y.get({1, i}) == 0);         // fully masked row -> zeros, no NaN
        CHECK(ly.get({1, i}) == -inf);     // and -inf in log space
        CHECK(std::isnan(y.get({2, i})));  // NaN poisons its row only
      }
    }
  }

  TEST_CASE("backward kernels match the closed forms") {
    Tensor x = random_tensor({3, 9}, kFloat64, 4), g = random_tensor({3, 9}, kFloat64, 5);
    Tensor y = softmax(x);
    Tensor expect = mul(y, sub(g, sum(mul(g, y), -1, true)));
    CHECK_CLOSE(softmax_backward(y, g), expect, 1e-14, 1e-15);
    Tensor ly = log_softmax(x);
    Tensor expect_log = sub(g, mul(exp(ly), sum(g, -1, true)));
    CHECK_CLOSE(log_softmax_backward(ly, g), expect_log, 1e-14, 1e-15);
    CHECK_CLOSE(
        softmax_backward(softmax(x, 0), g, 0),
        transpose(softmax_backward(transpose(softmax(x, 0), 0, 1), transpose(g, 0, 1)), 0, 1),
        1e-14,
        1e-15);
    CHECK_THROWS_AS(softmax_backward(y, zeros({3, 8}, kFloat64)), ShapeError);
  }
}
