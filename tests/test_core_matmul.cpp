#include <doctest/doctest.h>

#include <cmath>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using attnlab::testing::random_tensor;

namespace {

// Reference: op(A) op(B) for 2-D tensors, accumulated in double.
Tensor ref_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t M = ta ? a.size(1) : a.size(0), K = ta ? a.size(0) : a.size(1);
  const int64_t N = tb ? b.size(0) : b.size(1);
  Tensor c = Tensor::empty({M, N}, a.dtype());
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        s += (ta ? a.get({k, i}) : a.get({i, k})) * (tb ? b.get({j, k}) : b.get({k, j}));
      }
      c.set({i, j}, s);
    }
  }
  return c;
}

double tol(DType dt, int64_t k) {
  return (dt == kFloat32 ? 2e-6 : 1e-14) * std::sqrt(double(k) + 1);
}

}  // namespace

TEST_SUITE("core.matmul") {
  TEST_CASE_TEMPLATE(
      "all transpose combinations and awkward sizes match the reference", T, float, double) {
    const DType dt = dtype_of<T>();
    uint64_t seed = 1;
    for (int64_t m : {1, 2, 7, 13, 31, 65}) {
      for (int64_t n : {1, 17, 33, 100}) {
        for (int64_t k : {1, 3, 31, 257}) {
          for (int ta = 0; ta < 2; ++ta) {
            for (int tb = 0; tb < 2; ++tb) {
              CAPTURE(m);
              CAPTURE(n);
              CAPTURE(k);
              CAPTURE(ta);
              CAPTURE(tb);
              Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, dt, seed++);
              Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, dt, seed++);
              CHECK_CLOSE(matmul(a, b, ta, tb), ref_matmul(a, b, ta, tb), tol(dt, k), tol(dt, k));
            }
          }
        }
      }
    }
  }

  TEST_CASE("blocks larger than one cache panel (K > KC / M > MC)") {
    Tensor a = random_tensor({300, 600}, kFloat64, 5), b = random_tensor({600, 70}, kFloat64, 6);
    CHECK_CLOSE(matmul(a, b), ref_matmul(a, b, false, false), 1e-12, 1e-12);
  }

  TEST_CASE("batch dimensions broadcast") {
    Tensor a = random_tensor({2, 1, 5, 4}, kFloat64, 7), b = random_tensor({3, 4, 6}, kFloat64, 8);
    Tensor c = matmul(a, b);
    CHECK(c.shape() == Shape{2, 3, 5, 6});
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 3; ++j) {
        Tensor ai = slice(a, 0, i, i + 1).reshape({5, 4});
        Tensor bj = slice(b, 0, j, j + 1).reshape({4, 6});
        Tensor cij = slice(slice(c, 0, i, i + 1), 1, j, j + 1).reshape({5, 6});
        CHECK_CLOSE(cij, ref_matmul(ai, bj, false, false), 1e-13, 1e-13);
      }
    }
    Tensor w = random_tensor({4, 3}, kFloat64, 9);  // [B, H, L, d] @ [d, e]
    CHECK(matmul(random_tensor({2, 2, 5, 4}, kFloat64, 10), w).shape() == Shape{2, 2, 5, 3});
  }

  TEST_CASE("size-zero dimensions") {
    CHECK(matmul(zeros({0, 3}), zeros({3, 4})).shape() == Shape{0, 4});
    Tensor c = matmul(ones({2, 0}), ones({0, 3}));  // K = 0: zeros
    CHECK(c.shape() == Shape{2, 3});
    CHECK(max(abs(c)).item() == 0);
  }

  TEST_CASE_TEMPLATE(
      "raw gemm: alpha / beta / leading dimensions / beta = 0 ignores NaN", T, float, double) {
    const DType dt = dtype_of<T>();
    // A 5x4 block inside a 7x9 array, B 4x6 inside 4x8, C 5x6 inside 5x10.
    Tensor A = random_tensor({7, 9}, dt, 11), B = random_tensor({4, 8}, dt, 12);
    Tensor C = random_tensor({5, 10}, dt, 13);
    Tensor C0 = C.clone();
    gemm<T>(false, false, 5, 6, 4, T(2), A.data<T>(), 9, B.data<T>(), 8, T(0.5), C.data<T>(), 10);
    Tensor a = slice(slice(A, 0, 0, 5), 1, 0, 4), b = slice(B, 1, 0, 6);
    Tensor expect = add(mul(ref_matmul(a, b, false, false), 2.0), mul(slice(C0, 1, 0, 6), 0.5));
    CHECK_CLOSE(slice(C, 1, 0, 6), expect, tol(dt, 4), tol(dt, 4));
    CHECK_CLOSE(slice(C, 1, 6, 10), slice(C0, 1, 6, 10), 0, 0);  // outside the block: untouched
    Tensor N = full({5, 6}, NAN, dt);
    gemm<T>(false, false, 5, 6, 4, T(1), A.data<T>(), 9, B.data<T>(), 8, T(0), N.data<T>(), 6);
    CHECK_FALSE(has_nonfinite(N));
  }

  TEST_CASE("results are bit-identical for 1 and 2 threads") {
    Tensor a = random_tensor({333, 517}, kFloat32, 14), b = random_tensor({517, 211}, kFloat32, 15);
    Tensor one, two, batched1, batched2;
    Tensor x = random_tensor({3, 40, 70}, kFloat32, 16), y = random_tensor({70, 50}, kFloat32, 17);
    {
      testing::ThreadCountGuard g(1);
      one = matmul(a, b, false, false);
      batched1 = matmul(x, y);
    }
    {
      testing::ThreadCountGuard g(2);
      two = matmul(a, b, false, false);
      batched2 = matmul(x, y);
    }
    CHECK(testing::bitwise_equal(one, two));
    CHECK(testing::bitwise_equal(batched1, batched2));
  }

  TEST_CASE("errors name the op / the shapes and the flags") {
    CHECK_THROWS_WITH_AS(
        matmul(zeros({32, 64}), zeros({65, 16})),
        doctest::Contains(
            "matmul: inner dimensions differ: lhs [32, 64] vs rhs [65, 16] (trans_a=0, trans_b=0)"),
        ShapeError);
    CHECK_THROWS_WITH_AS(
        matmul(zeros({4}), zeros({4, 2})), doctest::Contains("at least 2 dimensions"), ShapeError);
    CHECK_THROWS_WITH_AS(matmul(zeros({2, 2}), zeros({2, 2}, kFloat64)),
                         doctest::Contains("dtypes differ"),
                         DTypeError);
    CHECK_THROWS_WITH_AS(matmul(zeros({2, 3, 4}), zeros({5, 4, 4})),
                         doctest::Contains("cannot be broadcast"),
                         ShapeError);
    CHECK_THROWS_AS(matmul(zeros({2, 2}, kInt64), zeros({2, 2}, kInt64)), DTypeError);
  }
}
