// The fused softmax attention kernel (FlashAttention-2 structure, Dao 2023) as one custom op,
// derived in docs/derivations/flash_attention_backward.md.
//
// Forward, per (batch*head, tile of Br queries), over tiles of Bc keys:
//   S = scale * Q_i K_j^T + bias, -inf where masked;  m' = max(m, rowmax S)
//   P = exp(S - m');  l = l * exp(m - m') + rowsum P;  O = O * exp(m - m') + (P . M) V_j
// then O /= l and LSE = m + log l (M: dropout multipliers, 1 without dropout; l sums the
// undropped P because dropout applies to the normalised weights). Only O and LSE are saved.
//
// Backward, with Pn = exp(S - LSE) the normalised weights, W = Pn . M and D_i = dO_i . O_i:
//   dV_j = sum_i W^T dO_i;  dS = Pn . (M . (dO_i V_j^T) - D_i);  dK_j = scale sum_i dS^T Q_i;
//   dQ_i = scale sum_j dS K_j
// in one pass over key tiles that recomputes S once. dK and dV rows are owned by one task; dQ is
// accumulated per group of key tiles and the groups are summed in a fixed order (see dq_groups),
// so results are bit-identical for any thread count without atomics.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/function.hpp"
#include "core/core.hpp"
#include "core/simd.hpp"
#include "layers/softmax_attention.hpp"

namespace attnlab::nn {
namespace flash_detail {

constexpr int64_t kBlockQ = 128;  // query rows per tile (128 x 128 measured best at L = 1k..4k)
constexpr int64_t kBlockK = 128;  // keys per tile

// Causal tiles carry unequal work (query tile t sees t + 1 key tiles), and parallel_for hands
// each thread a contiguous range of tasks. Visiting tiles in the order 0, n-1, 1, n-2, ... puts
// light and heavy tiles in every range. A fixed bijection, so results stay thread-independent.
inline int64_t zigzag(int64_t i, int64_t n) {
  return i % 2 == 0 ? i / 2 : n - 1 - i / 2;
}

struct Geometry {
  int64_t batch, heads, lq, lk, d, dv, offset;
  double scale;
  bool causal;
  double decay;
  double drop_p;
  RngKey drop_key;
  std::vector<uint8_t> key_ok;  // [batch * lk]; empty = no padding

  int64_t bh() const { return batch * heads; }
  int64_t q_tiles() const { return (lq + kBlockQ - 1) / kBlockQ; }
  int64_t k_tiles() const { return (lk + kBlockK - 1) / kBlockK; }
  // Key tiles that query tile qt can see: [0, last_k_tile(qt)).
  int64_t k_tiles_for(int64_t qt) const {
    if (!causal)
      return k_tiles();
    const int64_t last_key = std::min(lk - 1, std::min(lq, (qt + 1) * kBlockQ) - 1 + offset);
    return last_key < 0 ? 0 : last_key / kBlockK + 1;
  }
  // First query tile that can see key tile kt.
  int64_t first_q_tile_for(int64_t kt) const {
    if (!causal)
      return 0;
    const int64_t first_query = std::max<int64_t>(0, kt * kBlockK - offset);
    return first_query / kBlockQ;
  }
};

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
  const uint8_t* ok = g.key_ok.empty() ? nullptr : g.key_ok.data() + b * g.lk;
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

// Multiplies P (rows x cols, stride kBlockK) by the dropout multipliers of (x, i0.., j0..). The
// uniforms of one row are consecutive counters: generated 16 at a time (core/rng.hpp).
template <class T>
void apply_dropout(
    const Geometry& g, int64_t x, int64_t i0, int64_t rows, int64_t j0, int64_t cols, T* p) {
  const double keep = 1.0 - g.drop_p;
  const T inv = static_cast<T>(1.0 / keep);
  double u[kBlockK];
  for (int64_t r = 0; r < rows; ++r) {
    uniform01_block(g.drop_key, detail::dropout_index(x, i0 + r, j0, g.lq, g.lk), cols, u);
    for (int64_t c = 0; c < cols; ++c) p[r * kBlockK + c] *= u[c] < keep ? inv : T(0);
  }
}

template <class T>
void forward(const Geometry& g, const T* q, const T* k, const T* v, T* out, T* lse) {
  using B = simd::Batch<T>;
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  const int64_t tasks = g.bh() * g.q_tiles();
  parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> s(kBlockQ * kBlockK), acc(kBlockQ * g.dv), m(kBlockQ), l(kBlockQ);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t x = task / g.q_tiles(), qt = zigzag(task % g.q_tiles(), g.q_tiles());
      const int64_t i0 = qt * kBlockQ, i1 = std::min(g.lq, i0 + kBlockQ), rows = i1 - i0;
      const T* qx = q + x * g.lq * g.d;
      const T* kx = k + x * g.lk * g.d;
      const T* vx = v + x * g.lk * g.dv;
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(m.begin(), m.end(), kNegInf);
      std::fill(l.begin(), l.end(), T(0));
      const int64_t kts = g.k_tiles_for(qt);
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
  const double keep = 1.0 - g.drop_p;
  const T inv = g.drop_p > 0 ? static_cast<T>(1.0 / keep) : T(1);
  double u[kBlockK];
  for (int64_t r = 0; r < rows; ++r) {
    if (g.drop_p > 0) {
      uniform01_block(g.drop_key, detail::dropout_index(x, i0 + r, j0, g.lq, g.lk), cols, u);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const T mult = g.drop_p > 0 ? (u[c] < keep ? inv : T(0)) : T(1);
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
inline int64_t dq_groups(const Geometry& g) {
  return std::min<int64_t>(g.k_tiles(), std::max<int64_t>(1, (8 + g.bh() - 1) / g.bh()));
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
  std::vector<T> dvec(g.bh() * g.lq);
  parallel_for(0, g.bh() * g.lq, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      dvec[r] = simd::dot_contiguous(dout + r * g.dv, out + r * g.dv, g.dv);
    }
  });
  const int64_t groups = dq_groups(g);
  std::vector<T> partial(groups > 1 ? groups * g.bh() * g.lq * g.d : 0);
  parallel_for(0, g.bh() * groups, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> s(kBlockQ * kBlockK), dp(kBlockQ * kBlockK), w(kBlockQ * kBlockK);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t x = task / groups, group = task % groups;
      const T *qx = q + x * g.lq * g.d, *kx = k + x * g.lk * g.d, *vx = v + x * g.lk * g.dv;
      const T* dox = dout + x * g.lq * g.dv;
      T* dqx =
          groups > 1 ? partial.data() + (group * g.bh() + x) * g.lq * g.d : dq + x * g.lq * g.d;
      std::fill(dqx, dqx + g.lq * g.d, T(0));
      for (int64_t kt = group; kt < g.k_tiles(); kt += groups) {
        const int64_t j0 = kt * kBlockK, j1 = std::min(g.lk, j0 + kBlockK), cols = j1 - j0;
        T* dkx = dk + (x * g.lk + j0) * g.d;
        T* dvx = dv + (x * g.lk + j0) * g.dv;
        std::fill(dkx, dkx + cols * g.d, T(0));
        std::fill(dvx, dvx + cols * g.dv, T(0));
        for (int64_t qt = g.first_q_tile_for(kt); qt < g.q_tiles(); ++qt) {
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
    const int64_t n = g.bh() * g.lq * g.d;
    parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t e = lo; e < hi; ++e) {
        T acc = partial[e];
        for (int64_t gi = 1; gi < groups; ++gi) acc += partial[gi * n + e];
        dq[e] = acc;
      }
    });
  }
}

class FlashAttention : public ag::Function {
 public:
  FlashAttention(const AttentionMask& mask, double scale, const AttentionDropout& dropout)
      : mask_(mask), scale_(scale), dropout_(dropout) {}
  const char* name() const override { return "softmax_attention_fused"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &q = in[0], &k = in[1], &v = in[2];
    detail::check_attention_inputs(q, k, v, mask_, "softmax_attention_fused");
    ATTNLAB_CHECK(dropout_.p >= 0 && dropout_.p < 1,
                  ValueError,
                  "softmax_attention_fused: dropout p must be in [0, 1), got ",
                  dropout_.p);
    g_.batch = q.size(0);
    g_.heads = q.size(1);
    g_.lq = q.size(2);
    g_.lk = k.size(2);
    g_.d = q.size(3);
    g_.dv = v.size(3);
    g_.offset = g_.lk - g_.lq;
    g_.scale = scale_ != 0.0 ? scale_ : 1.0 / std::sqrt(static_cast<double>(g_.d));
    g_.causal = mask_.causal;
    g_.decay = mask_.decay;
    g_.drop_p = dropout_.p;
    g_.drop_key = dropout_.key;
    if (mask_.key_padding.defined()) {
      const auto flags = mask_.key_padding.to_vector<double>();
      g_.key_ok.resize(flags.size());
      for (std::size_t i = 0; i < flags.size(); ++i) g_.key_ok[i] = flags[i] != 0;
    }
    Tensor out = Tensor::empty({g_.batch, g_.heads, g_.lq, g_.dv}, q.dtype());
    Tensor lse = Tensor::empty({g_.batch, g_.heads, g_.lq}, q.dtype());
    dispatch_float(q.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      flash_detail::forward<T>(
          g_, q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>());
    });
    save_for_backward({q, k, v, out, lse});
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const auto& s = saved();
    const Tensor &q = s[0], &k = s[1], &v = s[2], &out = s[3], &lse = s[4];
    Tensor dq = Tensor::empty(q.shape(), q.dtype()), dk = Tensor::empty(k.shape(), k.dtype()),
           dv = Tensor::empty(v.shape(), v.dtype());
    dispatch_float(q.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      flash_detail::backward<T>(g_,
                                q.data<T>(),
                                k.data<T>(),
                                v.data<T>(),
                                out.data<T>(),
                                lse.data<T>(),
                                grad[0].data<T>(),
                                dq.data<T>(),
                                dk.data<T>(),
                                dv.data<T>());
    });
    return {dq, dk, dv};
  }

 private:
  AttentionMask mask_;
  double scale_;
  AttentionDropout dropout_;
  Geometry g_;
};

}  // namespace flash_detail

Var softmax_attention_fused(const Var& q,
                            const Var& k,
                            const Var& v,
                            const AttentionMask& mask,
                            double scale,
                            const AttentionDropout& dropout) {
  return ag::apply<flash_detail::FlashAttention>({q, k, v}, mask, scale, dropout)[0];
}

}  // namespace attnlab::nn
