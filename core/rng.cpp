#include "core/rng.hpp"

#include <algorithm>
#include <cmath>

#include "core/parallel.hpp"
#include "core/vec.hpp"

namespace attnlab {

// (k + 0.5) / 2^52 with k < 2^52 needs 53 significant bits: exact in float64, so the value is in
// [2^-53, 1 - 2^-53]. (With 53 bits, (k + 0.5) / 2^53 rounded to 1.0 for k = 2^53 - 1.)
namespace {
// Inline for the bulk loops. k < 2^52 converts exactly through int64 (one instruction; the
// unsigned conversion is a branchy sequence on x86-64 without AVX-512).
inline double open01(uint64_t bits) {
  const int64_t k = static_cast<int64_t>(bits >> 12);
  return (static_cast<double>(k) + 0.5) * (1.0 / 4503599627370496.0);
}
}  // namespace

double uniform01_from_bits(uint64_t bits) {
  return open01(bits);
}

BernoulliThreshold bernoulli_threshold(double p) {
  ATTNLAB_CHECK(p >= 0.0 && p <= 1.0,
                ValueError,
                "bernoulli_threshold: probability must be in [0, 1], got ",
                p);
  // u = (k + 0.5) / 2^52 < p  <=>  k < P - 0.5 with P = p 2^52 (exact: a power-of-two scale).
  // p < 1: P < 2^52, so P - 0.5 is exact too, and the integers k below it are those below
  // K = ceil(P - 0.5) (none when P <= 0.5); k = bits >> 12 < K  <=>  bits < K 2^12.
  if (p >= 1.0)
    return {0, true};
  const double P = std::ldexp(p, 52);
  if (P <= 0.5)
    return {0, false};
  return {static_cast<uint64_t>(std::ceil(P - 0.5)) << 12, false};
}

double gumbel_from_bits(uint64_t bits) {
  return -std::log(-std::log(uniform01_from_bits(bits)));
}

double normal_from_bits(uint64_t bits1, uint64_t bits2) {
  const double u1 = uniform01_from_bits(bits1), u2 = uniform01_from_bits(bits2);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

double bernoulli_from_bits(uint64_t bits, double p) {
  return uniform01_from_bits(bits) < p ? 1.0 : 0.0;
}

namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

inline uint64_t join(uint32_t a, uint32_t b) {
  return (static_cast<uint64_t>(a) << 32) | b;
}

inline double to_open01(uint32_t a, uint32_t b) {
  return open01(join(a, b));
}

// Fills a tensor with value(w0, w1, w2, w3) of the Philox words of counter i (computed 16 at a
// time). When `upper` is finite, values that rounding to the dtype pushed onto it are moved just
// below it, so that uniform samples stay in [low, high) in float32 too.
template <class F>
Tensor generate(const Shape& shape,
                DType dtype,
                const char* op,
                RngKey key,
                bool need_w23,
                F&& value,
                double upper = INFINITY) {
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_float(dtype, op, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    parallel_for(0, t.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      constexpr int64_t kChunk = 1024;
      uint32_t w[4][kChunk];
      for (int64_t c = lo; c < hi; c += kChunk) {
        const int64_t m = std::min(kChunk, hi - c);
        philox4x32_block(key,
                         static_cast<uint64_t>(c),
                         m,
                         w[0],
                         w[1],
                         need_w23 ? w[2] : nullptr,
                         need_w23 ? w[3] : nullptr);
        for (int64_t i = 0; i < m; ++i) {
          T v = static_cast<T>(value(w[0][i], w[1][i], w[2][i], w[3][i]));
          if (v >= static_cast<T>(upper))
            v = std::nextafter(static_cast<T>(upper), T(-INFINITY));
          p[c + i] = v;
        }
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

namespace {

// 16 counters at a time on the running SIMD path (the AVX-512 path computes them in one register
// each; core/vec_kernels.cpp). The words do not depend on the path.
constexpr int64_t kLanes = 16;
inline void philox16(RngKey key, uint64_t first, uint32_t out[4][16]) {
  static const auto fn = vec::kernels().philox16;
  fn(key, first, out);
}

}  // namespace

void philox4x32_block(
    RngKey key, uint64_t first, int64_t n, uint32_t* w0, uint32_t* w1, uint32_t* w2, uint32_t* w3) {
  uint32_t* words[4] = {w0, w1, w2, w3};
  alignas(64) uint32_t buf[4][16];
  for (int64_t i = 0; i < n; i += kLanes) {
    philox16(key, first + static_cast<uint64_t>(i), buf);
    const int64_t m = std::min<int64_t>(kLanes, n - i);
    for (int w = 0; w < 4; ++w) {
      if (!words[w])
        continue;
      for (int64_t l = 0; l < m; ++l) words[w][i + l] = buf[w][l];
    }
  }
}

void uniform01_block(RngKey key, uint64_t first, int64_t n, double* out) {
  alignas(64) uint32_t buf[4][16];
  for (int64_t i = 0; i < n; i += kLanes) {
    philox16(key, first + static_cast<uint64_t>(i), buf);
    const int64_t m = std::min<int64_t>(kLanes, n - i);
    for (int64_t l = 0; l < m; ++l) out[i + l] = to_open01(buf[0][l], buf[1][l]);
  }
}

uint64_t keep32_threshold(double p) {
  ATTNLAB_CHECK(
      p >= 0.0 && p <= 1.0, ValueError, "keep32_threshold: probability must be in [0, 1], got ", p);
  return static_cast<uint64_t>(std::llround(std::ldexp(p, 32)));
}

bool keep32(RngKey key, uint64_t element, uint64_t threshold) {
  const uint64_t counter = 16 * (element >> 6) + (element & 15), word = (element >> 4) & 3;
  return philox4x32(key, counter)[word] < threshold;
}

namespace {
// Block b (elements 64 b .. 64 b + 63) from counters 16 b .. 16 b + 15, written word by word (16
// contiguous elements per word).
template <class T>
void keep32_block_impl(
    RngKey key, uint64_t first, int64_t n, uint64_t threshold, T on, T off, T* out) {
  ATTNLAB_CHECK(n >= 0 && first <= ~uint64_t{0} - 64 - static_cast<uint64_t>(n),
                ValueError,
                "keep32_block: elements [",
                first,
                ", +",
                n,
                ") run past the end of the stream");
  alignas(64) uint32_t buf[4][16];
  alignas(64) T partial[64];
  const bool all = threshold > 0xFFFFFFFFu;  // p = 1: every word is below 2^32
  // A 32-bit comparison, so that the loop vectorises (the 64-bit one did not).
  const uint32_t below = static_cast<uint32_t>(std::min<uint64_t>(threshold, 0xFFFFFFFFu));
  const uint64_t end = first + static_cast<uint64_t>(n);
  for (uint64_t b = first >> 6; 64 * b < end; ++b) {
    const uint64_t base = 64 * b, lo = std::max(base, first), hi = std::min(base + 64, end);
    // A whole block is written in place; a partial one (the ends of a row of attention weights)
    // through a copy, with the same vector loop.
    const bool whole = lo == base && hi == base + 64;
    T* o = whole ? out + (base - first) : partial;
    if (all) {
      std::fill(o, o + 64, on);
    } else {
      philox16(key, 16 * b, buf);
      for (int w = 0; w < 4; ++w) {
        for (int l = 0; l < 16; ++l) o[16 * w + l] = buf[w][l] < below ? on : off;
      }
    }
    if (!whole)
      std::copy(partial + (lo - base), partial + (hi - base), out + (lo - first));
  }
}
}  // namespace

void keep32_block(
    RngKey key, uint64_t first, int64_t n, uint64_t threshold, float on, float off, float* out) {
  keep32_block_impl(key, first, n, threshold, on, off, out);
}
void keep32_block(
    RngKey key, uint64_t first, int64_t n, uint64_t threshold, double on, double off, double* out) {
  keep32_block_impl(key, first, n, threshold, on, off, out);
}

Tensor keep32_mask(const Shape& shape, double p, double scale, RngKey key, DType dtype) {
  ATTNLAB_CHECK(p >= 0.0 && p <= 1.0 && std::isfinite(scale),
                ValueError,
                "keep32_mask: expected a probability in [0, 1] and a finite scale, got p = ",
                p,
                ", scale = ",
                scale);
  const uint64_t threshold = keep32_threshold(p);
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_float(dtype, "keep32_mask", [&](auto tag) {
    using T = decltype(tag);
    T* out = t.data<T>();
    const T on = static_cast<T>(scale);
    // Split in whole 64-element blocks, so that no counter is generated twice.
    const int64_t n = t.numel();
    parallel_for(0, (n + 63) / 64, 256, [&](int64_t b0, int64_t b1) {
      const int64_t lo = 64 * b0, hi = std::min(n, 64 * b1);
      keep32_block(key, static_cast<uint64_t>(lo), hi - lo, threshold, on, T(0), out + lo);
    });
  });
  return t;
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
      key,
      false,
      [&](uint32_t w0, uint32_t w1, uint32_t, uint32_t) {
        const double u = static_cast<double>(((static_cast<uint64_t>(w0) << 32) | w1) >> 11) *
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
  return generate(
      shape, dtype, "randn", key, true, [&](uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3) {
        return mean + stddev * normal_from_bits(join(w0, w1), join(w2, w3));
      });
}

Tensor bernoulli(const Shape& shape, double p, RngKey key, DType dtype) {
  ATTNLAB_CHECK(
      p >= 0.0 && p <= 1.0, ValueError, "bernoulli: probability must be in [0, 1], got ", p);
  return bernoulli_scaled(shape, p, 1.0, key, dtype);
}

Tensor bernoulli_scaled(const Shape& shape, double p, double scale, RngKey key, DType dtype) {
  ATTNLAB_CHECK(
      p >= 0.0 && p <= 1.0, ValueError, "bernoulli: probability must be in [0, 1], got ", p);
  // The integer form of bernoulli_from_bits (the same decisions, no conversion to double).
  const BernoulliThreshold t = bernoulli_threshold(p);
  const double values[2] = {0.0, scale};  // indexed by the draw: no branch on random data
  return generate(
      shape, dtype, "bernoulli", key, false, [&](uint32_t w0, uint32_t w1, uint32_t, uint32_t) {
        return values[t.hit(join(w0, w1))];
      });
}

Tensor gumbel(const Shape& shape, RngKey key, DType dtype) {
  return generate(
      shape, dtype, "gumbel", key, false, [&](uint32_t w0, uint32_t w1, uint32_t, uint32_t) {
        return gumbel_from_bits(join(w0, w1));
      });
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
