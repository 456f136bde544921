// The per-row pieces of the fused LISA histogram attention (lisa_attention_fused.cpp gives the
// formulas), shared by the kernels of the fused op and of the op that builds the histograms
// itself (lisa_item_attention.cpp). Kernel files only: it uses this SIMD path's xsimd
// (core/simd.hpp), and every function lives in the path's namespace.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/simd.hpp"  // xsimd, renamed for this path
#include "layers/attention/lisa/lisa_attention_fused_kernels.hpp"

namespace attnlab::ATTNLAB_ARCH {
namespace lisa_fused_detail {

using nn::lisa_fused_detail::Geometry;
using nn::lisa_fused_detail::kRows;

// Geometry helpers (free functions here, not members in the shared header: see core/simd.hpp).
inline int64_t chunks(const Geometry& g) {
  return (g.l + kRows - 1) / kRows;
}
inline int64_t tasks(const Geometry& g) {
  return g.n * chunks(g);
}
inline int64_t groups(const Geometry& g) {
  return std::min<int64_t>(tasks(g), 8);
}
inline int64_t row_stride(const Geometry& g) {  // between positions in [N, L, B, W]
  return g.nb * g.w;
}

// Weights of one (position, codebook) from its table row g [w] (the query's row, or the
// expected row): z = scale g, beta = e^(z - lse), alpha = h . beta (0 where h = 0: e^(z - m)
// may overflow there, and 0 * inf must not make a NaN). Three vectorised passes over w.
// Returns false for an empty histogram (alpha = beta = 0).
template <class T>
bool weights(int64_t w, const T* h, const T* g, T scale, T* beta, T* alpha) {
  using B = simd::Batch<T>;
  constexpr int64_t V = simd::width<T>();
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  const B zero(T(0)), vs(scale);
  // Pass 1: z into beta, and the max of z over the codewords present (masked log-sum-exp).
  B mv(kNegInf);
  int64_t c = 0;
  for (; c + V <= w; c += V) {
    const B z = vs * B::load_unaligned(g + c);
    z.store_unaligned(beta + c);
    mv = xsimd::select(B::load_unaligned(h + c) > zero, xsimd::max(mv, z), mv);
  }
  alignas(64) T lanes[V];
  mv.store_aligned(lanes);
  T m = kNegInf;
  for (int64_t k = 0; k < V; ++k) m = std::max(m, lanes[k]);
  for (; c < w; ++c) {
    beta[c] = scale * g[c];
    if (h[c] > 0)
      m = std::max(m, beta[c]);
  }
  if (m == kNegInf) {
    std::fill(beta, beta + w, T(0));
    std::fill(alpha, alpha + w, T(0));
    return false;
  }
  // Pass 2: e = exp(z - m) and s = sum over h != 0 of h e.
  const B vm(m);
  simd::map_unary<T>(beta, beta, w, [&](B x) { return xsimd::exp(x - vm); });
  B sv(T(0));
  c = 0;
  for (; c + V <= w; c += V) {
    const B hb = B::load_unaligned(h + c);
    sv += xsimd::select(hb != zero, hb * B::load_unaligned(beta + c), zero);
  }
  T s = xsimd::hadd(sv);
  for (; c < w; ++c)
    if (h[c] != 0)
      s += h[c] * beta[c];
  if (!(s > 0)) {
    std::fill(beta, beta + w, T(0));
    std::fill(alpha, alpha + w, T(0));
    return false;
  }
  // Pass 3: normalise.
  const T inv = T(1) / s;
  const B vi(inv);
  c = 0;
  for (; c + V <= w; c += V) {
    const B hb = B::load_unaligned(h + c);
    const B be = B::load_unaligned(beta + c) * vi;
    be.store_unaligned(beta + c);
    xsimd::select(hb != zero, hb * be, zero).store_unaligned(alpha + c);
  }
  for (; c < w; ++c) {
    beta[c] *= inv;
    alpha[c] = h[c] == 0 ? T(0) : h[c] * beta[c];
  }
  return true;
}

// One (position, codebook) of the backward, given its recomputed beta and alpha:
// t = dalpha - sum(alpha dalpha), dh = beta t (if dh), dG = scale alpha t (to dg).
template <class T>
void row_grads(int64_t w, const T* be, const T* a, T scale, const T* da, T* dh, T* dg) {
  using B = simd::Batch<T>;
  constexpr int64_t V = simd::width<T>();
  const T dot = simd::dot_contiguous(a, da, w);
  const B vd(dot), vs(scale);
  int64_t c = 0;
  for (; c + V <= w; c += V) {
    const B t = B::load_unaligned(da + c) - vd;
    if (dh)
      (B::load_unaligned(be + c) * t).store_unaligned(dh + c);
    (vs * B::load_unaligned(a + c) * t).store_unaligned(dg + c);
  }
  for (; c < w; ++c) {
    const T t = da[c] - dot;
    if (dh)
      dh[c] = be[c] * t;
    dg[c] = scale * a[c] * t;
  }
}

// dst[e] = part[e] + part[size + e] + ... over `groups` partials of `size` elements, summed in
// group order (the order is what makes the result independent of the thread count).
template <class T>
void sum_group_partials(const T* part, int64_t groups, int64_t size, T* dst) {
  for (int64_t e = 0; e < size; ++e) {
    T acc = part[e];
    for (int64_t grp = 1; grp < groups; ++grp) acc += part[grp * size + e];
    dst[e] = acc;
  }
}

}  // namespace lisa_fused_detail
}  // namespace attnlab::ATTNLAB_ARCH
