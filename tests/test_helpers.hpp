// Helpers shared by the test files: comparisons that report the worst element and both shapes.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <sstream>
#include <string>

#include "core/parallel.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"

namespace attnlab::testing {

// Empty string when a and b agree (|a - b| <= atol + rtol |b|, NaN == NaN at the same place);
// otherwise a message naming the worst element.
inline std::string compare(const Tensor& a, const Tensor& b, double rtol, double atol) {
  std::ostringstream os;
  if (a.shape() != b.shape()) {
    os << "shapes differ: " << a.shape() << " vs " << b.shape();
    return os.str();
  }
  double worst = 0;
  int64_t at = -1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.flat(i), y = b.flat(i);
    if ((std::isnan(x) && std::isnan(y)) || x == y)
      continue;
    const double excess = std::fabs(x - y) - (atol + rtol * std::fabs(y));
    if (std::isnan(excess) || excess > worst) {
      worst = std::isnan(excess) ? INFINITY : excess;
      at = i;
    }
  }
  if (at < 0)
    return "";
  os << "worst element " << at << " of " << a.shape() << ": " << a.flat(at) << " vs " << b.flat(at)
     << " (rtol " << rtol << ", atol " << atol << ")";
  return os.str();
}

// Uniform random tensor in [lo, hi) from a fixed seed (each call site passes its own seed).
inline Tensor random_tensor(
    const Shape& shape, DType dtype, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  return rand(shape, RngKey{seed, 7}, dtype, lo, hi);
}

// Sets the kernel thread count for one scope and restores it afterwards.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int n) : saved_(num_threads()) { set_num_threads(n); }
  ~ThreadCountGuard() { set_num_threads(saved_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

// Bitwise equality of two tensors (same shape, dtype and bytes).
inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

}  // namespace attnlab::testing

#define CHECK_CLOSE(a, b, rtol, atol)                                       \
  do {                                                                      \
    const std::string _msg = ::attnlab::testing::compare(a, b, rtol, atol); \
    CHECK_MESSAGE(_msg.empty(), _msg);                                      \
  } while (0)
