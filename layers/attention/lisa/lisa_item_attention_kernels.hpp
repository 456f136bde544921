// The kernels of lisa_item_histogram_attention (layers/attention/lisa/lisa_item_attention.cpp
// gives the formulas), compiled once per SIMD path (core/simd_dispatch.hpp).
#pragma once

#include <cstdint>

#include "core/simd_dispatch.hpp"
#include "layers/attention/lisa/lisa_attention_fused_kernels.hpp"

namespace attnlab::nn::lisa_fused_detail {

// Plain data only (this header is compiled into every SIMD path). g describes the attention as
// the fused op sees it (n, l, B, W, D, scale; never an expected-row query); items is U, the rows
// of the selections; decay is g = exp(-lambda) itself.
struct ItemGeometry {
  Geometry g;
  int64_t items;
  double decay;
};

// sel [U, B, W]; inverse [N, L] rows of sel; keep [N, L] (0 or 1); idx [N, L, B].
template <class T>
struct LisaItemFns {
  void (*forward)(const ItemGeometry& ig,
                  const T* tables,
                  const T* values,
                  const T* sel,
                  const int64_t* inverse,
                  const T* keep,
                  const int64_t* idx,
                  T* out);
  // dsel (if not null) must hold zeros on entry: the rows' gradients are added to it.
  void (*backward)(const ItemGeometry& ig,
                   const T* tables,
                   const T* values,
                   const T* sel,
                   const int64_t* inverse,
                   const T* keep,
                   const int64_t* idx,
                   const T* dout,
                   T* dtables,
                   T* dvalues,
                   T* dsel);
};

struct LisaItemKernels {
  LisaItemFns<float> f32;
  LisaItemFns<double> f64;
};

}  // namespace attnlab::nn::lisa_fused_detail

namespace attnlab {
ATTNLAB_DECLARE_KERNELS(nn::lisa_fused_detail::LisaItemKernels, lisa_item_kernels)
}  // namespace attnlab
