#include "core/rng.hpp"

#include <cmath>

#include "core/parallel.hpp"

namespace attnlab {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// 53 random bits -> (0, 1): (k + 0.5) / 2^53 never hits 0 or 1, so log() is always finite.
inline double to_open01(uint32_t a, uint32_t b) {
  const uint64_t k = ((static_cast<uint64_t>(a) << 32) | b) >> 11;
  return (static_cast<double>(k) + 0.5) * (1.0 / 9007199254740992.0);
}

// Fills a tensor with value_at(i). When `upper` is finite, values that rounding to the dtype pushed
// onto it are moved just below it, so that uniform samples stay in [low, high) in float32 too.
template <class F>
Tensor generate(
    const Shape& shape, DType dtype, const char* op, F&& value_at, double upper = INFINITY) {
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_float(dtype, op, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    parallel_for(0, t.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T v = static_cast<T>(value_at(static_cast<uint64_t>(i)));
        if (v >= static_cast<T>(upper))
          v = std::nextafter(static_cast<T>(upper), T(-INFINITY));
        p[i] = v;
      }
    });
  });
  return t;
}

}  // namespace

std::array<uint32_t, 4> philox4x32(RngKey key, uint64_t index) {
  uint32_t c0 = static_cast<uint32_t>(index), c1 = static_cast<uint32_t>(index >> 32);
  uint32_t c2 = static_cast<uint32_t>(key.stream), c3 = static_cast<uint32_t>(key.stream >> 32);
  uint32_t k0 = static_cast<uint32_t>(key.seed), k1 = static_cast<uint32_t>(key.seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c0, hi0, lo0);
    mulhilo(kMul1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {c0, c1, c2, c3};
}

double uniform01(RngKey key, uint64_t index) {
  const auto r = philox4x32(key, index);
  return to_open01(r[0], r[1]);
}

int64_t uniform_int(RngKey key, uint64_t index, int64_t low, int64_t high) {
  ATTNLAB_CHECK(high > low, ValueError, "uniform_int: empty range [", low, ", ", high, ")");
  const auto r = philox4x32(key, index);
  const uint64_t range = static_cast<uint64_t>(high - low);
  const uint64_t x = (static_cast<uint64_t>(r[0]) << 32) | r[1];
  // Lemire's multiply-shift: bias below range / 2^64, i.e. nil for any realistic range.
  return low + static_cast<int64_t>((static_cast<unsigned __int128>(x) * range) >> 64);
}

Tensor rand(const Shape& shape, RngKey key, DType dtype, double low, double high) {
  ATTNLAB_CHECK(std::isfinite(low) && std::isfinite(high) && low < high,
                ValueError,
                "rand: need finite low < high, got [",
                low,
                ", ",
                high,
                ")");
  return generate(
      shape,
      dtype,
      "rand",
      [&](uint64_t i) {
        const auto r = philox4x32(key, i);
        const double u = static_cast<double>((((static_cast<uint64_t>(r[0]) << 32) | r[1]) >> 11)) *
                         (1.0 / 9007199254740992.0);  // [0, 1)
        return low + (high - low) * u;
      },
      high);
}

Tensor randn(const Shape& shape, RngKey key, DType dtype, double mean, double stddev) {
  ATTNLAB_CHECK(std::isfinite(mean) && std::isfinite(stddev) && stddev >= 0,
                ValueError,
                "randn: need finite mean and stddev >= 0, got mean ",
                mean,
                ", stddev ",
                stddev);
  return generate(shape, dtype, "randn", [&](uint64_t i) {
    const auto r = philox4x32(key, i);
    const double u1 = to_open01(r[0], r[1]), u2 = to_open01(r[2], r[3]);
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  });
}

Tensor bernoulli(const Shape& shape, double p, RngKey key, DType dtype) {
  ATTNLAB_CHECK(
      p >= 0.0 && p <= 1.0, ValueError, "bernoulli: probability must be in [0, 1], got ", p);
  return generate(
      shape, dtype, "bernoulli", [&](uint64_t i) { return uniform01(key, i) < p ? 1.0 : 0.0; });
}

Tensor gumbel(const Shape& shape, RngKey key, DType dtype) {
  return generate(
      shape, dtype, "gumbel", [&](uint64_t i) { return -std::log(-std::log(uniform01(key, i))); });
}

Tensor randint(const Shape& shape, int64_t low, int64_t high, RngKey key) {
  ATTNLAB_CHECK(high > low, ValueError, "randint: empty range [", low, ", ", high, ")");
  Tensor t = Tensor::empty(shape, kInt64);
  int64_t* p = t.data<int64_t>();
  parallel_for(0, t.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) p[i] = uniform_int(key, static_cast<uint64_t>(i), low, high);
  });
  return t;
}

}  // namespace attnlab
