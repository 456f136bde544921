#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using attnlab::testing::random_tensor;

namespace {

// Reference op(A) op(B) on row-major arrays with leading dimensions, accumulated in double.
template <class T>
std::vector<double> naive_gemm(bool ta,
                               bool tb,
                               int64_t M,
                               int64_t N,
                               int64_t K,
                               const T* A,
                               int64_t lda,
                               const T* B,
                               int64_t ldb) {
  std::vector<double> c(static_cast<std::size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double x = ta ? A[k * lda + i] : A[i * lda + k];
        const double y = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += x * y;
      }
      c[static_cast<std::size_t>(i * N + j)] = s;
    }
  }
  return c;
}

// Reference for 2-D tensors.
Tensor ref_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t M = ta ? a.size(1) : a.size(0), K = ta ? a.size(0) : a.size(1);
  const int64_t N = tb ? b.size(0) : b.size(1);
  return dispatch_float(a.dtype(), "ref_matmul", [&](auto tag) {
    using T = decltype(tag);
    return from_vector(
        naive_gemm<T>(ta, tb, M, N, K, a.data<T>(), a.size(1), b.data<T>(), b.size(1)),
        {M, N},
        a.dtype());
  });
}

// Rounding error of a K-term dot product of values in [-1, 1].
double tol(DType dt, int64_t k) {
  return (dt == kFloat32 ? 2e-6 : 4e-15) * std::sqrt(double(k) + 1);
}

Shape operand_shape(bool trans, int64_t rows, int64_t cols) {
  return trans ? Shape{cols, rows} : Shape{rows, cols};
}

void check_all_transposes(DType dt, int64_t m, int64_t n, int64_t k, uint64_t& seed) {
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      CAPTURE(m);
      CAPTURE(n);
      CAPTURE(k);
      CAPTURE(ta);
      CAPTURE(tb);
      Tensor a = random_tensor(operand_shape(ta, m, k), dt, seed++);
      Tensor b = random_tensor(operand_shape(tb, k, n), dt, seed++);
      CHECK_CLOSE(matmul(a, b, ta, tb), ref_matmul(a, b, ta, tb), tol(dt, k), tol(dt, k));
    }
  }
}

// Matrix t of a [..., r, c] tensor (t indexes the flattened batch), as a 2-D tensor.
Tensor batch_item(const Tensor& x, int64_t t) {
  const int64_t r = x.size(-2), c = x.size(-1);
  return slice(x.reshape({-1, r, c}), 0, t, t + 1).reshape({r, c});
}

// x broadcast to batch shape `batch` (its own last two dimensions kept).
Tensor expand_batch(const Tensor& x, const Shape& batch) {
  Shape s = batch;
  s.push_back(x.size(-2));
  s.push_back(x.size(-1));
  return broadcast_to(x, s);
}

}  // namespace

TEST_SUITE("core.matmul") {
  TEST_CASE_TEMPLATE(
      "every transpose combination and ragged size matches a naive loop", T, float, double) {
    // Sizes around the register tile (8 rows x 2 vectors) and the transpose block (W x W), so
    // edges are exercised in every dimension of every path.
    const DType dt = dtype_of<T>();
    uint64_t seed = 1;
    for (int64_t m : {1, 2, 7, 9, 17, 31, 65}) {
      for (int64_t n : {1, 2, 7, 17, 31, 33, 65, 100}) {
        for (int64_t k : {1, 2, 7, 31, 257}) check_all_transposes(dt, m, n, k, seed);
      }
    }
  }

  TEST_CASE_TEMPLATE("several K slices / row blocks / column panels", T, float, double) {
    const DType dt = dtype_of<T>();
    uint64_t seed = 100;
    check_all_transposes(dt, 150, 40, 1100, seed);  // K > 2 KC, M > MC
    check_all_transposes(dt, 5, 2100, 20, seed);    // N > NC
    check_all_transposes(dt, 600, 9, 530, seed);    // transposed A too wide to read in place
  }

  TEST_CASE("batch dimensions broadcast like numpy") {
    struct Case {
      Shape a, b;
      bool ta, tb;
      Shape out;
    };
    const std::vector<Case> cases = {
        {{2, 1, 5, 4}, {3, 4, 6}, false, false, {2, 3, 5, 6}},
        {{2, 2, 5, 4}, {4, 3}, false, false, {2, 2, 5, 3}},       // [B, H, L, d] @ [d, e]
        {{2, 3, 5, 4}, {2, 3, 6, 4}, false, true, {2, 3, 5, 6}},  // Q K^T
        {{1, 3, 4, 5}, {2, 1, 6, 4}, true, true, {2, 3, 5, 6}},
        {{7, 9}, {3, 9, 2}, false, false, {3, 7, 2}},
    };
    uint64_t seed = 200;
    for (const Case& c : cases) {
      for (DType dt : {kFloat32, kFloat64}) {
        CAPTURE(c.a);
        CAPTURE(c.b);
        Tensor a = random_tensor(c.a, dt, seed++), b = random_tensor(c.b, dt, seed++);
        Tensor out = matmul(a, b, c.ta, c.tb);
        REQUIRE(out.shape() == c.out);
        const Shape batch(c.out.begin(), c.out.end() - 2);
        Tensor ea = expand_batch(a, batch), eb = expand_batch(b, batch);
        for (int64_t t = 0; t < batch.numel(); ++t) {
          CHECK_CLOSE(batch_item(out, t),
                      ref_matmul(batch_item(ea, t), batch_item(eb, t), c.ta, c.tb),
                      tol(dt, 9),
                      tol(dt, 9));
        }
      }
    }
  }

  TEST_CASE("size-zero dimensions") {
    CHECK(matmul(zeros({0, 3}), zeros({3, 4})).shape() == Shape{0, 4});
    CHECK(matmul(zeros({2, 3}), zeros({3, 0})).shape() == Shape{2, 0});
    CHECK(matmul(zeros({0, 2, 3}), zeros({3, 4})).shape() == Shape{0, 2, 4});
    for (DType dt : {kFloat32, kFloat64}) {
      Tensor c = matmul(ones({2, 0}, dt), ones({0, 3}, dt));  // K = 0: zeros
      CHECK(c.shape() == Shape{2, 3});
      CHECK(c.to_vector<double>() == std::vector<double>(6, 0.0));
      CHECK(matmul(ones({0, 2}, dt), ones({3, 0}, dt), true, true).shape() == Shape{2, 3});
    }
  }

  TEST_CASE_TEMPLATE(
      "raw gemm: alpha / beta / leading dimensions wider than the block", T, float, double) {
    const DType dt = dtype_of<T>();
    const int64_t M = 19, N = 37, K = 45;
    const int64_t lda = 61, ldb = 53, ldc = 43;  // operands are blocks of bigger arrays
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        CAPTURE(ta);
        CAPTURE(tb);
        Tensor A = random_tensor({ta ? K : M, lda}, dt, 300 + ta);
        Tensor B = random_tensor({tb ? N : K, ldb}, dt, 302 + tb);
        Tensor C = random_tensor({M, ldc}, dt, 304);
        const std::vector<double> c0 = C.to_vector<double>();
        gemm<T>(
            ta, tb, M, N, K, T(-1.5), A.data<T>(), lda, B.data<T>(), ldb, T(0.5), C.data<T>(), ldc);
        const std::vector<double> prod =
            naive_gemm<T>(ta, tb, M, N, K, A.data<T>(), lda, B.data<T>(), ldb);
        const std::vector<double> c1 = C.to_vector<double>();
        int bad = 0, touched = 0;
        for (int64_t i = 0; i < M; ++i) {
          for (int64_t j = 0; j < ldc; ++j) {
            const std::size_t at = static_cast<std::size_t>(i * ldc + j);
            if (j >= N) {
              touched += c1[at] != c0[at];  // outside the block: untouched
              continue;
            }
            const double want = -1.5 * prod[static_cast<std::size_t>(i * N + j)] + 0.5 * c0[at];
            bad += std::fabs(c1[at] - want) > 2 * tol(dt, K) * (1 + std::fabs(want));
          }
        }
        CHECK(bad == 0);
        CHECK(touched == 0);
      }
    }
  }

  TEST_CASE_TEMPLATE("raw gemm with beta = 0 never reads C (NaNs do not leak)", T, float, double) {
    const DType dt = dtype_of<T>();
    Tensor A = random_tensor({20, 30}, dt, 310), B = random_tensor({30, 40}, dt, 311);
    const T nan = std::numeric_limits<T>::quiet_NaN();
    for (int64_t k : {30, 0}) {  // the kernel path and the K = 0 path
      for (T alpha : {T(1), T(0)}) {
        Tensor C = full({20, 40}, nan, dt);
        gemm<T>(false,
                false,
                20,
                40,
                k,
                alpha,
                A.data<T>(),
                30,
                B.data<T>(),
                40,
                T(0),
                C.data<T>(),
                40);
        CHECK_FALSE(has_nonfinite(C));
      }
    }
  }

  TEST_CASE_TEMPLATE(
      "gemm called inside a parallel region (fused-kernel tiles)", T, float, double) {
    const DType dt = dtype_of<T>();
    // Four 64 x 64 tiles of S = Q K^T computed by the workers of one parallel_for.
    Tensor q = random_tensor({4, 64, 64}, dt, 320), kk = random_tensor({4, 64, 64}, dt, 321);
    Tensor s = zeros({4, 64, 64}, dt);
    testing::ThreadCountGuard guard(2);
    parallel_for(0, 4, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        gemm<T>(false,
                true,
                64,
                64,
                64,
                T(0.125),
                q.data<T>() + t * 4096,
                64,
                kk.data<T>() + t * 4096,
                64,
                T(0),
                s.data<T>() + t * 4096,
                64);
      }
    });
    for (int64_t t = 0; t < 4; ++t) {
      Tensor want = mul(ref_matmul(batch_item(q, t), batch_item(kk, t), false, true), 0.125);
      CHECK_CLOSE(batch_item(s, t), want, tol(dt, 64), tol(dt, 64));
    }
  }

  TEST_CASE("results are bit-identical for 1 and 2 threads") {
    // Large enough to be split across threads (row ranges, or column ranges for the short
    // matrix), plus batches split over matrices or within them.
    struct Case {
      Shape a, b;
      bool ta, tb;
    };
    const std::vector<Case> cases = {
        {{333, 517}, {517, 211}, false, false},
        {{517, 333}, {211, 517}, true, true},
        {{333, 517}, {211, 517}, false, true},
        {{600, 333}, {600, 211}, true, false},
        {{8, 200}, {200, 3000}, false, false},
        {{3, 170, 170}, {170, 170}, false, false},
        {{5, 40, 70}, {70, 50}, false, false},
        // A recommender's Linear backward (N = 50: two float slivers, packed by rows of k across
        // the threads), with k not a multiple of the SIMD width.
        {{2001, 50}, {2001, 50}, true, false},
        {{6000, 50}, {50, 50}, false, true},
        {{6000, 50}, {50, 50}, false, false},
    };
    uint64_t seed = 400;
    for (const Case& c : cases) {
      for (DType dt : {kFloat32, kFloat64}) {
        CAPTURE(c.a);
        CAPTURE(c.b);
        Tensor a = random_tensor(c.a, dt, seed++), b = random_tensor(c.b, dt, seed++);
        Tensor one, two;
        {
          testing::ThreadCountGuard g(1);
          one = matmul(a, b, c.ta, c.tb);
        }
        {
          testing::ThreadCountGuard g(2);
          two = matmul(a, b, c.ta, c.tb);
        }
        CHECK(testing::bitwise_equal(one, two));
      }
    }
    // alpha / beta through the raw routine.
    Tensor a = random_tensor({300, 400}, kFloat32, 450),
           b = random_tensor({400, 350}, kFloat32, 451);
    Tensor c0 = random_tensor({300, 350}, kFloat32, 452);
    Tensor c1 = c0.clone(), c2 = c0.clone();
    auto run = [&](const Tensor& c) {
      gemm<float>(false,
                  false,
                  300,
                  350,
                  400,
                  1.3f,
                  a.data<float>(),
                  400,
                  b.data<float>(),
                  350,
                  0.7f,
                  c.data<float>(),
                  350);
    };
    {
      testing::ThreadCountGuard g(1);
      run(c1);
    }
    {
      testing::ThreadCountGuard g(2);
      run(c2);
    }
    CHECK(testing::bitwise_equal(c1, c2));
  }

  TEST_CASE("errors name the op / both shapes / the flags") {
    CHECK_THROWS_WITH_AS(
        matmul(zeros({32, 64}), zeros({65, 16})),
        doctest::Contains(
            "matmul: inner dimensions differ: lhs [32, 64] vs rhs [65, 16] (trans_a=0, trans_b=0)"),
        ShapeError);
    CHECK_THROWS_WITH_AS(
        matmul(zeros({32, 64}), zeros({32, 16}), false, true),
        doctest::Contains(
            "matmul: inner dimensions differ: lhs [32, 64] vs rhs [32, 16] (trans_a=0, trans_b=1)"),
        ShapeError);
    CHECK_THROWS_WITH_AS(matmul(zeros({4}), zeros({4, 2})),
                         doctest::Contains("matmul: both operands need at least 2 dimensions, got "
                                           "lhs [4] and rhs [4, 2]"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(matmul(zeros({2, 2}), zeros({2, 2}, kFloat64)),
                         doctest::Contains("matmul: dtypes differ: lhs float32 [2, 2] vs rhs "
                                           "float64 [2, 2]"),
                         DTypeError);
    CHECK_THROWS_WITH_AS(
        matmul(zeros({2, 3, 4}), zeros({5, 6, 4}), false, true),
        doctest::Contains("matmul: batch dimensions cannot be broadcast: lhs [2, 3, 4] vs rhs "
                          "[5, 6, 4] (trans_a=0, trans_b=1)"),
        ShapeError);
    CHECK_THROWS_WITH_AS(matmul(zeros({2, 2}, kInt64), zeros({2, 2}, kInt64)),
                         doctest::Contains("matmul: expected float32 or float64 operands"),
                         DTypeError);
  }
}
