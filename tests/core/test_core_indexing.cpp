#include <doctest/doctest.h>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using attnlab::testing::random_tensor;

TEST_SUITE("core.indexing") {
  TEST_CASE("index_select takes along any axis with any index shape") {
    Tensor x = arange(24, kFloat64).reshape({2, 3, 4});
    Tensor idx = from_vector(std::vector<int64_t>{2, 0, 2, 1}, {2, 2});
    Tensor y = index_select(x, 1, idx);
    CHECK(y.shape() == Shape{2, 2, 2, 4});
    for (int64_t a = 0; a < 2; ++a)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          for (int64_t c = 0; c < 4; ++c)
            CHECK(y.get({a, i, j, c}) == x.get({a, static_cast<int64_t>(idx.get({i, j})), c}));
    // Embedding lookup: rows of a table, int64 tables too.
    Tensor table = arange(12, kInt64).reshape({4, 3});
    Tensor rows = index_select(table, 0, from_vector(std::vector<int64_t>{3, 3, 0}, {3}));
    CHECK(rows.to_vector<int64_t>() == std::vector<int64_t>{9, 10, 11, 9, 10, 11, 0, 1, 2});
  }

  TEST_CASE_TEMPLATE("index_add is the adjoint of index_select", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor x = random_tensor({3, 7, 5}, dt, 1);
    Tensor idx = from_vector(std::vector<int64_t>{6, 0, 6, 6, 2, 3}, {2, 3});  // repeats accumulate
    for (int axis : {1}) {
      Tensor y = index_select(x, axis, idx);
      Tensor g = random_tensor(y.shape(), dt, 2);
      const double lhs = sum(mul(y, g)).item();
      const double rhs = sum(mul(x, index_add(x.shape(), axis, idx, g))).item();
      CHECK(lhs == doctest::Approx(rhs).epsilon(dt == kFloat32 ? 1e-5 : 1e-12));
    }
    Tensor g = ones({4, 2}, dt);
    Tensor acc = index_add({3, 2}, 0, from_vector(std::vector<int64_t>{1, 1, 1, 0}, {4}), g);
    CAPTURE(acc.str());
    CHECK(acc.to_vector<double>() == std::vector<double>{1, 1, 3, 3, 0, 0});
  }

  TEST_CASE("gather and scatter_add") {
    Tensor x = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}, kFloat64);
    Tensor idx = from_vector(std::vector<int64_t>{2, 0, 1, 1}, {2, 2});
    Tensor y = gather(x, 1, idx);
    CHECK(y.to_vector<double>() == std::vector<double>{3, 1, 5, 5});
    Tensor s = scatter_add({2, 3}, 1, idx, ones({2, 2}, kFloat64));
    CHECK(s.to_vector<double>() == std::vector<double>{1, 0, 1, 0, 2, 0});
    Tensor g = random_tensor({2, 2}, kFloat64, 3);
    CHECK(sum(mul(gather(x, 1, idx), g)).item() ==
          doctest::Approx(sum(mul(x, scatter_add(x.shape(), 1, idx, g))).item()));
    Tensor y0 = gather(x, 0, from_vector(std::vector<int64_t>{1, 0, 1}, {1, 3}));
    CHECK(y0.to_vector<double>() == std::vector<double>{4, 2, 6});
  }

  TEST_CASE("one_hot") {
    Tensor oh = one_hot(from_vector(std::vector<int64_t>{2, 0}, {2}), 3);
    CHECK(oh.shape() == Shape{2, 3});
    CHECK(oh.to_vector<double>() == std::vector<double>{0, 0, 1, 1, 0, 0});
    CHECK(one_hot(zeros({2, 0}, kInt64), 4).shape() == Shape{2, 0, 4});
  }

  TEST_CASE("bad indices give clear errors") {
    Tensor x = zeros({4, 3});
    CHECK_THROWS_WITH_AS(
        index_select(x, 0, from_vector(std::vector<int64_t>{4}, {1})),
        doctest::Contains("index_select: index 4 out of range [0, 4) for axis 0 of shape [4, 3]"),
        ValueError);
    CHECK_THROWS_WITH_AS(index_select(x, 0, from_vector(std::vector<int64_t>{-1}, {1})),
                         doctest::Contains("index -1 out of range"),
                         ValueError);
    CHECK_THROWS_WITH_AS(
        index_select(x, 0, zeros({1})), doctest::Contains("index must be int64"), DTypeError);
    CHECK_THROWS_WITH_AS(index_add({4, 3}, 0, zeros({2}, kInt64), zeros({3, 3})),
                         doctest::Contains("index_add: source [3, 3] does not match [2, 3]"),
                         ShapeError);
    CHECK_THROWS_AS(gather(x, 1, zeros({4}, kInt64)), ShapeError);
    CHECK_THROWS_AS(one_hot(from_vector(std::vector<int64_t>{3}, {1}), 3), ValueError);
  }
}

TEST_SUITE("core.indexing") {
  TEST_CASE("unique returns the sorted distinct values and the inverse that rebuilds the input") {
    const Tensor x = from_vector(std::vector<int64_t>{5, 2, 5, 0, 2, 9}, {2, 3});
    Tensor inverse;
    const Tensor u = unique(x, &inverse);
    REQUIRE(u.shape() == Shape{4});
    const std::vector<int64_t> want = {0, 2, 5, 9};
    for (int64_t i = 0; i < 4; ++i) CHECK(u.data<int64_t>()[i] == want[i]);
    CHECK(inverse.shape() == x.shape());
    const Tensor rebuilt = index_select(u, 0, inverse);
    for (int64_t i = 0; i < x.numel(); ++i)
      CHECK(rebuilt.data<int64_t>()[i] == x.data<int64_t>()[i]);
    CHECK(unique(zeros({0}, kInt64)).numel() == 0);
    CHECK_THROWS_AS(unique(zeros({3}, kFloat32)), DTypeError);
  }
}
