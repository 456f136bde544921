// The fused LISA histogram attention kernels one SIMD path provides
// (layers/attention/lisa/lisa_attention_fused_kernels.cpp; core/simd_dispatch.hpp).
#pragma once

#include <cstdint>

#include "core/simd_dispatch.hpp"

namespace attnlab::nn::lisa_fused_detail {

// Positions per chunk (the GEMMs' M). Scratch is laid out like the histograms, [rows, B, W], so
// the weight passes read h sequentially (codebook-major loops would stride by B W per row and
// stall on memory: measured 1.4x slower at B x W = 8 x 128, L = 16384).
constexpr int64_t kRows = 64;

// Plain data only (no member functions): this header is compiled into every SIMD path.
struct Geometry {
  int64_t n, l, nb, w, d;
  double scale;
  bool expected;  // expected-row query (q given) instead of an index
};

template <class T>
struct LisaFusedFns {
  void (*forward)(const Geometry& g,
                  const T* tables,
                  const T* values,
                  const T* hist,
                  const int64_t* idx,
                  const T* q,
                  T* out);
  void (*backward)(const Geometry& g,
                   const T* tables,
                   const T* values,
                   const T* hist,
                   const int64_t* idx,
                   const T* q,
                   const T* dout,
                   T* dtables,
                   T* dvalues,
                   T* dhist,
                   T* dq,
                   bool need_t,
                   bool need_v,
                   bool need_h,
                   bool need_q);
};

struct LisaFusedKernels {
  LisaFusedFns<float> f32;
  LisaFusedFns<double> f64;
};

}  // namespace attnlab::nn::lisa_fused_detail

namespace attnlab {
ATTNLAB_DECLARE_KERNELS(nn::lisa_fused_detail::LisaFusedKernels, lisa_fused_kernels)
}  // namespace attnlab
