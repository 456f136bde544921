// The fused softmax attention kernels one SIMD path provides
// (layers/attention/softmax/softmax_attention_fused_kernels.cpp; core/simd_dispatch.hpp).
#pragma once

#include <cstdint>

#include "core/rng.hpp"
#include "core/simd_dispatch.hpp"

namespace attnlab::nn::flash_detail {

constexpr int64_t kBlockQ = 128;  // query rows per tile (128 x 128 measured best at L = 1k..4k)
constexpr int64_t kBlockK = 128;  // keys per tile

// Plain data only (no member functions): this header is compiled into every SIMD path.
struct Geometry {
  int64_t batch, heads, lq, lk, d, dv, offset;
  double scale;
  bool causal;
  double decay;
  double drop_p;
  RngKey drop_key;
  const uint8_t* key_ok;  // [batch * lk], or null (no padding)
};

template <class T>
struct FlashFns {
  void (*forward)(const Geometry& g, const T* q, const T* k, const T* v, T* out, T* lse);
  void (*backward)(const Geometry& g,
                   const T* q,
                   const T* k,
                   const T* v,
                   const T* out,
                   const T* lse,
                   const T* dout,
                   T* dq,
                   T* dk,
                   T* dv);
};

struct FlashKernels {
  FlashFns<float> f32;
  FlashFns<double> f64;
};

}  // namespace attnlab::nn::flash_detail

namespace attnlab {
ATTNLAB_DECLARE_KERNELS(nn::flash_detail::FlashKernels, flash_kernels)
}  // namespace attnlab
