#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using attnlab::testing::random_tensor;

namespace {

// Reference reduction over one axis in double: f folds the values of each slice.
Tensor ref_reduce(const Tensor& x,
                  int axis,
                  const std::function<double(const std::vector<double>&)>& f,
                  DType out_dtype) {
  Shape out = x.shape();
  out.erase(axis);
  Tensor y = Tensor::empty(out, out_dtype);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (int i = axis + 1; i < x.dim(); ++i) inner *= x.shape()[i];
  const int64_t n = x.shape()[axis];
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      std::vector<double> vals;
      for (int64_t a = 0; a < n; ++a) vals.push_back(x.flat((o * n + a) * inner + i));
      const double r = f(vals);
      dispatch_any(out_dtype, [&](auto tag) {
        using T = decltype(tag);
        y.data<T>()[o * inner + i] = static_cast<T>(r);
      });
    }
  }
  return y;
}

double ref_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
double ref_max(const std::vector<double>& v) {
  double m = -INFINITY;
  for (double x : v) {
    if (std::isnan(x))
      return x;
    m = std::max(m, x);
  }
  return m;
}
double ref_min(const std::vector<double>& v) {
  double m = INFINITY;
  for (double x : v) {
    if (std::isnan(x))
      return x;
    m = std::min(m, x);
  }
  return m;
}
double ref_argmax(const std::vector<double>& v) {
  std::size_t best = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i]))
      return static_cast<double>(i);
    if (v[i] > v[best])
      best = i;
  }
  return static_cast<double>(best);
}
double ref_lse(const std::vector<double>& v) {
  double m = ref_max(v);
  if (std::isinf(m))
    return m;
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

}  // namespace

TEST_SUITE("core.reduce") {
  TEST_CASE_TEMPLATE("single-axis reductions match a reference on every axis", T, float, double) {
    const DType dt = dtype_of<T>();
    const double rtol = dt == kFloat32 ? 1e-5 : 1e-13;
    const double eps = dt == kFloat32 ? 6e-8 : 1.1e-16;
    uint64_t seed = 1;
    for (Shape s :
         {Shape{1}, Shape{17}, Shape{4, 33}, Shape{3, 1, 70}, Shape{2, 5, 3, 16}, Shape{1000, 3}}) {
      for (int axis = 0; axis < s.rank(); ++axis) {
        CAPTURE(s);
        CAPTURE(axis);
        Tensor x = random_tensor(s, dt, seed++, -3, 3);
        // Rounding errors of a sum of n terms with |x| <= 3 behave like a random walk of n steps of
        // size eps * 3 (the worst case, n * eps * sum|x|, is far looser): allow 10 of its sigmas.
        const double n = static_cast<double>(s[axis]);
        const double atol = 10 * std::sqrt(n) * eps * 3;
        CHECK_CLOSE(sum(x, axis), ref_reduce(x, axis, ref_sum, dt), rtol, atol);
        CHECK_CLOSE(mean(x, axis),
                    ref_reduce(
                        x, axis, [](const auto& v) { return ref_sum(v) / v.size(); }, dt),
                    rtol,
                    atol / n);
        CHECK_CLOSE(max(x, axis), ref_reduce(x, axis, ref_max, dt), 0, 0);
        CHECK_CLOSE(min(x, axis), ref_reduce(x, axis, ref_min, dt), 0, 0);
        CHECK_CLOSE(logsumexp(x, axis), ref_reduce(x, axis, ref_lse, dt), rtol, 1e-6);
        CHECK_CLOSE(norm(x, axis),
                    ref_reduce(
                        x,
                        axis,
                        [](const auto& v) {
                          double s = 0;
                          for (double a : v) s += a * a;
                          return std::sqrt(s);
                        },
                        dt),
                    rtol,
                    1e-6);
        CHECK_CLOSE(argmax(x, axis), ref_reduce(x, axis, ref_argmax, kInt64), 0, 0);
        Tensor kept = sum(x, axis, true);
        CHECK(kept.dim() == x.dim());
        CHECK(kept.shape()[axis] == 1);
      }
    }
  }

  TEST_CASE("full reductions / multi-axis and empty cases") {
    Tensor x = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}, kFloat64);
    CHECK(sum(x).item() == 21);
    CHECK(mean(x).item() == 3.5);
    CHECK(max(x).item() == 6);
    CHECK(min(x).item() == 1);
    CHECK(sum(x, std::vector<int>{0, 1}).item() == 21);
    CHECK(sum(x, std::vector<int>{1, 0}, true).shape() == Shape{1, 1});
    CHECK(mean(x, std::vector<int>{-1}).to_vector<double>() == std::vector<double>{2, 5});
    CHECK(sum(zeros({0, 3})).item() == 0);
    CHECK(sum(zeros({0, 3}), 0).to_vector<double>() == std::vector<double>{0, 0, 0});
    CHECK_THROWS_WITH_AS(
        max(zeros({0, 3}), 0), doctest::Contains("max: cannot reduce an empty axis"), ShapeError);
    CHECK_THROWS_WITH_AS(
        sum(x, std::vector<int>{1, 1}), doctest::Contains("repeated axis"), ValueError);
    CHECK_THROWS_WITH_AS(
        sum(x, 2), doctest::Contains("sum: axis 2 out of range for rank 2"), ValueError);
  }

  TEST_CASE("a large sum is accurate and independent of the thread count") {
    Tensor x = random_tensor({1 << 20}, kFloat32, 5, 0, 1);
    double ref = 0;
    for (float v : x.to_vector<float>()) ref += v;
    Tensor one, two;
    {
      testing::ThreadCountGuard g(1);
      one = sum(x);
    }
    {
      testing::ThreadCountGuard g(2);
      two = sum(x);
    }
    CHECK(testing::bitwise_equal(one, two));
    CHECK(one.item() == doctest::Approx(ref).epsilon(1e-6));
  }

  TEST_CASE("column sums are summed in row order at any thread count") {
    // [30000, 50]: one outer slice, so the threads split the 50 columns; each column must still
    // be the float sum of its rows in order (training results do not depend on the threads).
    const int64_t rows = 30000, cols = 50;
    Tensor x = random_tensor({rows, cols}, kFloat32, 6, -1, 1);
    const std::vector<float> v = x.to_vector<float>();
    std::vector<float> want(cols, 0.0f), want_max(cols, -INFINITY);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        want[c] += v[r * cols + c];
        want_max[c] = std::max(want_max[c], v[r * cols + c]);
      }
    }
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      testing::ThreadCountGuard g(threads);
      CHECK(sum(x, 0).to_vector<float>() == want);
      CHECK(max(x, 0).to_vector<float>() == want_max);
    }
  }

  TEST_CASE("NaN propagates and argmax ties pick the lowest index") {
    Tensor x = from_vector(std::vector<double>{1, NAN, 3, 3, 3, 1}, {2, 3}, kFloat32);
    Tensor m = max(x, 1);
    CHECK(std::isnan(m.flat(0)));
    CHECK(m.flat(1) == 3);
    CHECK(std::isnan(sum(x).item()));
    CHECK(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
    CHECK(argmin(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 2});
    Tensor ties = from_vector(std::vector<double>{2, 5, 5, 5}, {4});
    CHECK(argmax(ties, 0).item() == 1);
    CHECK(argmax(from_vector(std::vector<int64_t>{3, 9, 9}, {3}), 0).item() == 1);
    // Column reductions (inner > 1) propagate NaN too.
    Tensor col = from_vector(std::vector<double>{1, 2, NAN, 0}, {2, 2});
    CHECK(std::isnan(max(col, 0).flat(0)));
    CHECK(max(col, 0).flat(1) == 2);
  }

  TEST_CASE("logsumexp handles -inf / +inf and large values") {
    const double inf = std::numeric_limits<double>::infinity();
    Tensor x = from_vector(std::vector<double>{-inf, -inf, 1e4, 1e4, 0, inf}, {3, 2}, kFloat32);
    Tensor l = logsumexp(x, 1);
    CHECK(l.flat(0) == -inf);
    CHECK(l.flat(1) == doctest::Approx(1e4 + std::log(2.0)));
    CHECK(l.flat(2) == inf);
  }

  TEST_CASE("sum_to_shape un-broadcasts and broadcast_to materialises") {
    Tensor x = random_tensor({2, 3, 4}, kFloat64, 3);
    Tensor r = sum_to_shape(x, {3, 1});
    CHECK(r.shape() == Shape{3, 1});
    CHECK_CLOSE(r, sum(sum(x, 0), 1, true), 1e-14, 0);
    CHECK(sum_to_shape(x, {}).item() == doctest::Approx(sum(x).item()));
    CHECK(sum_to_shape(x, x.shape()).same_storage(x));
    CHECK_THROWS_WITH_AS(
        sum_to_shape(x, {5}), doctest::Contains("is not a broadcast of [5]"), ShapeError);
    Tensor b = broadcast_to(tensor({1, 2}, kFloat64).reshape({2, 1}), {2, 3});
    CHECK(b.to_vector<double>() == std::vector<double>{1, 1, 1, 2, 2, 2});
    CHECK_THROWS_AS(broadcast_to(zeros({3}), {2, 4}), ShapeError);
  }
}
