// The causal FAVOR+ sweeps (layers/attention/favor/favor_causal.cpp describes the algorithm),
// compiled once per SIMD path.
#include "layers/attention/favor/favor_causal_kernels.hpp"

#include <algorithm>
#include <cmath>

#include "core/parallel.hpp"
#include "core/simd.hpp"  // xsimd, renamed for this path

namespace attnlab::ATTNLAB_ARCH {
namespace favor_causal_detail {

constexpr int64_t kMaxBatches = 4;  // SIMD batches of columns per chunk (x2 tokens in registers)

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

template <class T, int NB>
void sweep_chunk(const Sweep<T>& s, int64_t col0, T* state, T* z) {
  using B = simd::Batch<T>;
  constexpr int64_t Wd = simd::width<T>();
  constexpr int64_t CW = NB * Wd;
  const int64_t L = s.L, E = s.E;
  std::fill(state, state + E * CW, T(0));
  if (z)
    std::fill(z, z + E, T(0));
  auto pos = [&](int64_t step) {
    return s.reverse ? L - 1 - step : step;
  };
  auto row = [](const T* base, int64_t ld, int64_t t) {
    return base + t * ld;
  };
  auto out = [&](int64_t t) {
    return s.out + t * s.ldo + col0;
  };
  for (int64_t step = 0; step < L;) {
    const int64_t t = pos(step);
    if (s.ls && step > 0) {
      const T f = step_factor(s.ls, pos(step - 1), t, s.reverse);
      if (f != T(1)) {
        const B vf(f);
        for (int64_t i = 0; i < E * CW; i += Wd)
          (B::load_aligned(state + i) * vf).store_aligned(state + i);
        if (z)
          for (int64_t e = 0; e < E; ++e) z[e] *= f;
      }
    }
    const int64_t u = step + 1 < L ? pos(step + 1) : -1;
    const bool pair = u >= 0 && (!s.ls || s.ls[u] == s.ls[t]);
    if (pair) {
      step_two<T, NB>(row(s.a, E, t),
                      row(s.b, E, t),
                      row(s.c, s.ldc, t) + col0,
                      out(t),
                      row(s.a, E, u),
                      row(s.b, E, u),
                      row(s.c, s.ldc, u) + col0,
                      out(u),
                      state,
                      E);
    } else {
      step_one<T, NB>(row(s.a, E, t), row(s.b, E, t), row(s.c, s.ldc, t) + col0, state, E, out(t));
    }
    if (z) {  // the normaliser: z += b_t, den_t = a_t . z  (the augmented ones column)
      for (int64_t p : {t, u}) {
        if (p < 0 || (p == u && !pair))
          continue;
        simd::axpy(T(1), row(s.b, E, p), z, E);
        s.den[p] = simd::dot_contiguous(row(s.a, E, p), z, E);
      }
    }
    step += pair ? 2 : 1;
  }
}

template <class T>
using ChunkFn = void (*)(const Sweep<T>&, int64_t, T*, T*);

template <class T>
ChunkFn<T> chunk_kernel(int64_t nb) {
  switch (nb) {
    case 1:
      return sweep_chunk<T, 1>;
    case 2:
      return sweep_chunk<T, 2>;
    case 3:
      return sweep_chunk<T, 3>;
    default:
      return sweep_chunk<T, 4>;
  }
}

// Batches per chunk: as many as the registers hold (kMaxBatches: the whole 64-wide head of float32
// on AVX-512 in one pass; measured no better with narrower, L1-resident state slices at m = 256
// or 1024), narrower only when there are fewer (batch, head) pairs than threads, so that every
// thread gets a chunk.
int64_t chunk_batches(int64_t nb, int64_t bh) {
  int64_t cb = std::min(nb, kMaxBatches);
  const int64_t threads = in_parallel_region() ? 1 : num_threads();
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
  const int64_t cb = chunk_batches(nb, bh);
  const int64_t chunks = (nb + cb - 1) / cb;
  parallel_for(0, bh * chunks, 1, [&](int64_t t0, int64_t t1) {
    simd::Scratch<T> state(E * cb * Wd), z(den ? E : 0);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t x = task / chunks, ch = task % chunks;
      const int64_t col0 = ch * cb * Wd, nbc = std::min(cb, nb - ch * cb);
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
      s.den = den && ch == 0 ? den + x * L : nullptr;
      s.reverse = reverse;
      chunk_kernel<T>(nbc)(s, col0, state.data(), s.den ? z.data() : nullptr);
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
