#include <doctest/doctest.h>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;

TEST_SUITE("core.shape_ops") {
  TEST_CASE("permute matches index arithmetic for every permutation of a 4-D tensor") {
    for (DType dt : {kFloat32, kFloat64, kInt64}) {
      Tensor x = arange(2 * 3 * 4 * 5, dt).reshape({2, 3, 4, 5});
      std::vector<int> perm = {0, 1, 2, 3};
      do {
        Tensor y = permute(x, perm);
        for (int d = 0; d < 4; ++d) CHECK(y.shape()[d] == x.shape()[perm[d]]);
        for (int64_t i = 0; i < y.numel(); ++i) {
          int64_t rem = i, idx[4];
          for (int d = 3; d >= 0; --d) {
            idx[d] = rem % y.shape()[d];
            rem /= y.shape()[d];
          }
          int64_t src[4];
          for (int d = 0; d < 4; ++d) src[perm[d]] = idx[d];
          CHECK(y.flat(i) == x.get({src[0], src[1], src[2], src[3]}));
        }
      } while (std::next_permutation(perm.begin(), perm.end()));
    }
    CHECK_THROWS_WITH_AS(permute(zeros({2, 3}), {0, 0}), doctest::Contains("repeated"), ValueError);
    CHECK_THROWS_AS(permute(zeros({2, 3}), {0}), ShapeError);
    CHECK(transpose(arange(6).reshape({2, 3}), 0, 1).to_vector<double>() ==
          std::vector<double>{0, 3, 1, 4, 2, 5});
  }

  TEST_CASE("slice follows Python semantics") {
    Tensor x = arange(10, kInt64);
    CHECK(slice(x, 0, 2, 5).to_vector<int64_t>() == std::vector<int64_t>{2, 3, 4});
    CHECK(slice(x, 0, -3, 100).to_vector<int64_t>() == std::vector<int64_t>{7, 8, 9});
    CHECK(slice(x, 0, 1, 9, 3).to_vector<int64_t>() == std::vector<int64_t>{1, 4, 7});
    CHECK(slice(x, 0, 5, 2).numel() == 0);
    Tensor m = arange(12).reshape({3, 4});
    CHECK(slice(m, 1, 1, 3).to_vector<double>() == std::vector<double>{1, 2, 5, 6, 9, 10});
    CHECK_THROWS_AS(slice(x, 0, 0, 3, 0), ValueError);
  }

  TEST_CASE("concat / stack / pad / squeeze") {
    Tensor a = arange(6).reshape({2, 3}), b = full({2, 1}, 9);
    CHECK(concat({a, b}, 1).to_vector<double>() == std::vector<double>{0, 1, 2, 9, 3, 4, 5, 9});
    CHECK(concat({a, a}, 0).shape() == Shape{4, 3});
    CHECK(concat({a, zeros({2, 0})}, -1).shape() == Shape{2, 3});
    CHECK_THROWS_WITH_AS(concat({a, zeros({3, 1})}, 1),
                         doctest::Contains("concat: tensor 1 has shape [3, 1]"),
                         ShapeError);
    CHECK_THROWS_AS(concat({a, zeros({2, 1}, kFloat64)}, 1), DTypeError);
    Tensor s = stack({a, a}, 1);
    CHECK(s.shape() == Shape{2, 2, 3});
    CHECK(s.get({1, 1, 2}) == 5);
    CHECK(stack({a, a}, -1).shape() == Shape{2, 3, 2});
    Tensor p = pad(arange(4).reshape({2, 2}), {{1, 0}, {0, 2}}, -1);
    CHECK(p.shape() == Shape{3, 4});
    CHECK(p.to_vector<double>() == std::vector<double>{-1, -1, -1, -1, 0, 1, -1, -1, 2, 3, -1, -1});
    CHECK_THROWS_AS(pad(a, {{1, 1}}), ShapeError);
    CHECK(unsqueeze(a, -1).shape() == Shape{2, 3, 1});
    CHECK(unsqueeze(a, 0).same_storage(a));
    CHECK(squeeze(unsqueeze(a, 1), 1).shape() == Shape{2, 3});
    CHECK_THROWS_WITH_AS(squeeze(a, 0), doctest::Contains("is not 1"), ShapeError);
  }
}
