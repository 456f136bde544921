// The fused LISA histogram attention kernels (layers/attention/lisa/lisa_attention_fused.cpp
// describes the algorithm), compiled once per SIMD path.
#include "layers/attention/lisa/lisa_attention_fused_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/matmul.hpp"
#include "core/parallel.hpp"
#include "core/simd.hpp"  // xsimd, renamed for this path
#include "layers/attention/lisa/lisa_fused_rows.hpp"

namespace attnlab::ATTNLAB_ARCH {
namespace lisa_fused_detail {

// G rows of the expected-row query for every codebook: out[:, b, :] = Q_b T_b with Q_b the
// chunk's [rows, W] slice of q; out is [rows, B, W] like q.
template <class T>
void expected_rows(
    const Geometry& g, const T* tables, const T* q, int64_t row0, int64_t rows, T* out) {
  for (int64_t b = 0; b < g.nb; ++b) {
    gemm<T>(false,
            false,
            rows,
            g.w,
            g.w,
            T(1),
            q + row0 * row_stride(g) + b * g.w,
            row_stride(g),
            tables + b * g.w * g.w,
            g.w,
            T(0),
            out + b * g.w,
            row_stride(g));
  }
}

// The table row position (row0 + r) queries in codebook b ([rows, B, W] scratch z when expected).
template <class T>
const T* query_row(const Geometry& g,
                   const T* tables,
                   const int64_t* idx,
                   const T* z,
                   int64_t row0,
                   int64_t r,
                   int64_t b) {
  if (g.expected)
    return z + r * row_stride(g) + b * g.w;
  return tables + (b * g.w + idx[(row0 + r) * g.nb + b]) * g.w;
}

template <class T>
void forward(const Geometry& g,
             const T* tables,
             const T* values,
             const T* hist,
             const int64_t* idx,
             const T* q,
             T* out) {
  const int64_t bw = row_stride(g);
  parallel_for(0, tasks(g), 1, [&](int64_t t0, int64_t t1) {
    simd::Scratch<T> z(g.expected ? kRows * bw : 0), alpha(kRows * bw), beta(g.w);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t x = task / chunks(g), i0 = (task % chunks(g)) * kRows;
      const int64_t rows = std::min(kRows, g.l - i0), row0 = x * g.l + i0;
      if (g.expected)
        expected_rows<T>(g, tables, q, row0, rows, z.data());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < g.nb; ++b) {
          weights<T>(g.w,
                     hist + (row0 + r) * bw + b * g.w,
                     query_row<T>(g, tables, idx, z.data(), row0, r, b),
                     static_cast<T>(g.scale),
                     beta.data(),
                     alpha.data() + r * bw + b * g.w);
        }
      }
      // y = sum_b alpha_b V_b: B GEMMs accumulated in a fixed order.
      T* y = out + row0 * g.d;
      for (int64_t b = 0; b < g.nb; ++b) {
        gemm<T>(false,
                false,
                rows,
                g.d,
                g.w,
                T(1),
                alpha.data() + b * g.w,
                bw,
                values + b * g.w * g.d,
                g.d,
                b == 0 ? T(0) : T(1),
                y,
                g.d);
      }
    }
  });
}

template <class T>
void backward(const Geometry& g,
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
              bool need_q) {
  const int64_t groups = lisa_fused_detail::groups(g);
  const int64_t tsize = g.nb * g.w * g.w, vsize = g.nb * g.w * g.d;
  simd::Scratch<T> part_t(need_t ? groups * tsize : 0), part_v(need_v ? groups * vsize : 0);
  parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
    const int64_t bw = row_stride(g);
    simd::Scratch<T> alpha(kRows * bw), dalpha(kRows * bw), dz(kRows * bw),
        z(g.expected ? kRows * bw : 0), beta(g.w);
    for (int64_t grp = g0; grp < g1; ++grp) {
      T* pt = need_t ? part_t.data() + grp * tsize : nullptr;
      T* pv = need_v ? part_v.data() + grp * vsize : nullptr;
      if (pt)
        std::fill(pt, pt + tsize, T(0));
      if (pv)
        std::fill(pv, pv + vsize, T(0));
      for (int64_t task = grp; task < tasks(g); task += groups) {
        const int64_t x = task / chunks(g), i0 = (task % chunks(g)) * kRows;
        const int64_t rows = std::min(kRows, g.l - i0), row0 = x * g.l + i0;
        const T* dy = dout + row0 * g.d;
        for (int64_t b = 0; b < g.nb; ++b) {  // dalpha_b = dY V_b^T
          gemm<T>(false,
                  true,
                  rows,
                  g.w,
                  g.d,
                  T(1),
                  dy,
                  g.d,
                  values + b * g.w * g.d,
                  g.d,
                  T(0),
                  dalpha.data() + b * g.w,
                  bw);
        }
        if (g.expected)
          expected_rows<T>(g, tables, q, row0, rows, z.data());
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t b = 0; b < g.nb; ++b) {
            const int64_t at = (row0 + r) * bw + b * g.w, s = r * bw + b * g.w;
            // Recompute beta and alpha (nothing of size L B W was saved).
            weights<T>(g.w,
                       hist + at,
                       query_row<T>(g, tables, idx, z.data(), row0, r, b),
                       static_cast<T>(g.scale),
                       beta.data(),
                       alpha.data() + s);
            row_grads<T>(g.w,
                         beta.data(),
                         alpha.data() + s,
                         static_cast<T>(g.scale),
                         dalpha.data() + s,
                         need_h ? dhist + at : nullptr,
                         dz.data() + s);
          }
        }
        for (int64_t b = 0; b < g.nb; ++b) {
          if (pv)  // dV_b += alpha_b^T dY
            gemm<T>(true,
                    false,
                    g.w,
                    g.d,
                    rows,
                    T(1),
                    alpha.data() + b * g.w,
                    bw,
                    dy,
                    g.d,
                    T(1),
                    pv + b * g.w * g.d,
                    g.d);
          if (g.expected) {
            const T* qb = q + row0 * bw + b * g.w;
            if (pt)  // dT_b += Q_b^T dG_b
              gemm<T>(true,
                      false,
                      g.w,
                      g.w,
                      rows,
                      T(1),
                      qb,
                      bw,
                      dz.data() + b * g.w,
                      bw,
                      T(1),
                      pt + b * g.w * g.w,
                      g.w);
            if (need_q)  // dQ_b = dG_b T_b^T
              gemm<T>(false,
                      true,
                      rows,
                      g.w,
                      g.w,
                      T(1),
                      dz.data() + b * g.w,
                      bw,
                      tables + b * g.w * g.w,
                      g.w,
                      T(0),
                      dq + row0 * bw + b * g.w,
                      bw);
          } else if (pt) {  // scatter-add dG into the query rows
            for (int64_t r = 0; r < rows; ++r) {
              T* trow = pt + (b * g.w + idx[(row0 + r) * g.nb + b]) * g.w;
              simd::axpy<T>(T(1), dz.data() + r * bw + b * g.w, trow, g.w);
            }
          }
        }
      }
    }
  });
  // Sum the groups' partials in group order.
  if (need_t)
    sum_group_partials(part_t.data(), groups, tsize, dtables);
  if (need_v)
    sum_group_partials(part_v.data(), groups, vsize, dvalues);
}

}  // namespace lisa_fused_detail

const nn::lisa_fused_detail::LisaFusedKernels& lisa_fused_kernels() {
  static constexpr nn::lisa_fused_detail::LisaFusedKernels kTable{
      {&lisa_fused_detail::forward<float>, &lisa_fused_detail::backward<float>},
      {&lisa_fused_detail::forward<double>, &lisa_fused_detail::backward<double>}};
  return kTable;
}

}  // namespace attnlab::ATTNLAB_ARCH
