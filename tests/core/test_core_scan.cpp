#include <doctest/doctest.h>

#include <cmath>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using attnlab::testing::random_tensor;

namespace {
// Reference: h_t = decay * h_(t-1) + x_t along `axis`, in double.
Tensor ref_scan(const Tensor& x, int axis, double decay, bool reverse) {
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (int i = axis + 1; i < x.dim(); ++i) inner *= x.shape()[i];
  const int64_t n = x.shape()[axis];
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double h = 0;
      for (int64_t s = 0; s < n; ++s) {
        const int64_t t = reverse ? n - 1 - s : s;
        const int64_t at = (o * n + t) * inner + i;
        h = decay * h + x.flat(at);
        dispatch_float(x.dtype(), "ref", [&](auto tag) {
          using T = decltype(tag);
          y.data<T>()[at] = static_cast<T>(h);
        });
      }
    }
  }
  return y;
}
}  // namespace

TEST_SUITE("core.scan") {
  TEST_CASE_TEMPLATE(
      "cumsum and decayed scans match the recurrence on every axis", T, float, double) {
    const DType dt = dtype_of<T>();
    const double rtol = dt == kFloat32 ? 2e-5 : 1e-13;
    uint64_t seed = 1;
    for (Shape s : {Shape{1}, Shape{9}, Shape{3, 17}, Shape{2, 40, 3}, Shape{4, 5, 600}}) {
      for (int axis = 0; axis < s.rank(); ++axis) {
        for (bool reverse : {false, true}) {
          CAPTURE(s);
          CAPTURE(axis);
          CAPTURE(reverse);
          Tensor x = random_tensor(s, dt, seed++);
          CHECK_CLOSE(cumsum(x, axis, reverse), ref_scan(x, axis, 1.0, reverse), rtol, 1e-5);
          CHECK_CLOSE(
              decayed_scan(x, axis, 0.9, reverse), ref_scan(x, axis, 0.9, reverse), rtol, 1e-6);
        }
      }
    }
  }

  TEST_CASE("the decayed scan is the adjoint of its reverse") {
    // <scan(x), g> == <x, reverse_scan(g)>: why the reverse scan is the backward of the forward.
    Tensor x = random_tensor({3, 50}, kFloat64, 1), g = random_tensor({3, 50}, kFloat64, 2);
    const double lhs = sum(mul(decayed_scan(x, 1, 0.8), g)).item();
    const double rhs = sum(mul(x, decayed_scan(g, 1, 0.8, true))).item();
    CHECK(lhs == doctest::Approx(rhs).epsilon(1e-12));
  }

  TEST_CASE("long float32 decayed scans neither underflow nor produce NaN") {
    // decay = exp(-0.1): decay^t underflows float32 near t = 870; the recurrence never forms it.
    const int64_t L = 65536;
    Tensor x = ones({L}, kFloat32);
    Tensor h = decayed_scan(x, 0, std::exp(-0.1));
    CHECK_FALSE(has_nonfinite(h));
    const double steady = 1.0 / (1.0 - std::exp(-0.1));
    CHECK(h.flat(L - 1) == doctest::Approx(steady).epsilon(1e-5));
    CHECK(h.flat(0) == 1);
  }

  TEST_CASE("bad arguments") {
    CHECK_THROWS_WITH_AS(
        cumsum(zeros({3}), 1), doctest::Contains("cumsum: axis 1 out of range"), ValueError);
    CHECK_THROWS_WITH_AS(
        decayed_scan(zeros({3}), 0, NAN), doctest::Contains("decay must be finite"), ValueError);
    CHECK(cumsum(zeros({0, 4}), 0).shape() == Shape{0, 4});
  }
}
