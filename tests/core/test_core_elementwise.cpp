#include <doctest/doctest.h>

#include <cmath>
#include <functional>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using attnlab::testing::random_tensor;

namespace {

// Reference: apply f element by element in double.
Tensor ref_unary(const Tensor& x, const std::function<double(double)>& f) {
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  for (int64_t i = 0; i < x.numel(); ++i) {
    dispatch_float(x.dtype(), "ref", [&](auto tag) {
      using T = decltype(tag);
      y.data<T>()[i] = static_cast<T>(f(x.flat(i)));
    });
  }
  return y;
}

// Reference broadcasting by explicit index arithmetic.
Tensor ref_binary(const Tensor& a,
                  const Tensor& b,
                  const std::function<double(double, double)>& f) {
  const Shape out = broadcast_shapes(a.shape(), b.shape(), "ref");
  Tensor y = Tensor::empty(out, a.dtype());
  auto source_index = [&](const Shape& s, int64_t flat) {
    int64_t idx = 0, stride = 1;
    for (int d = out.rank() - 1; d >= 0; --d) {
      const int64_t coord = flat % out[d];
      flat /= out[d];
      const int sd = d - (out.rank() - s.rank());
      if (sd >= 0) {
        idx += (s[sd] == 1 ? 0 : coord) * stride;
        stride *= s[sd];
      }
    }
    return idx;
  };
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double v = f(a.flat(source_index(a.shape(), i)), b.flat(source_index(b.shape(), i)));
    dispatch_float(a.dtype(), "ref", [&](auto tag) {
      using T = decltype(tag);
      y.data<T>()[i] = static_cast<T>(v);
    });
  }
  return y;
}

double tol(DType dt) {
  return dt == kFloat32 ? 2e-6 : 1e-14;
}

}  // namespace

TEST_SUITE("core.elementwise") {
  TEST_CASE_TEMPLATE("unary ops match std:: functions", T, float, double) {
    const DType dt = dtype_of<T>();
    struct Case {
      const char* name;
      std::function<Tensor(const Tensor&)> op;
      std::function<double(double)> ref;
      double lo, hi;
    };
    const std::vector<Case> cases = {
        {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, -5, 5},
        {"abs",
         [](const Tensor& x) { return abs(x); },
         [](double v) { return std::fabs(v); },
         -5,
         5},
        {"exp",
         [](const Tensor& x) { return exp(x); },
         [](double v) { return std::exp(v); },
         -80,
         80},
        {"log",
         [](const Tensor& x) { return log(x); },
         [](double v) { return std::log(v); },
         1e-30,
         1e30},
        {"log1p",
         [](const Tensor& x) { return log1p(x); },
         [](double v) { return std::log1p(v); },
         -0.9,
         10},
        {"expm1",
         [](const Tensor& x) { return expm1(x); },
         [](double v) { return std::expm1(v); },
         -5,
         5},
        {"sqrt",
         [](const Tensor& x) { return sqrt(x); },
         [](double v) { return std::sqrt(v); },
         0,
         100},
        {"rsqrt",
         [](const Tensor& x) { return rsqrt(x); },
         [](double v) { return 1 / std::sqrt(v); },
         0.01,
         100},
        {"square",
         [](const Tensor& x) { return square(x); },
         [](double v) { return v * v; },
         -5,
         5},
        {"reciprocal",
         [](const Tensor& x) { return reciprocal(x); },
         [](double v) { return 1 / v; },
         0.1,
         5},
        {"tanh",
         [](const Tensor& x) { return tanh(x); },
         [](double v) { return std::tanh(v); },
         -10,
         10},
        {"sigmoid",
         [](const Tensor& x) { return sigmoid(x); },
         [](double v) { return 1 / (1 + std::exp(-v)); },
         -50,
         50},
        {"relu",
         [](const Tensor& x) { return relu(x); },
         [](double v) { return v > 0 ? v : 0; },
         -5,
         5},
        {"elu",
         [](const Tensor& x) { return elu(x, 0.7); },
         [](double v) { return v > 0 ? v : 0.7 * std::expm1(v); },
         -5,
         5},
        {"softplus",
         [](const Tensor& x) { return softplus(x); },
         [](double v) { return std::max(v, 0.0) + std::log1p(std::exp(-std::fabs(v))); },
         -60,
         60},
        {"sin",
         [](const Tensor& x) { return sin(x); },
         [](double v) { return std::sin(v); },
         -10,
         10},
        {"cos",
         [](const Tensor& x) { return cos(x); },
         [](double v) { return std::cos(v); },
         -10,
         10},
        {"pow",
         [](const Tensor& x) { return pow(x, 1.7); },
         [](double v) { return std::pow(v, 1.7); },
         0,
         5},
        {"clamp",
         [](const Tensor& x) { return clamp(x, -0.5, 0.25); },
         [](double v) { return std::min(0.25, std::max(-0.5, v)); },
         -1,
         1},
        {"sign",
         [](const Tensor& x) { return sign(x); },
         [](double v) { return v > 0   ? 1.0
                               : v < 0 ? -1.0
                                       : 0.0; },
         -1,
         1},
    };
    uint64_t seed = 1;
    for (const Case& c : cases) {
      for (int64_t n : {0, 1, 15, 16, 17, 33, 1000, 70000}) {
        CAPTURE(c.name);
        CAPTURE(n);
        Tensor x = random_tensor({n}, dt, seed++, c.lo, c.hi);
        CHECK_CLOSE(c.op(x), ref_unary(x, c.ref), 4 * tol(dt), 1e-30);
      }
    }
  }

  TEST_CASE("unary ops: extreme values and NaN") {
    for (DType dt : {kFloat32, kFloat64}) {
      Tensor x = from_vector(std::vector<double>{-1e4, 1e4, 0, NAN}, {4}, dt);
      Tensor s = sigmoid(x), sp = softplus(x), r = relu(x);
      CHECK(s.flat(0) == 0);
      CHECK(s.flat(1) == 1);
      CHECK(sp.flat(0) == 0);
      CHECK(sp.flat(1) == 1e4);
      CHECK(std::isnan(s.flat(3)));
      CHECK(std::isnan(sp.flat(3)));
      CHECK(std::isnan(r.flat(3)));
      CHECK(std::isnan(sign(x).flat(3)));
      CHECK(exp(x).flat(0) == 0);
      CHECK(std::isinf(exp(x).flat(1)));
      CHECK(nan_to_num(x, -7).flat(3) == -7);
    }
  }

  TEST_CASE_TEMPLATE("binary ops broadcast like numpy", T, float, double) {
    const DType dt = dtype_of<T>();
    const std::vector<std::pair<Shape, Shape>> shapes = {
        {{5}, {5}},
        {{3, 4}, {4}},
        {{3, 4}, {3, 1}},
        {{3, 1}, {1, 4}},
        {{2, 3, 4}, {}},
        {{}, {2, 3}},
        {{1}, {7}},
        {{2, 1, 5}, {3, 1}},
        {{0, 3}, {3}},
        {{2, 0}, {1, 1}},
        {{4, 1, 17}, {1, 6, 17}},
        {{2, 3, 1, 2}, {3, 5, 1}},
        {{1, 1}, {1, 1}},
        {{37}, {1}},
    };
    uint64_t seed = 100;
    for (const auto& [sa, sb] : shapes) {
      CAPTURE(sa);
      CAPTURE(sb);
      Tensor a = random_tensor(sa, dt, seed++, -2, 2), b = random_tensor(sb, dt, seed++, 0.5, 2);
      CHECK_CLOSE(
          add(a, b), ref_binary(a, b, [](double x, double y) { return x + y; }), tol(dt), 0);
      CHECK_CLOSE(
          sub(a, b), ref_binary(a, b, [](double x, double y) { return x - y; }), tol(dt), 0);
      CHECK_CLOSE(
          mul(a, b), ref_binary(a, b, [](double x, double y) { return x * y; }), tol(dt), 0);
      CHECK_CLOSE(
          div(a, b), ref_binary(a, b, [](double x, double y) { return x / y; }), tol(dt), 0);
      CHECK_CLOSE(pow(b, a),
                  ref_binary(b, a, [](double x, double y) { return std::pow(x, y); }),
                  4 * tol(dt),
                  0);
      CHECK_CLOSE(
          maximum(a, b), ref_binary(a, b, [](double x, double y) { return std::max(x, y); }), 0, 0);
      CHECK_CLOSE(
          minimum(a, b), ref_binary(a, b, [](double x, double y) { return std::min(x, y); }), 0, 0);
      CHECK_CLOSE(
          gt(a, b), ref_binary(a, b, [](double x, double y) { return double(x > y); }), 0, 0);
      CHECK_CLOSE(
          le(a, b), ref_binary(a, b, [](double x, double y) { return double(x <= y); }), 0, 0);
      CHECK_CLOSE(eq(a, a), ref_binary(a, a, [](double, double) { return 1.0; }), 0, 0);
    }
  }

  TEST_CASE("scalar operands / where and comparisons") {
    Tensor a = tensor({1, -2, 3}, kFloat64);
    CHECK((a + 1.0).to_vector<double>() == std::vector<double>{2, -1, 4});
    CHECK((2.0 - a).to_vector<double>() == std::vector<double>{1, 4, -1});
    CHECK((a * 2.0).to_vector<double>() == std::vector<double>{2, -4, 6});
    CHECK((6.0 / a).to_vector<double>() == std::vector<double>{6, -3, 2});
    CHECK(gt(a, 0.0).to_vector<double>() == std::vector<double>{1, 0, 1});
    Tensor cond = from_vector(std::vector<double>{1, 0}, {2, 1}, kFloat64);
    Tensor w = where(cond, a, full({1}, 9, kFloat64));
    CHECK(w.shape() == Shape{2, 3});
    CHECK(w.to_vector<double>() == std::vector<double>{1, -2, 3, 9, 9, 9});
    Tensor n = tensor({NAN, 1}, kFloat64);
    CHECK(std::isnan(maximum(n, tensor({0, 0}, kFloat64)).flat(0)));
    CHECK(std::isnan(maximum(tensor({0, 0}, kFloat64), n).flat(0)));
    CHECK(lt(n, tensor({5, 5}, kFloat64)).to_vector<double>() == std::vector<double>{0, 1});
  }

  TEST_CASE("binary ops reject mismatched dtypes and shapes with clear messages") {
    Tensor a = zeros({2, 3}, kFloat32), b = zeros({2, 3}, kFloat64), c = zeros({4, 3});
    CHECK_THROWS_WITH_AS(add(a, b),
                         doctest::Contains("add: dtypes differ: float32 [2, 3] vs float64 [2, 3]"),
                         DTypeError);
    CHECK_THROWS_WITH_AS(mul(a, c),
                         doctest::Contains("mul: shapes [2, 3] and [4, 3] cannot be broadcast"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(exp(zeros({2}, kInt64)),
                         doctest::Contains("exp: expected a float32 or float64 tensor, got int64"),
                         DTypeError);
  }

  TEST_CASE("in-place updates and the non-finite check") {
    Tensor y = tensor({1, 2, 3}), x = tensor({1, 1, 1});
    axpy_(y, 2.0, x);
    CHECK(y.to_vector<double>() == std::vector<double>{3, 4, 5});
    add_(y, x);
    scale_(y, 0.5);
    CHECK(y.to_vector<double>() == std::vector<double>{2, 2.5, 3});
    CHECK_THROWS_AS(add_(y, zeros({2})), ShapeError);
    CHECK_FALSE(has_nonfinite(y));
    CHECK(has_nonfinite(tensor({1, INFINITY})));
    CHECK(has_nonfinite(tensor({NAN})));
  }

  TEST_CASE("results do not depend on the thread count") {
    Tensor a = random_tensor({300, 257}, kFloat32, 11), b = random_tensor({257}, kFloat32, 12);
    Tensor one, two;
    {
      testing::ThreadCountGuard g(1);
      one = exp(add(a, b));
    }
    {
      testing::ThreadCountGuard g(2);
      two = exp(add(a, b));
    }
    CHECK(testing::bitwise_equal(one, two));
  }
}
