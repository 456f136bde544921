// The fused softmax attention kernels (layers/attention/softmax/softmax_attention_fused.cpp
// describes the algorithm), compiled once per SIMD path.
#include "layers/attention/softmax/softmax_attention_fused_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/matmul.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"
#include "core/simd.hpp"  // xsimd, renamed for this path
#include "layers/attention/softmax/softmax_attention.hpp"

namespace attnlab::ATTNLAB_ARCH {
namespace flash_detail {

using nn::flash_detail::Geometry;
using nn::flash_detail::kBlockK;
using nn::flash_detail::kBlockQ;

// Causal tiles carry unequal work (query tile t sees t + 1 key tiles), and parallel_for hands
// each thread a contiguous range of tasks. Visiting tiles in the order 0, n-1, 1, n-2, ... puts
// light and heavy tiles in every range. A fixed bijection, so results stay thread-independent.
inline int64_t zigzag(int64_t i, int64_t n) {
  return i % 2 == 0 ? i / 2 : n - 1 - i / 2;
}

// Geometry helpers (free functions here, not members in the shared header: see core/simd.hpp).
inline int64_t bh(const Geometry& g) {
  return g.batch * g.heads;
}
inline int64_t q_tiles(const Geometry& g) {
  return (g.lq + kBlockQ - 1) / kBlockQ;
}
inline int64_t k_tiles(const Geometry& g) {
  return (g.lk + kBlockK - 1) / kBlockK;
}
// Key tiles that query tile qt can see: [0, k_tiles_for(g, qt)).
inline int64_t k_tiles_for(const Geometry& g, int64_t qt) {
  if (!g.causal)
    return k_tiles(g);
  const int64_t last_key = std::min(g.lk - 1, std::min(g.lq, (qt + 1) * kBlockQ) - 1 + g.offset);
  return last_key < 0 ? 0 : last_key / kBlockK + 1;
}
// First query tile that can see key tile kt.
inline int64_t first_q_tile_for(const Geometry& g, int64_t kt) {
  if (!g.causal)
    return 0;
  const int64_t first_query = std::max<int64_t>(0, kt * kBlockK - g.offset);
  return first_query / kBlockQ;
}

// Fills S (rows [i0, i1) x keys [j0, j1), row stride kBlockK) with scale * Q K^T + bias, and -inf
// where the key is not allowed. Returns true if any entry is allowed.
template <class T>
bool scores(const Geometry& g,
            int64_t x,
            const T* q,
            const T* k,
            int64_t i0,
            int64_t i1,
            int64_t j0,
            int64_t j1,
            T* s) {
  const int64_t rows = i1 - i0, cols = j1 - j0;
  gemm<T>(false,
          true,
          rows,
          cols,
          g.d,
          static_cast<T>(g.scale),
          q + i0 * g.d,
          g.d,
          k + j0 * g.d,
          g.d,
          T(0),
          s,
          kBlockK);
  const int64_t b = x / g.heads;
  const uint8_t* ok = g.key_ok ? g.key_ok + b * g.lk : nullptr;
  const bool full_tile_visible = !g.causal || j1 - 1 <= i0 + g.offset;
  if (!ok && full_tile_visible && g.decay == 0)
    return true;
  bool any = false;
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  const T decay = static_cast<T>(g.decay);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t ip = i0 + r + g.offset;  // the query's key position
    T* row = s + r * kBlockK;
    // Causal: keys j <= ip, i.e. the first `visible` columns. Branch-free loops below, so that
    // the compiler vectorises them (the decay loop was scalar and cost 1.5x at L = 4096).
    const int64_t visible = g.causal ? std::clamp<int64_t>(ip - j0 + 1, 0, cols) : cols;
    if (decay != 0) {
      // The distance bias -decay * |i - j| (attention.hpp), in T: distances below 2^24 are exact
      // even in float32; beyond, they round like every other term of the logit.
      const T d0 = static_cast<T>(ip - j0);
      for (int64_t c = 0; c < visible; ++c) row[c] -= decay * std::abs(d0 - static_cast<T>(c));
    }
    for (int64_t c = visible; c < cols; ++c) row[c] = kNegInf;
    if (ok) {
      for (int64_t c = 0; c < visible; ++c) {
        if (!ok[j0 + c])
          row[c] = kNegInf;
        else
          any = true;
      }
    } else {
      any = any || visible > 0;
    }
  }
  return any;
}

// Multiplies P (rows x cols, stride kBlockK) by the dropout multipliers of (x, i0.., j0..):
// weight e kept iff keep32(drop_key, e) (one 32-bit word per weight, four weights per counter;
// core/rng.hpp), then scaled by 1 / (1 - p).
template <class T>
void apply_dropout(
    const Geometry& g, int64_t x, int64_t i0, int64_t rows, int64_t j0, int64_t cols, T* p) {
  const uint64_t threshold = keep32_threshold(1.0 - g.drop_p);
  const T inv = static_cast<T>(1.0 / (1.0 - g.drop_p));
  T mult[kBlockK];
  for (int64_t r = 0; r < rows; ++r) {
    keep32_block(g.drop_key,
                 nn::detail::dropout_index(x, i0 + r, j0, g.lq, g.lk),
                 cols,
                 threshold,
                 inv,
                 T(0),
                 mult);
    for (int64_t c = 0; c < cols; ++c) p[r * kBlockK + c] *= mult[c];
  }
}

template <class T>
void forward(const Geometry& g, const T* q, const T* k, const T* v, T* out, T* lse) {
  using B = simd::Batch<T>;
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  const int64_t tasks = bh(g) * q_tiles(g);
  parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    simd::Scratch<T> s(kBlockQ * kBlockK), acc(kBlockQ * g.dv), m(kBlockQ), l(kBlockQ);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t x = task / q_tiles(g), qt = zigzag(task % q_tiles(g), q_tiles(g));
      const int64_t i0 = qt * kBlockQ, i1 = std::min(g.lq, i0 + kBlockQ), rows = i1 - i0;
      const T* qx = q + x * g.lq * g.d;
      const T* kx = k + x * g.lk * g.d;
      const T* vx = v + x * g.lk * g.dv;
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(m.begin(), m.end(), kNegInf);
      std::fill(l.begin(), l.end(), T(0));
      const int64_t kts = k_tiles_for(g, qt);
      for (int64_t kt = 0; kt < kts; ++kt) {
        const int64_t j0 = kt * kBlockK, j1 = std::min(g.lk, j0 + kBlockK), cols = j1 - j0;
        if (!scores<T>(g, x, qx, kx, i0, i1, j0, j1, s.data()))
          continue;
        for (int64_t r = 0; r < rows; ++r) {
          T* row = s.data() + r * kBlockK;
          const T tile_max = simd::max_contiguous(row, cols);
          const T m_new = std::max(m[r], tile_max);
          if (m_new == kNegInf) {  // nothing allowed yet in this row
            for (int64_t c = 0; c < cols; ++c) row[c] = T(0);
            continue;
          }
          const B vm(m_new);
          simd::map_unary<T>(row, row, cols, [&](B z) { return xsimd::exp(z - vm); });
          const T alpha = m[r] == kNegInf ? T(0) : std::exp(m[r] - m_new);
          l[r] = l[r] * alpha + simd::sum_contiguous(row, cols);
          m[r] = m_new;
          if (alpha != T(1)) {
            T* a = acc.data() + r * g.dv;
            for (int64_t c = 0; c < g.dv; ++c) a[c] *= alpha;
          }
        }
        if (g.drop_p > 0)
          apply_dropout<T>(g, x, i0, rows, j0, cols, s.data());
        gemm<T>(false,
                false,
                rows,
                g.dv,
                cols,
                T(1),
                s.data(),
                kBlockK,
                vx + j0 * g.dv,
                g.dv,
                T(1),
                acc.data(),
                g.dv);
      }
      for (int64_t r = 0; r < rows; ++r) {
        T* o = out + (x * g.lq + i0 + r) * g.dv;
        const T inv = l[r] > 0 ? T(1) / l[r] : T(0);  // a row with no allowed key -> zeros
        for (int64_t c = 0; c < g.dv; ++c) o[c] = acc[r * g.dv + c] * inv;
        lse[x * g.lq + i0 + r] = l[r] > 0 ? m[r] + std::log(l[r]) : kNegInf;
      }
    }
  });
}

// Pn = exp(S - LSE) in place (0 for masked entries and for rows without any allowed key).
template <class T>
void normalized_weights(const T* lse, int64_t rows, int64_t cols, T* s) {
  using B = simd::Batch<T>;
  for (int64_t r = 0; r < rows; ++r) {
    T* row = s + r * kBlockK;
    if (lse[r] == -std::numeric_limits<T>::infinity()) {
      for (int64_t c = 0; c < cols; ++c) row[c] = T(0);
      continue;
    }
    const B vl(lse[r]);
    simd::map_unary<T>(row, row, cols, [&](B z) { return xsimd::exp(z - vl); });
  }
}

// dS = Pn . (M . dP - D) in place in dp, with W = Pn . M written to w (if not null).
template <class T>
void score_grads(const Geometry& g,
                 int64_t x,
                 int64_t i0,
                 int64_t rows,
                 int64_t j0,
                 int64_t cols,
                 const T* pn,
                 const T* dvec,
                 T* dp,
                 T* w) {
  const uint64_t threshold = keep32_threshold(1.0 - g.drop_p);
  const T inv = g.drop_p > 0 ? static_cast<T>(1.0 / (1.0 - g.drop_p)) : T(1);
  T multipliers[kBlockK];
  for (int64_t r = 0; r < rows; ++r) {
    if (g.drop_p > 0) {
      keep32_block(g.drop_key,
                   nn::detail::dropout_index(x, i0 + r, j0, g.lq, g.lk),
                   cols,
                   threshold,
                   inv,
                   T(0),
                   multipliers);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const T mult = g.drop_p > 0 ? multipliers[c] : T(1);
      const int64_t at = r * kBlockK + c;
      if (w)
        w[at] = pn[at] * mult;
      dp[at] = pn[at] * (mult * dp[at] - dvec[r]);
    }
  }
}

// Key tiles are dealt to G groups (tile t to group t mod G, which balances causal work); each
// (batch*head, group) task owns its key tiles' dK and dV and accumulates dQ into the group's own
// buffer; the G buffers are summed in group order at the end. G depends only on the shapes (enough
// groups for parallelism when batch*heads is small), so results never depend on the thread count,
// and the extra memory is G * Lq * d per batch*head: O(L * d).
// At least one group, also with no keys (k_tiles 0) or no (batch, head) pairs (bh 0: this
// divided by zero).
inline int64_t dq_groups(const Geometry& g) {
  if (bh(g) == 0)
    return 1;
  return std::max<int64_t>(1, std::min<int64_t>(k_tiles(g), (8 + bh(g) - 1) / bh(g)));
}

template <class T>
void backward(const Geometry& g,
              const T* q,
              const T* k,
              const T* v,
              const T* out,
              const T* lse,
              const T* dout,
              T* dq,
              T* dk,
              T* dv) {
  // D_i = dO_i . O_i
  simd::Scratch<T> dvec(bh(g) * g.lq);
  parallel_for(0, bh(g) * g.lq, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      dvec[r] = simd::dot_contiguous(dout + r * g.dv, out + r * g.dv, g.dv);
    }
  });
  const int64_t groups = dq_groups(g);
  simd::Scratch<T> partial(groups > 1 ? groups * bh(g) * g.lq * g.d : 0);
  parallel_for(0, bh(g) * groups, 1, [&](int64_t t0, int64_t t1) {
    simd::Scratch<T> s(kBlockQ * kBlockK), dp(kBlockQ * kBlockK), w(kBlockQ * kBlockK);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t x = task / groups, group = task % groups;
      const T *qx = q + x * g.lq * g.d, *kx = k + x * g.lk * g.d, *vx = v + x * g.lk * g.dv;
      const T* dox = dout + x * g.lq * g.dv;
      T* dqx = groups > 1 ? partial.data() + (group * bh(g) + x) * g.lq * g.d : dq + x * g.lq * g.d;
      std::fill(dqx, dqx + g.lq * g.d, T(0));
      for (int64_t kt = group; kt < k_tiles(g); kt += groups) {
        const int64_t j0 = kt * kBlockK, j1 = std::min(g.lk, j0 + kBlockK), cols = j1 - j0;
        T* dkx = dk + (x * g.lk + j0) * g.d;
        T* dvx = dv + (x * g.lk + j0) * g.dv;
        std::fill(dkx, dkx + cols * g.d, T(0));
        std::fill(dvx, dvx + cols * g.dv, T(0));
        for (int64_t qt = first_q_tile_for(g, kt); qt < q_tiles(g); ++qt) {
          const int64_t i0 = qt * kBlockQ, i1 = std::min(g.lq, i0 + kBlockQ), rows = i1 - i0;
          if (!scores<T>(g, x, qx, kx, i0, i1, j0, j1, s.data()))
            continue;
          normalized_weights<T>(lse + x * g.lq + i0, rows, cols, s.data());
          gemm<T>(false,
                  true,
                  rows,
                  cols,
                  g.dv,
                  T(1),
                  dox + i0 * g.dv,
                  g.dv,
                  vx + j0 * g.dv,
                  g.dv,
                  T(0),
                  dp.data(),
                  kBlockK);  // dP = dO V^T
          score_grads<T>(
              g, x, i0, rows, j0, cols, s.data(), dvec.data() + x * g.lq + i0, dp.data(), w.data());
          gemm<T>(true,
                  false,
                  cols,
                  g.dv,
                  rows,
                  T(1),
                  w.data(),
                  kBlockK,
                  dox + i0 * g.dv,
                  g.dv,
                  T(1),
                  dvx,
                  g.dv);  // dV += W^T dO
          gemm<T>(true,
                  false,
                  cols,
                  g.d,
                  rows,
                  static_cast<T>(g.scale),
                  dp.data(),
                  kBlockK,
                  qx + i0 * g.d,
                  g.d,
                  T(1),
                  dkx,
                  g.d);  // dK += scale dS^T Q
          gemm<T>(false,
                  false,
                  rows,
                  g.d,
                  cols,
                  static_cast<T>(g.scale),
                  dp.data(),
                  kBlockK,
                  kx + j0 * g.d,
                  g.d,
                  T(1),
                  dqx + i0 * g.d,
                  g.d);  // dQ += scale dS K
        }
      }
    }
  });
  if (groups > 1) {  // dQ = sum of the groups' buffers, in group order
    const int64_t n = bh(g) * g.lq * g.d;
    parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t e = lo; e < hi; ++e) {
        T acc = partial[e];
        for (int64_t gi = 1; gi < groups; ++gi) acc += partial[gi * n + e];
        dq[e] = acc;
      }
    });
  }
}

}  // namespace flash_detail

const nn::flash_detail::FlashKernels& flash_kernels() {
  static constexpr nn::flash_detail::FlashKernels kTable{
      {&flash_detail::forward<float>, &flash_detail::backward<float>},
      {&flash_detail::forward<double>, &flash_detail::backward<double>}};
  return kTable;
}

}  // namespace attnlab::ATTNLAB_ARCH
