// The vector primitives of core/vec.hpp, compiled once per SIMD path.
#include <chrono>
#include <cmath>
#include <type_traits>

#include "core/simd.hpp"  // xsimd, renamed for this path
#include "core/vec.hpp"

namespace attnlab::ATTNLAB_ARCH {
namespace {

using simd::Batch;

template <class T>
T sum(const T* x, int64_t n) {
  return simd::sum_contiguous(x, n);
}

template <class T>
T max(const T* x, int64_t n) {
  return simd::max_contiguous(x, n);
}

template <class T>
T dot(const T* x, const T* y, int64_t n) {
  return simd::dot_contiguous(x, y, n);
}

template <class T>
void axpy(T a, const T* x, T* y, int64_t n) {
  simd::axpy(a, x, y, n);
}

template <class T>
void add_scalar(const T* x, T* y, int64_t n, T s) {
  const Batch<T> vs(s);
  simd::map_unary<T>(x, y, n, [&](Batch<T> v) { return v + vs; });
}

template <class T>
void exp_shift(const T* x, T* y, int64_t n, T shift) {
  const Batch<T> vs(shift);
  simd::map_unary<T>(x, y, n, [&](Batch<T> v) { return xsimd::exp(v - vs); });
}

template <class T>
void exp_affine(const T* x, T* y, int64_t n, bool negate, T shift, T mul, T add) {
  const Batch<T> vs(shift), vm(mul), va(add);
  if (negate) {
    simd::map_unary<T>(
        x, y, n, [&](Batch<T> v) { return xsimd::fma(xsimd::exp(-v - vs), vm, va); });
  } else {
    simd::map_unary<T>(x, y, n, [&](Batch<T> v) { return xsimd::fma(xsimd::exp(v - vs), vm, va); });
  }
}

template <class T>
T mul_shifted_sum(const T* g, const T* p, T* out, int64_t n, T shift) {
  constexpr int64_t W = simd::width<T>();
  Batch<T> acc(T(0));
  const Batch<T> vs(shift);
  int64_t k = 0;
  for (; k + W <= n; k += W) {
    const Batch<T> v = Batch<T>::load_unaligned(g + k) * (Batch<T>::load_unaligned(p + k) - vs);
    v.store_unaligned(out + k);
    acc += v;
  }
  T sum = xsimd::hadd(acc);
  for (; k < n; ++k) {
    out[k] = g[k] * (p[k] - shift);
    sum += out[k];
  }
  return sum;
}

template <class T>
void sum_rows(const T* x, T* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) y[r] = simd::sum_contiguous(x + r * n, n);
}

template <class T>
void max_rows(const T* x, T* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) y[r] = simd::max_contiguous(x + r * n, n);
}

// One row of softmax (kLog = false) or log_softmax (kLog = true). See softmax.hpp for the rule on
// all -inf rows and NaN.
template <class T, bool kLog>
void softmax_row(const T* x, T* y, int64_t n) {
  const T m = simd::max_contiguous(x, n);
  if (m != m) {
    for (int64_t i = 0; i < n; ++i) y[i] = m;
    return;
  }
  if (m == -std::numeric_limits<T>::infinity()) {
    const T fill = kLog ? -std::numeric_limits<T>::infinity() : T(0);
    for (int64_t i = 0; i < n; ++i) y[i] = fill;
    return;
  }
  const Batch<T> vm(m);
  if constexpr (kLog) {
    // y = (x - m) - log(sum(exp(x - m))); exp goes through y as scratch. x - m is formed first:
    // folding m + log(sum) into one shift would round it at m's magnitude (1e4 in float32).
    simd::map_unary<T>(x, y, n, [&](Batch<T> v) { return xsimd::exp(v - vm); });
    const Batch<T> vlog(std::log(simd::sum_contiguous(y, n)));
    simd::map_unary<T>(x, y, n, [&](Batch<T> v) { return (v - vm) - vlog; });
  } else {
    simd::map_unary<T>(x, y, n, [&](Batch<T> v) { return xsimd::exp(v - vm); });
    const Batch<T> inv(T(1) / simd::sum_contiguous(y, n));
    simd::map_unary<T>(y, y, n, [&](Batch<T> v) { return v * inv; });
  }
}

template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    if (log)
      softmax_row<T, true>(x + r * n, y + r * n, n);
    else
      softmax_row<T, false>(x + r * n, y + r * n, n);
  }
}

template <class T>
void softmax_backward_rows(const T* y, const T* g, T* dx, int64_t rows, int64_t n, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *yr = y + r * n, *gr = g + r * n;
    T* dr = dx + r * n;
    if (log) {  // dx = g - exp(y) * sum(g)
      const Batch<T> s(simd::sum_contiguous(gr, n));
      simd::map_binary<T>(
          gr, 1, yr, 1, dr, n, [&](Batch<T> gv, Batch<T> yv) { return gv - xsimd::exp(yv) * s; });
    } else {  // dx = y * (g - sum(g * y))
      const Batch<T> d(simd::dot_contiguous(gr, yr, n));
      simd::map_binary<T>(
          gr, 1, yr, 1, dr, n, [&](Batch<T> gv, Batch<T> yv) { return yv * (gv - d); });
    }
  }
}

template <class T>
constexpr VecFns<T> typed() {
  return {&sum<T>,
          &max<T>,
          &dot<T>,
          &axpy<T>,
          &add_scalar<T>,
          &exp_shift<T>,
          &exp_affine<T>,
          &mul_shifted_sum<T>,
          &sum_rows<T>,
          &max_rows<T>,
          &softmax_rows<T>,
          &softmax_backward_rows<T>};
}

// ---- Philox4x32-10, 16 counters at a time (core/rng.hpp) -------------------------------------
constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

#if defined(__AVX512F__)
// Each counter sits in a 64-bit lane, its 32-bit word in the low half: _mm512_mul_epu32 reads only
// the low halves and returns the whole 64-bit product, whose low half is the round's `lo` and
// whose high half, shifted down, is its `hi`. The high halves of the other words hold leftovers
// that no later multiply reads and that the final packing drops, so one round costs two
// multiplies, two shifts and two three-way XORs per 8 counters (the 32-bit-lane form needed the
// odd lanes' products separately and a vpmulld for the low words: half as fast again).
namespace philox_detail {
struct Half {  // 8 counters
  __m512i c0, c1, c2, c3;
};

inline void round(Half& h, __m512i m0, __m512i m1, __m512i k0, __m512i k1) {
  const __m512i p0 = _mm512_mul_epu32(m0, h.c0), p1 = _mm512_mul_epu32(m1, h.c2);
  // 0x96: a ^ b ^ c
  const __m512i n0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), h.c1, k0, 0x96);
  const __m512i n2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), h.c3, k1, 0x96);
  h = {n0, p1, n2, p0};
}

// The low halves of a's and b's eight lanes, in order.
inline __m512i low_words(__m512i a, __m512i b) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_permutex2var_epi32(a, even, b);
}
}  // namespace philox_detail

// 16 counters (index i, i+1, ...) through the 10 rounds, as two interleaved sets of 8.
void philox16(RngKey key, uint64_t first, uint32_t out[4][16]) {
  using philox_detail::Half;
  const __m512i step = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i ctr_a = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(first)), step);
  const __m512i ctr_b = _mm512_add_epi64(ctr_a, _mm512_set1_epi64(8));
  const __m512i s0 = _mm512_set1_epi64(static_cast<uint32_t>(key.stream));
  const __m512i s1 = _mm512_set1_epi64(static_cast<uint32_t>(key.stream >> 32));
  Half a{ctr_a, _mm512_srli_epi64(ctr_a, 32), s0, s1};
  Half b{ctr_b, _mm512_srli_epi64(ctr_b, 32), s0, s1};
  uint32_t k0 = static_cast<uint32_t>(key.seed), k1 = static_cast<uint32_t>(key.seed >> 32);
  const __m512i m0 = _mm512_set1_epi64(kMul0), m1 = _mm512_set1_epi64(kMul1);
  for (int round = 0; round < 10; ++round) {
    const __m512i vk0 = _mm512_set1_epi64(k0), vk1 = _mm512_set1_epi64(k1);
    philox_detail::round(a, m0, m1, vk0, vk1);
    philox_detail::round(b, m0, m1, vk0, vk1);
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  using philox_detail::low_words;
  _mm512_store_si512(out[0], low_words(a.c0, b.c0));
  _mm512_store_si512(out[1], low_words(a.c1, b.c1));
  _mm512_store_si512(out[2], low_words(a.c2, b.c2));
  _mm512_store_si512(out[3], low_words(a.c3, b.c3));
}
#else
// The scalar rounds (the same words: Philox is integer arithmetic), 16 counters side by side so
// that the compiler can vectorise them for the path's registers.
void philox16(RngKey key, uint64_t first, uint32_t out[4][16]) {
  uint32_t c0[16], c1[16], c2[16], c3[16];
  for (int l = 0; l < 16; ++l) {
    c0[l] = static_cast<uint32_t>(first + l);
    c1[l] = static_cast<uint32_t>((first + l) >> 32);
    c2[l] = static_cast<uint32_t>(key.stream);
    c3[l] = static_cast<uint32_t>(key.stream >> 32);
  }
  uint32_t k0 = static_cast<uint32_t>(key.seed), k1 = static_cast<uint32_t>(key.seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < 16; ++l) {
      const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0[l];
      const uint64_t p1 = static_cast<uint64_t>(kMul1) * c2[l];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c0[l] = n0;
      c1[l] = static_cast<uint32_t>(p1);
      c2[l] = n2;
      c3[l] = static_cast<uint32_t>(p0);
    }
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  for (int l = 0; l < 16; ++l) {
    out[0][l] = c0[l];
    out[1][l] = c1[l];
    out[2][l] = c2[l];
    out[3][l] = c3[l];
  }
}
#endif

// ---- FMA peak probe (experiments/support/bench.cpp) -------------------------------------------
double fma_gflops(int64_t iters) {
  using B = Batch<float>;
  B acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = B(static_cast<float>(i));
  const B a(1.0000001f), b(0.9999999f);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = xsimd::fma(acc[i], a, b);
  }
  const auto t1 = std::chrono::steady_clock::now();
  static_assert(std::is_same_v<std::chrono::steady_clock::period, std::nano>);
  const double sec = static_cast<double>((t1 - t0).count()) * 1e-9;
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += xsimd::hadd(acc[i]);
  volatile float keep = sink;  // the loop must not be optimised away
  (void)keep;
  return static_cast<double>(iters) * 12 * B::size * 2 / sec / 1e9;
}

}  // namespace

const VecKernels& vec_kernels() {
  static constexpr VecKernels kTable{typed<float>(),
                                     typed<double>(),
                                     &philox16,
                                     &fma_gflops,
                                     static_cast<int>(simd::width<float>())};
  return kTable;
}

}  // namespace attnlab::ATTNLAB_ARCH
