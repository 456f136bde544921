// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
//
// Every random value is a pure function of (seed, stream, element index): a tensor's values do
// not depend on the thread count, on how a kernel splits its work, or on what was drawn before.
// A Generator only hands out fresh stream numbers, so its whole state is (seed, next stream) and
// can be saved in a checkpoint and restored exactly.
#pragma once

#include <array>
#include <cstdint>

#include "core/tensor.hpp"

namespace attnlab {

// Identifies one independent random sequence.
struct RngKey {
  uint64_t seed = 0;
  uint64_t stream = 0;
};

// The raw generator: 128 random bits for counter `index` of the sequence `key`.
std::array<uint32_t, 4> philox4x32(RngKey key, uint64_t index);
// Uniform in the open interval (0, 1) with 52 random bits, for element `index`.
double uniform01(RngKey key, uint64_t index);

// The maps from raw random bits to the distributions, exposed so that tests can feed them the
// extreme bit patterns. `bits` are words 0 and 1 of a Philox output, (w0 << 32) | w1.
//   uniform01_from_bits: the top 52 bits k give (k + 0.5) / 2^52, exact in float64, so the value
//     lies in [2^-53, 1 - 2^-53] and never rounds to 0 or 1 (log stays finite).
//   gumbel_from_bits: -log(-log u), within [-3.6, 36.8] (finite in float32 too).
//   normal_from_bits: Box-Muller sqrt(-2 log u1) cos(2 pi u2), |z| <= 8.6.
//   bernoulli_from_bits: 1 if u < p else 0 (p = 1 always gives 1, p = 0 always 0).
double uniform01_from_bits(uint64_t bits);
double gumbel_from_bits(uint64_t bits);
double normal_from_bits(uint64_t bits1, uint64_t bits2);
double bernoulli_from_bits(uint64_t bits, double p);
// bernoulli_from_bits as one integer comparison: hit(bits) == (bernoulli_from_bits(bits, p) ==
// 1) for every bits, for the p it was made for (in [0, 1], else ValueError).
struct BernoulliThreshold {
  uint64_t below = 0;   // bits < below is a hit
  bool always = false;  // p == 1
  bool hit(uint64_t bits) const { return always || bits < below; }
};
BernoulliThreshold bernoulli_threshold(double p);

// Bulk forms, vectorised (AVX-512 or AVX2 when compiled for them) and bit-identical to the
// scalar ones: words k of philox4x32(key, first + i) for i in [0, n) (w2/w3 may be null), and
// uniform01(key, first + i). Dropout masks and random tensors are generated through these.
void philox4x32_block(
    RngKey key, uint64_t first, int64_t n, uint32_t* w0, uint32_t* w1, uint32_t* w2, uint32_t* w3);
void uniform01_block(RngKey key, uint64_t first, int64_t n, double* out);
// Bernoulli draws of one 32-bit word each, so that one counter serves four elements (dropout
// masks, where the 53-bit uniforms of uniform01 would spend a counter per element). The elements
// come in blocks of 64 laid out as the 16-lane generator emits them, word by word: element
// e = 64 b + 16 w + l is word w of counter 16 b + l, and
//   hit(e)  <=>  philox4x32(key, 16 b + l)[w] < threshold,   threshold = round(p 2^32),
// so P(hit) is p to within 2^-33. keep32_threshold(1) = 2^32: every element hits.
uint64_t keep32_threshold(double p);
bool keep32(RngKey key, uint64_t element, uint64_t threshold);  // the definition, one element
// out[i] = keep32(key, first + i) ? on : off, i in [0, n): 64 elements per 16-counter block.
void keep32_block(
    RngKey key, uint64_t first, int64_t n, uint64_t threshold, float on, float off, float* out);
void keep32_block(
    RngKey key, uint64_t first, int64_t n, uint64_t threshold, double on, double off, double* out);
// A tensor of keep32 draws, element i (row-major) keeping `scale` iff keep32(key, i,
// keep32_threshold(p)), else 0: a dropout mask with p = keep and scale = 1 / keep, a quarter of
// bernoulli_scaled's Philox counters. Bit-identical for any thread count.
Tensor keep32_mask(const Shape& shape, double p, double scale, RngKey key, DType dtype = kFloat32);
// Uniform integer in [low, high) for element `index` (unbiased: rejection-free 128-bit method).
int64_t uniform_int(RngKey key, uint64_t index, int64_t low, int64_t high);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  // A key for a new, independent stream (the state advances by one).
  RngKey next() { return {seed_, stream_++}; }
  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }
  void set_state(uint64_t seed, uint64_t stream) {
    seed_ = seed;
    stream_ = stream;
  }
  bool operator==(const Generator& o) const { return seed_ == o.seed_ && stream_ == o.stream_; }

 private:
  uint64_t seed_;
  uint64_t stream_ = 0;
};

// Random tensors; element i uses counter i of the key's stream.
Tensor rand(const Shape& shape,
            RngKey key,
            DType dtype = kFloat32,
            double low = 0.0,
            double high = 1.0);  // uniform [low, high)
Tensor randn(const Shape& shape,
             RngKey key,
             DType dtype = kFloat32,
             double mean = 0.0,
             double stddev = 1.0);  // normal (Box-Muller)
Tensor bernoulli(const Shape& shape, double p, RngKey key, DType dtype = kFloat32);  // 1 w.p. p
// `scale` with probability p, else 0: bernoulli(shape, p, key, dtype) * scale in one pass (the
// same values). nn::Dropout draws its masks with keep32_mask, a quarter of the counters.
Tensor bernoulli_scaled(const Shape& shape, double p, double scale, RngKey key, DType dtype);
Tensor gumbel(const Shape& shape, RngKey key, DType dtype = kFloat32);      // -log(-log U)
Tensor randint(const Shape& shape, int64_t low, int64_t high, RngKey key);  // int64 in [low, high)

// The same, drawing the next stream of a Generator.
inline Tensor rand(const Shape& s, Generator& g, DType d = kFloat32, double lo = 0, double hi = 1) {
  return rand(s, g.next(), d, lo, hi);
}
inline Tensor randn(
    const Shape& s, Generator& g, DType d = kFloat32, double mean = 0, double stddev = 1) {
  return randn(s, g.next(), d, mean, stddev);
}
inline Tensor bernoulli(const Shape& s, double p, Generator& g, DType d = kFloat32) {
  return bernoulli(s, p, g.next(), d);
}
inline Tensor gumbel(const Shape& s, Generator& g, DType d = kFloat32) {
  return gumbel(s, g.next(), d);
}
inline Tensor randint(const Shape& s, int64_t low, int64_t high, Generator& g) {
  return randint(s, low, high, g.next());
}

}  // namespace attnlab
