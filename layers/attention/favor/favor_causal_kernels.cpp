// The causal FAVOR+ sweeps (layers/attention/favor/favor_causal.cpp describes the algorithm),
// compiled once per SIMD path.
#include "layers/attention/favor/favor_causal_kernels.hpp"

#include <algorithm>
#include <cmath>

#include "core/parallel.hpp"
#include "core/simd.hpp"  // xsimd, renamed for this path

namespace attnlab::ATTNLAB_ARCH {
namespace favor_causal_detail {

constexpr int64_t kMaxBatches = 4;  // SIMD batches of columns per chunk
// Four tokens per pass (step_four) where there are 32 vector registers: 512-bit vectors.
constexpr bool kFourTokens = simd::width<float>() == 16;

template <class T>
struct Sweep {
  int64_t L = 0, E = 0;
  const T* a = nullptr;  // [L, E]
  const T* b = nullptr;  // [L, E]
  const T* c = nullptr;  // [L, ldc]
  int64_t ldc = 0;
  const T* ls = nullptr;  // [L] log-scale, or null (all zeros)
  T* out = nullptr;       // [L, ldo]
  int64_t ldo = 0;
  T* den = nullptr;  // [L] or null: den_t = a_t . z_t, z_t the rescaled prefix sum of b
  bool reverse = false;
};

// State factor when stepping from position p (already in the state) to t.
template <class T>
inline T step_factor(const T* ls, int64_t p, int64_t t, bool reverse) {
  const T lo = reverse ? ls[t] : ls[p], hi = reverse ? ls[p] : ls[t];
  return lo == hi ? T(1) : std::exp(lo - hi);  // -inf -> 0 (an empty state); equal -inf -> 1
}

// One token: S = f S + b_t c_t^T (already rescaled), out_t = a_t^T S, over the rows of the slice.
template <class T, int NB>
inline void step_one(const T* at, const T* bt, const T* ct, T* state, int64_t E, T* ot) {
  using B = simd::Batch<T>;
  constexpr int64_t Wd = simd::width<T>();
  constexpr int64_t CW = NB * Wd;
  B cv[NB], acc[NB];
  for (int n = 0; n < NB; ++n) {
    cv[n] = B::load_unaligned(ct + n * Wd);
    acc[n] = B(T(0));
  }
  for (int64_t e = 0; e < E; ++e) {
    const B a(at[e]), b(bt[e]);
    T* st = state + e * CW;
    for (int n = 0; n < NB; ++n) {
      const B x = xsimd::fma(b, cv[n], B::load_aligned(st + n * Wd));
      x.store_aligned(st + n * Wd);
      acc[n] = xsimd::fma(a, x, acc[n]);
    }
  }
  for (int n = 0; n < NB; ++n) acc[n].store_unaligned(ot + n * Wd);
}

// Two consecutive tokens (no rescale between them) in one pass over the state: the same
// arithmetic as two step_one calls (so results do not depend on the pairing), with half the
// state loads and stores, and 2 NB independent accumulator chains to cover the FMA latency.
template <class T, int NB>
inline void step_two(const T* at,
                     const T* bt,
                     const T* ct,
                     T* ot,
                     const T* au,
                     const T* bu,
                     const T* cu,
                     T* ou,
                     T* state,
                     int64_t E) {
  using B = simd::Batch<T>;
  constexpr int64_t Wd = simd::width<T>();
  constexpr int64_t CW = NB * Wd;
  B c0[NB], c1[NB], acc0[NB], acc1[NB];
  for (int n = 0; n < NB; ++n) {
    c0[n] = B::load_unaligned(ct + n * Wd);
    c1[n] = B::load_unaligned(cu + n * Wd);
    acc0[n] = B(T(0));
    acc1[n] = B(T(0));
  }
  for (int64_t e = 0; e < E; ++e) {
    const B a0(at[e]), b0(bt[e]), a1(au[e]), b1(bu[e]);
    T* st = state + e * CW;
    for (int n = 0; n < NB; ++n) {
      B x = xsimd::fma(b0, c0[n], B::load_aligned(st + n * Wd));
      acc0[n] = xsimd::fma(a0, x, acc0[n]);
      x = xsimd::fma(b1, c1[n], x);
      acc1[n] = xsimd::fma(a1, x, acc1[n]);
      x.store_aligned(st + n * Wd);
    }
  }
  for (int n = 0; n < NB; ++n) {
    acc0[n].store_unaligned(ot + n * Wd);
    acc1[n].store_unaligned(ou + n * Wd);
  }
}

// Four consecutive tokens (no rescale between them) in one pass over the state: again the
// arithmetic of four step_one calls, with a quarter of the state's loads and stores. The state
// slice (E rows of NB vectors) leaves L1 at E = 256 and NB = 4 (64 KiB), where the pass is
// bound by the state's traffic. 4 NB accumulators and 4 NB column vectors: at NB = 4 that is
// every register of AVX-512 and some column vectors are reloaded from L1 at each row (still
// 1.4x two tokens per pass there); with 16 registers it would spill far more, so only on paths
// with 32 (kFourTokens).
template <class T, int NB>
inline void step_four(
    const T* const* a, const T* const* b, const T* const* c, T* const* o, T* state, int64_t E) {
  using B = simd::Batch<T>;
  constexpr int64_t Wd = simd::width<T>();
  constexpr int64_t CW = NB * Wd;
  // The row pointers in locals: the state's vector stores may alias anything, and would make
  // the compiler reload a[k] and b[k] from memory at every row.
  const T *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
  const T *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
  B cv[4][NB], acc[4][NB];
  for (int k = 0; k < 4; ++k)
    for (int n = 0; n < NB; ++n) {
      cv[k][n] = B::load_unaligned(c[k] + n * Wd);
      acc[k][n] = B(T(0));
    }
  for (int64_t e = 0; e < E; ++e) {
    T* st = state + e * CW;
    B x[NB];
    for (int n = 0; n < NB; ++n) x[n] = B::load_aligned(st + n * Wd);
    const T av[4] = {a0[e], a1[e], a2[e], a3[e]}, bv[4] = {b0[e], b1[e], b2[e], b3[e]};
    for (int k = 0; k < 4; ++k) {
      const B ak(av[k]), bk(bv[k]);
      for (int n = 0; n < NB; ++n) {
        x[n] = xsimd::fma(bk, cv[k][n], x[n]);
        acc[k][n] = xsimd::fma(ak, x[n], acc[k][n]);
      }
    }
    for (int n = 0; n < NB; ++n) x[n].store_aligned(st + n * Wd);
  }
  for (int k = 0; k < 4; ++k)
    for (int n = 0; n < NB; ++n) acc[k][n].store_unaligned(o[k] + n * Wd);
}

// One group of 1, 2 or 4 tokens on one column chunk of NB batches.
template <class T, int NB>
void step_group(int64_t group,
                const T* const* a,
                const T* const* b,
                const T* const* c,
                T* const* o,
                T* state,
                int64_t E) {
  if (group == 4)
    step_four<T, NB>(a, b, c, o, state, E);
  else if (group == 2)
    step_two<T, NB>(a[0], b[0], c[0], o[0], a[1], b[1], c[1], o[1], state, E);
  else
    step_one<T, NB>(a[0], b[0], c[0], state, E, o[0]);
}

template <class T>
using GroupFn =
    void (*)(int64_t, const T* const*, const T* const*, const T* const*, T* const*, T*, int64_t);

template <class T>
GroupFn<T> group_kernel(int64_t nb) {
  switch (nb) {
    case 1:
      return step_group<T, 1>;
    case 2:
      return step_group<T, 2>;
    case 3:
      return step_group<T, 3>;
    default:
      return step_group<T, 4>;
  }
}

// A task's column chunks: chunk i covers the columns from col0 + i * cb * Wd, all with cb SIMD
// batches but the last (last_nb), and keeps its state slice (E rows of cb batches) at
// state + i * E * cb * Wd. Each group of tokens steps every chunk before the
// next group, so the rows of c and out are read and written whole and a and b stay in L1 across
// the chunks (at m = 256, one chunk at a time read c and wrote out in 256-byte pieces of 1 KiB
// rows: 0.8x the speed).
template <class T>
void sweep_chunks(
    const Sweep<T>& s, int64_t col0, int64_t chunks, int64_t cb, int64_t last_nb, T* state, T* z) {
  using B = simd::Batch<T>;
  constexpr int64_t Wd = simd::width<T>();
  const int64_t L = s.L, E = s.E, cw = cb * Wd, span = E * cw;
  const GroupFn<T> full = group_kernel<T>(cb), last = group_kernel<T>(last_nb);
  std::fill(state, state + chunks * span, T(0));
  if (z)
    std::fill(z, z + E, T(0));
  auto pos = [&](int64_t step) {
    return s.reverse ? L - 1 - step : step;
  };
  for (int64_t step = 0; step < L;) {
    const int64_t t = pos(step);
    if (s.ls && step > 0) {
      const T f = step_factor(s.ls, pos(step - 1), t, s.reverse);
      if (f != T(1)) {
        const B vf(f);
        for (int64_t i = 0; i < chunks * span; i += Wd)
          (B::load_aligned(state + i) * vf).store_aligned(state + i);
        if (z)
          for (int64_t e = 0; e < E; ++e) z[e] *= f;
      }
    }
    // Tokens from t on that share its log-scale (no rescale between them), grouped by 4, 2 or 1.
    int64_t run = 1;
    while (run < 4 && step + run < L && (!s.ls || s.ls[pos(step + run)] == s.ls[t])) ++run;
    const int64_t group = run == 4 && kFourTokens ? 4 : run >= 2 ? 2 : 1;
    int64_t p[4];
    const T *ap[4], *bp[4], *cp[4];
    T* op[4];
    for (int64_t k = 0; k < group; ++k) {
      p[k] = pos(step + k);
      ap[k] = s.a + p[k] * E;
      bp[k] = s.b + p[k] * E;
      cp[k] = s.c + p[k] * s.ldc + col0;
      op[k] = s.out + p[k] * s.ldo + col0;
    }
    for (int64_t i = 0; i < chunks; ++i) {
      (i + 1 < chunks ? full : last)(group, ap, bp, cp, op, state + i * span, E);
      for (int64_t k = 0; k < group; ++k) {
        cp[k] += cw;
        op[k] += cw;
      }
    }
    if (z) {  // the normaliser: z += b_t, den_t = a_t . z  (the augmented ones column)
      for (int64_t k = 0; k < group; ++k) {
        simd::axpy(T(1), bp[k], z, E);
        s.den[p[k]] = simd::dot_contiguous(ap[k], z, E);
      }
    }
    step += group;
  }
}

// Batches per chunk: as many as the registers hold (kMaxBatches: the whole 64-wide head of float32
// on AVX-512 in one pass; measured no better with narrower, L1-resident state slices at m = 256
// or 1024), narrower only when there are fewer (batch, head) pairs than threads, so that every
// thread gets a group of chunks.
int64_t chunk_batches(int64_t nb, int64_t bh, int64_t threads) {
  int64_t cb = std::min(nb, kMaxBatches);
  if (bh < threads) {
    const int64_t per = (threads + bh - 1) / bh;  // chunks wanted per (batch, head)
    cb = std::min(cb, std::max<int64_t>(1, (nb + per - 1) / per));
  }
  // Balance the chunks: nb batches in ceil(nb / cb) near-equal chunks.
  const int64_t chunks = (nb + cb - 1) / cb;
  return (nb + chunks - 1) / chunks;
}

// Runs the sweep for every (batch*head) x: a, b [BH, L, E]; c, out [BH, L, W]; ls, den [BH, L].
template <class T>
void sweeps(int64_t bh,
            int64_t L,
            int64_t E,
            int64_t W,
            const T* a,
            const T* b,
            const T* c,
            const T* ls,
            T* out,
            T* den,
            bool reverse) {
  if (bh == 0)
    return;
  constexpr int64_t Wd = simd::width<T>();
  const int64_t nb = (W + Wd - 1) / Wd, wp = nb * Wd;
  // Zero-padded copies when W is not a multiple of the SIMD width.
  simd::Scratch<T> cpad(wp != W ? bh * L * wp : 0), opad(wp != W ? bh * L * wp : 0);
  const T* cc = c;
  T* oo = out;
  if (wp != W) {
    T* p = cpad.data();
    for (int64_t r = 0; r < bh * L; ++r) std::copy(c + r * W, c + r * W + W, p + r * wp);
    cc = p;
    oo = opad.data();
  }
  // Tasks: per (batch*head), one group of its column chunks: all of them, unless there are fewer
  // (batch*head) pairs than threads; then each pair's chunks are split into up to
  // ceil(threads / pairs) groups so that every thread has work (the normaliser goes with the
  // first group).
  // No columns (W = 0): no chunks, and the sweep still forms the normaliser when it is wanted.
  const int64_t threads = in_parallel_region() ? 1 : num_threads();
  const int64_t cb = nb == 0 ? 1 : chunk_batches(nb, bh, threads);
  const int64_t chunks = (nb + cb - 1) / cb;
  const int64_t groups =
      bh >= threads ? 1 : std::max<int64_t>(1, std::min(chunks, (threads + bh - 1) / bh));
  parallel_for(0, bh * groups, 1, [&](int64_t t0, int64_t t1) {
    simd::Scratch<T> state(((chunks + groups - 1) / groups) * E * cb * Wd), z(den ? E : 0);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t x = task / groups, g = task % groups;
      const int64_t c0 = g * chunks / groups, c1 = (g + 1) * chunks / groups;
      const int64_t last_nb = c1 == chunks ? nb - (chunks - 1) * cb : cb;
      Sweep<T> s;
      s.L = L;
      s.E = E;
      s.a = a + x * L * E;
      s.b = b + x * L * E;
      s.c = cc + x * L * wp;
      s.ldc = wp;
      s.ls = ls ? ls + x * L : nullptr;
      s.out = oo + x * L * wp;
      s.ldo = wp;
      s.den = den && g == 0 ? den + x * L : nullptr;
      s.reverse = reverse;
      sweep_chunks<T>(
          s, c0 * cb * Wd, c1 - c0, cb, last_nb, state.data(), s.den ? z.data() : nullptr);
    }
  });
  if (wp != W) {
    const T* p = opad.data();
    for (int64_t r = 0; r < bh * L; ++r) std::copy(p + r * wp, p + r * wp + W, out + r * W);
  }
}

}  // namespace favor_causal_detail

const nn::favor_causal_detail::FavorCausalKernels& favor_causal_kernels() {
  static constexpr nn::favor_causal_detail::FavorCausalKernels kTable{
      &favor_causal_detail::sweeps<float>, &favor_causal_detail::sweeps<double>};
  return kTable;
}

}  // namespace attnlab::ATTNLAB_ARCH
