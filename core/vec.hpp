// Vector primitives on contiguous arrays for code compiled once (core/, layers/), running on the
// SIMD path chosen at run time (core/simd_dispatch.hpp; kernels in core/vec_kernels.cpp).
//
//   const auto& v = vec::fns<T>();   v.dot(x, y, n) ...
//
// Each entry is one indirect call: use them on rows (tens of values and up), not per element.
// All are deterministic: a fixed order of accumulation that depends only on n and the path.
#pragma once

#include <cstdint>

#include "core/rng.hpp"
#include "core/simd_dispatch.hpp"

namespace attnlab {

template <class T>
struct VecFns {
  T (*sum)(const T* x, int64_t n);
  T (*max)(const T* x, int64_t n);  // NaN if any value is NaN; -inf for n == 0
  T (*dot)(const T* x, const T* y, int64_t n);
  void (*axpy)(T a, const T* x, T* y, int64_t n);           // y += a x
  void (*add_scalar)(const T* x, T* y, int64_t n, T s);     // y = x + s
  void (*exp_shift)(const T* x, T* y, int64_t n, T shift);  // y = exp(x - shift)
  // y = fma(exp(x - shift), mul, add), or exp(-x - shift) when `negate`
  void (*exp_affine)(const T* x, T* y, int64_t n, bool negate, T shift, T mul, T add);
  // out = g * (p - shift); returns the sum of out (one accumulator, scalar tail)
  T (*mul_shifted_sum)(const T* g, const T* p, T* out, int64_t n, T shift);
  // y[r] = sum / max of row r of x [rows, n]
  void (*sum_rows)(const T* x, T* y, int64_t rows, int64_t n);
  void (*max_rows)(const T* x, T* y, int64_t rows, int64_t n);
  // softmax (or log_softmax) of each row of x [rows, n] into y (core/softmax.hpp's rules)
  void (*softmax_rows)(const T* x, T* y, int64_t rows, int64_t n, bool log);
  // dx for rows of softmax (log: log_softmax) output y and output gradient g
  void (*softmax_backward_rows)(const T* y, const T* g, T* dx, int64_t rows, int64_t n, bool log);
};

struct VecKernels {
  VecFns<float> f32;
  VecFns<double> f64;
  // The Philox4x32-10 words of 16 consecutive counters from `first` (core/rng.hpp); `out` must
  // be 64-byte aligned.
  void (*philox16)(RngKey key, uint64_t first, uint32_t out[4][16]);
  // FP32 FMA rate of one core in GFLOP/s over `iters` iterations of 12 register-resident FMAs.
  double (*fma_gflops)(int64_t iters);
  int float_lanes;  // floats per SIMD register on this path
};

ATTNLAB_DECLARE_KERNELS(VecKernels, vec_kernels)

namespace vec {

// The running path's table.
const VecKernels& kernels();

template <class T>
const VecFns<T>& fns();
template <>
const VecFns<float>& fns<float>();
template <>
const VecFns<double>& fns<double>();

}  // namespace vec
}  // namespace attnlab
