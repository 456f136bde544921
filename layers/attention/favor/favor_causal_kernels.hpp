// The causal FAVOR+ sweep one SIMD path provides (layers/attention/favor/favor_causal_kernels.cpp;
// core/simd_dispatch.hpp).
#pragma once

#include <cstdint>

#include "core/simd_dispatch.hpp"

namespace attnlab::nn::favor_causal_detail {

// Runs the sweep for every (batch*head) x: a, b [BH, L, E]; c, out [BH, L, W]; ls, den [BH, L]
// (ls: null for all zeros; den: null when not wanted). reverse: the suffix-sum sweep.
template <class T>
using SweepsFn = void (*)(int64_t bh,
                          int64_t L,
                          int64_t E,
                          int64_t W,
                          const T* a,
                          const T* b,
                          const T* c,
                          const T* ls,
                          T* out,
                          T* den,
                          bool reverse);

struct FavorCausalKernels {
  SweepsFn<float> f32;
  SweepsFn<double> f64;
};

}  // namespace attnlab::nn::favor_causal_detail

namespace attnlab {
ATTNLAB_DECLARE_KERNELS(nn::favor_causal_detail::FavorCausalKernels, favor_causal_kernels)
}  // namespace attnlab
