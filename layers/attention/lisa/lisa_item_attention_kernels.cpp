// The kernels of lisa_item_histogram_attention (layers/attention/lisa/lisa_item_attention.cpp
// gives the formulas and the order of the work), compiled once per SIMD path.
#include "layers/attention/lisa/lisa_item_attention_kernels.hpp"

#include <algorithm>

#include "core/matmul.hpp"
#include "core/parallel.hpp"
#include "core/scan.hpp"
#include "core/simd.hpp"  // xsimd, renamed for this path
#include "layers/attention/lisa/lisa_fused_rows.hpp"

namespace attnlab::ATTNLAB_ARCH {
namespace lisa_fused_detail {

using nn::lisa_fused_detail::ItemGeometry;

// The first kept position of sequence x (l when none): the rows before it have an empty
// histogram, hence alpha = beta = 0, a zero output and no gradient, and are skipped.
template <class T>
int64_t first_kept(const Geometry& g, const T* keep, int64_t x) {
  int64_t i = 0;
  while (i < g.l && keep[x * g.l + i] == 0) ++i;
  return i;
}

// The histogram rows r0 .. rows - 1 of the chunk at row0 of one sequence, `width` values each
// (all codebooks: offset 0, width B W; one codebook b: offset b W, width W), into h (rows apart by
// `width`): h_i = g h_(i-1) + keep_i sel[inverse_i], through decayed_scan_step (decayed_scan's
// own arithmetic). start: row r0 is the sequence's first kept row, h = x there (the scan's
// g * 0 + x); otherwise row 0 continues from h's last row (the previous, full, chunk's).
// `none` holds `width` zeros.
template <class T>
void histogram_rows(const ItemGeometry& ig,
                    const T* sel,
                    const int64_t* inverse,
                    const T* keep,
                    int64_t offset,
                    int64_t width,
                    int64_t row0,
                    int64_t r0,
                    int64_t rows,
                    bool start,
                    const T* none,
                    T* h) {
  static_assert(kRows >= 2, "row 0 reads the previous chunk's last row");
  const int64_t bw = row_stride(ig.g);
  for (int64_t r = r0; r < rows; ++r) {
    const int64_t p = row0 + r;
    const T* x = keep[p] != 0 ? sel + inverse[p] * bw + offset : none;
    T* hr = h + r * width;
    if (start && r == r0) {
      std::copy(x, x + width, hr);
    } else {
      const T* prev = h + (r == 0 ? kRows - 1 : r - 1) * width;
      decayed_scan_step(prev, x, hr, width, static_cast<T>(ig.decay));
    }
  }
}

// One task per sequence; per chunk: the histogram rows, the weights, Y = sum_b alpha_b V_b (the
// fused op's forward on these rows, the same calls in the same order).
template <class T>
void item_forward(const ItemGeometry& ig,
                  const T* tables,
                  const T* values,
                  const T* sel,
                  const int64_t* inverse,
                  const T* keep,
                  const int64_t* idx,
                  T* out) {
  const Geometry& g = ig.g;
  const int64_t bw = row_stride(g);
  parallel_for(0, g.n, 1, [&](int64_t x0, int64_t x1) {
    simd::Scratch<T> hist(kRows * bw), alpha(kRows * bw), beta(g.w), none(bw);
    std::fill(none.data(), none.data() + bw, T(0));
    for (int64_t x = x0; x < x1; ++x) {
      const int64_t first = first_kept(g, keep, x);
      std::fill(out + x * g.l * g.d, out + (x * g.l + first) * g.d, T(0));
      for (int64_t i0 = first / kRows * kRows; i0 < g.l; i0 += kRows) {
        const int64_t rows = std::min(kRows, g.l - i0), row0 = x * g.l + i0;
        const int64_t r0 = std::max<int64_t>(first - i0, 0);
        histogram_rows<T>(ig,
                          sel,
                          inverse,
                          keep,
                          0,
                          bw,
                          row0,
                          r0,
                          rows,
                          i0 + r0 == first,
                          none.data(),
                          hist.data());
        for (int64_t r = r0; r < rows; ++r) {
          for (int64_t b = 0; b < g.nb; ++b) {
            weights<T>(g.w,
                       hist.data() + r * bw + b * g.w,
                       tables + (b * g.w + idx[(row0 + r) * g.nb + b]) * g.w,
                       static_cast<T>(g.scale),
                       beta.data(),
                       alpha.data() + r * bw + b * g.w);
          }
        }
        T* y = out + (row0 + r0) * g.d;
        for (int64_t b = 0; b < g.nb; ++b) {
          gemm<T>(false,
                  false,
                  rows - r0,
                  g.d,
                  g.w,
                  T(1),
                  alpha.data() + r0 * bw + b * g.w,
                  bw,
                  values + b * g.w * g.d,
                  g.d,
                  b == 0 ? T(0) : T(1),
                  y,
                  g.d);
        }
      }
    }
  });
}

// Scratch of one codebook's backward: the chunk's histogram, weights and gradient rows [kRows, W]
// and the sequence's dh rows [L, W] (reverse-scanned in place into ds).
template <class T>
struct CodebookScratch {
  simd::Scratch<T> hist, alpha, dalpha, dz, beta, none, dh;
  CodebookScratch(const Geometry& g, bool need_sel)
      : hist(kRows * g.w),
        alpha(kRows * g.w),
        dalpha(kRows * g.w),
        dz(kRows * g.w),
        beta(g.w),
        none(g.w),
        dh(need_sel ? g.l * g.w : 0) {
    std::fill(none.data(), none.data() + g.w, T(0));
  }
};

// Codebook b's backward over every sequence: chunk by chunk the fused op's backward for b (dV_b
// and dT_b into group partials in the fused op's task order), the sequence's dh rows, then
// ds = reverse decayed scan of dh and dsel[inverse_i, b] += ds_i over the kept rows in order.
template <class T>
void codebook_backward(const ItemGeometry& ig,
                       int64_t b,
                       const T* tables,
                       const T* values,
                       const T* sel,
                       const int64_t* inverse,
                       const T* keep,
                       const int64_t* idx,
                       const T* dout,
                       T* part_t,
                       T* part_v,
                       T* dsel,
                       CodebookScratch<T>& s) {
  const Geometry& g = ig.g;
  const int64_t groups = lisa_fused_detail::groups(g), bw = row_stride(g), w = g.w;
  const int64_t tsize = g.nb * w * w, vsize = g.nb * w * g.d;
  const T scale = static_cast<T>(g.scale);
  for (int64_t grp = 0; grp < groups; ++grp) {
    if (part_t)
      std::fill_n(part_t + grp * tsize + b * w * w, w * w, T(0));
    if (part_v)
      std::fill_n(part_v + grp * vsize + b * w * g.d, w * g.d, T(0));
  }
  for (int64_t x = 0; x < g.n; ++x) {
    const int64_t first = first_kept(g, keep, x);
    for (int64_t c = first / kRows; c < chunks(g); ++c) {
      const int64_t i0 = c * kRows, rows = std::min(kRows, g.l - i0), row0 = x * g.l + i0;
      const int64_t r0 = std::max<int64_t>(first - i0, 0), grp = (x * chunks(g) + c) % groups;
      const T* dy = dout + (row0 + r0) * g.d;  // rows r0 .. rows - 1
      // dalpha_b = dY V_b^T
      gemm<T>(false,
              true,
              rows - r0,
              w,
              g.d,
              T(1),
              dy,
              g.d,
              values + b * w * g.d,
              g.d,
              T(0),
              s.dalpha.data() + r0 * w,
              w);
      histogram_rows<T>(ig,
                        sel,
                        inverse,
                        keep,
                        b * w,
                        w,
                        row0,
                        r0,
                        rows,
                        i0 + r0 == first,
                        s.none.data(),
                        s.hist.data());
      for (int64_t r = r0; r < rows; ++r) {
        weights<T>(w,
                   s.hist.data() + r * w,
                   tables + (b * w + idx[(row0 + r) * g.nb + b]) * w,
                   scale,
                   s.beta.data(),
                   s.alpha.data() + r * w);
        row_grads<T>(w,
                     s.beta.data(),
                     s.alpha.data() + r * w,
                     scale,
                     s.dalpha.data() + r * w,
                     dsel ? s.dh.data() + (i0 + r) * w : nullptr,
                     s.dz.data() + r * w);
      }
      if (part_v)  // dV_b += alpha_b^T dY
        gemm<T>(true,
                false,
                w,
                g.d,
                rows - r0,
                T(1),
                s.alpha.data() + r0 * w,
                w,
                dy,
                g.d,
                T(1),
                part_v + grp * vsize + b * w * g.d,
                g.d);
      if (part_t) {  // scatter-add dG into the query rows
        for (int64_t r = r0; r < rows; ++r) {
          T* trow = part_t + grp * tsize + (b * w + idx[(row0 + r) * g.nb + b]) * w;
          simd::axpy<T>(T(1), s.dz.data() + r * w, trow, w);
        }
      }
    }
    if (!dsel)
      continue;
    T* dh = s.dh.data();
    for (int64_t i = g.l - 2; i >= first; --i)  // ds_i = g ds_(i+1) + dh_i
      decayed_scan_step(dh + (i + 1) * w, dh + i * w, dh + i * w, w, static_cast<T>(ig.decay));
    for (int64_t i = first; i < g.l; ++i) {
      const int64_t p = x * g.l + i;
      if (keep[p] == 0)
        continue;
      T* dst = dsel + inverse[p] * bw + b * w;
      const T* src = dh + i * w;
      for (int64_t k = 0; k < w; ++k) dst[k] += src[k];
    }
  }
}

// One task per codebook (each owns its slices of dT, dV and dsel), then the groups' partials
// summed in group order as in the fused op.
template <class T>
void item_backward(const ItemGeometry& ig,
                   const T* tables,
                   const T* values,
                   const T* sel,
                   const int64_t* inverse,
                   const T* keep,
                   const int64_t* idx,
                   const T* dout,
                   T* dtables,
                   T* dvalues,
                   T* dsel) {
  const Geometry& g = ig.g;
  const int64_t groups = lisa_fused_detail::groups(g);
  const int64_t tsize = g.nb * g.w * g.w, vsize = g.nb * g.w * g.d;
  simd::Scratch<T> part_t(dtables ? groups * tsize : 0), part_v(dvalues ? groups * vsize : 0);
  parallel_for(0, g.nb, 1, [&](int64_t b0, int64_t b1) {
    CodebookScratch<T> s(g, dsel != nullptr);
    for (int64_t b = b0; b < b1; ++b) {
      codebook_backward<T>(ig,
                           b,
                           tables,
                           values,
                           sel,
                           inverse,
                           keep,
                           idx,
                           dout,
                           dtables ? part_t.data() : nullptr,
                           dvalues ? part_v.data() : nullptr,
                           dsel,
                           s);
    }
  });
  if (dtables)
    sum_group_partials(part_t.data(), groups, tsize, dtables);
  if (dvalues)
    sum_group_partials(part_v.data(), groups, vsize, dvalues);
}

}  // namespace lisa_fused_detail

const nn::lisa_fused_detail::LisaItemKernels& lisa_item_kernels() {
  static constexpr nn::lisa_fused_detail::LisaItemKernels kTable{
      {&lisa_fused_detail::item_forward<float>, &lisa_fused_detail::item_backward<float>},
      {&lisa_fused_detail::item_forward<double>, &lisa_fused_detail::item_backward<double>}};
  return kTable;
}

}  // namespace attnlab::ATTNLAB_ARCH
