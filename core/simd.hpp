// SIMD helpers for the per-instruction-set kernel files (*_kernels.cpp; see
// core/simd_dispatch.hpp). Never included from public headers or from code compiled once.
//
// map_unary / map_binary apply a function written once for xsimd batches to contiguous arrays.
// The tail that does not fill a whole batch goes through a padded batch, so an element's result
// never depends on its position in the array or on the array's length.
#pragma once

#ifndef ATTNLAB_ARCH
#error "core/simd.hpp is for kernel files compiled per instruction set (attnlab_add_kernels)"
#endif
#ifdef XTENSOR_VERSION_MAJOR
// xtensor's container types and alignment follow xsimd's default architecture, which differs
// between kernel objects: an xtensor type here would be one name with several layouts.
#error "kernel files must not include xtensor"
#endif
#ifdef XSIMD_VERSION_MAJOR
#error "a kernel file includes xsimd only through core/simd.hpp (which renames it)"
#endif

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

// Every kernel object gets its own copy of xsimd under its own name (xsimd_avx2, ...): xsimd's
// inline functions that are not templates over the architecture (e.g. the trigonometric range
// reduction) would otherwise be emitted by several objects under one name, compiled for
// different instruction sets, and the linker would keep any one of them for every path.
#define ATTNLAB_CAT_(a, b) a##b
#define ATTNLAB_CAT(a, b) ATTNLAB_CAT_(a, b)
#define xsimd ATTNLAB_CAT(xsimd_, ATTNLAB_ARCH)

// GCC 12's AVX-512 intrinsics trip -W(maybe-)uninitialized on _mm512_undefined_*() (GCC bug
// 105593, fixed in GCC 13). The warning is attributed to the intrinsic headers' own lines, so
// silencing it around their inclusion removes exactly these false positives and nothing else.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // clang (the fuzz build) has no such warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop

namespace attnlab::ATTNLAB_ARCH::simd {

template <class T>
using Batch = xsimd::batch<T>;

// NaN tests on batches must use xsimd::isnan: xsimd 8.1 implements `!=` on AVX-512 with the
// ordered predicate _CMP_NEQ_OQ, so `v != v` is false for NaN there (fixed upstream in 2026).

template <class T>
constexpr int64_t width() {
  return static_cast<int64_t>(Batch<T>::size);
}

template <class T, class F>
inline void map_unary(const T* x, T* y, int64_t n, F&& f) {
  constexpr int64_t W = width<T>();
  int64_t i = 0;
  for (; i + W <= n; i += W) f(Batch<T>::load_unaligned(x + i)).store_unaligned(y + i);
  if (i < n) {
    alignas(64) T buf[W] = {};
    std::memcpy(buf, x + i, sizeof(T) * (n - i));
    f(Batch<T>::load_aligned(buf)).store_aligned(buf);
    std::memcpy(y + i, buf, sizeof(T) * (n - i));
  }
}

// Binary map where each operand is either an array (stride 1) or one scalar (stride 0).
template <class T, class F>
inline void map_binary(const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t n, F&& f) {
  constexpr int64_t W = width<T>();
  int64_t i = 0;
  auto load = [](const T* p, int64_t s, int64_t at) {
    return s ? Batch<T>::load_unaligned(p + at) : Batch<T>(*p);
  };
  for (; i + W <= n; i += W) f(load(a, sa, i), load(b, sb, i)).store_unaligned(y + i);
  if (i < n) {
    alignas(64) T ba[W] = {}, bb[W] = {};
    for (int64_t k = 0; k < n - i; ++k) {
      ba[k] = a[sa * (i + k)];
      bb[k] = b[sb * (i + k)];
    }
    f(Batch<T>::load_aligned(ba), Batch<T>::load_aligned(bb)).store_aligned(ba);
    std::memcpy(y + i, ba, sizeof(T) * (n - i));
  }
}

// Sum of n contiguous values with four batch accumulators (a fixed order, so deterministic).
template <class T>
inline T sum_contiguous(const T* x, int64_t n) {
  constexpr int64_t W = width<T>();
  Batch<T> s0(T(0)), s1(T(0)), s2(T(0)), s3(T(0));
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 += Batch<T>::load_unaligned(x + i);
    s1 += Batch<T>::load_unaligned(x + i + W);
    s2 += Batch<T>::load_unaligned(x + i + 2 * W);
    s3 += Batch<T>::load_unaligned(x + i + 3 * W);
  }
  for (; i + W <= n; i += W) s0 += Batch<T>::load_unaligned(x + i);
  T s = xsimd::hadd((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += x[i];
  return s;
}

// Dot product of two contiguous arrays, same accumulation scheme.
template <class T>
inline T dot_contiguous(const T* x, const T* y, int64_t n) {
  constexpr int64_t W = width<T>();
  Batch<T> s0(T(0)), s1(T(0)), s2(T(0)), s3(T(0));
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 = xsimd::fma(Batch<T>::load_unaligned(x + i), Batch<T>::load_unaligned(y + i), s0);
    s1 = xsimd::fma(Batch<T>::load_unaligned(x + i + W), Batch<T>::load_unaligned(y + i + W), s1);
    s2 = xsimd::fma(
        Batch<T>::load_unaligned(x + i + 2 * W), Batch<T>::load_unaligned(y + i + 2 * W), s2);
    s3 = xsimd::fma(
        Batch<T>::load_unaligned(x + i + 3 * W), Batch<T>::load_unaligned(y + i + 3 * W), s3);
  }
  for (; i + W <= n; i += W) {
    s0 = xsimd::fma(Batch<T>::load_unaligned(x + i), Batch<T>::load_unaligned(y + i), s0);
  }
  T s = xsimd::hadd((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

// y[i] += a * x[i]
template <class T>
inline void axpy(T a, const T* x, T* y, int64_t n) {
  constexpr int64_t W = width<T>();
  const Batch<T> va(a);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    xsimd::fma(va, Batch<T>::load_unaligned(x + i), Batch<T>::load_unaligned(y + i))
        .store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

// Largest value; NaN if any value is NaN (xsimd::max alone would hide NaNs).
template <class T>
inline T max_contiguous(const T* x, int64_t n) {
  constexpr int64_t W = width<T>();
  Batch<T> m(-std::numeric_limits<T>::infinity());
  auto nan = xsimd::isnan(m);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const auto v = Batch<T>::load_unaligned(x + i);
    nan = nan || xsimd::isnan(v);
    m = xsimd::select(v > m, v, m);
  }
  T r = -std::numeric_limits<T>::infinity();
  if (xsimd::any(nan))
    return std::numeric_limits<T>::quiet_NaN();
  alignas(64) T buf[W];
  m.store_aligned(buf);
  for (int64_t k = 0; k < W; ++k) r = buf[k] > r ? buf[k] : r;
  for (; i < n; ++i) {
    if (x[i] != x[i])
      return x[i];
    r = x[i] > r ? x[i] : r;
  }
  return r;
}

// Scratch memory for kernels: 64-byte aligned, zero-filled like std::vector<T>(n). Kernel files
// use this rather than std::vector or Tensor, whose out-of-line members would be compiled for
// this instruction set under names shared with the rest of the program.
template <class T>
class Scratch {
 public:
  explicit Scratch(int64_t n) : n_(n) {
    if (n <= 0)
      return;
    const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(T) + 63) / 64 * 64;
    p_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!p_)
      throw std::bad_alloc();
    std::memset(static_cast<void*>(p_), 0, bytes);
  }
  ~Scratch() { std::free(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() { return p_; }
  const T* data() const { return p_; }
  T* begin() { return p_; }
  T* end() { return p_ + n_; }
  T& operator[](int64_t i) { return p_[i]; }
  const T& operator[](int64_t i) const { return p_[i]; }
  int64_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace attnlab::ATTNLAB_ARCH::simd
