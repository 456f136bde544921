// The causal FAVOR+ sweeps (layers/favor_causal.cpp describes the algorithm), compiled once per
// SIMD path: the chunked form of docs/derivations/favor_causal_backward.md section 9.
#include "layers/favor_causal_kernels.hpp"

#include <algorithm>
#include <cmath>

#include "core/matmul.hpp"
#include "core/parallel.hpp"
#include "core/simd.hpp"  // xsimd, renamed for this path

namespace attnlab::ATTNLAB_ARCH {
namespace favor_causal_detail {

// Positions per chunk. The intra-chunk products cost C (E + W) multiply-adds per position on top
// of the 2 E W of the state products (1.4x the counted work at C = 48, E = 256, W = 64), and
// smaller chunks make smaller, less efficient GEMMs. Measured at L = 4096, m = 256, d = 64 on one
// AVX-512 core (CPU samples of fwd + fwd+bwd): C = 32, 48 and 64 within noise of each other
// (48 the best median), 128 about 15 % slower, 16 about 10 % slower.
constexpr int64_t kChunk = 48;

// Output columns per task when there are fewer (batch, head) pairs than threads: a multiple of
// the micro-kernel's 32-float tile width.
constexpr int64_t kMinColumns = 32;

// exp(ls_early - ls_late), the weight of an early position seen from a later one; equal values
// (including -inf = -inf: an empty state) give 1, -inf against a finite value gives 0.
template <class T>
inline T weight(T early, T late) {
  return early == late ? T(1) : std::exp(early - late);
}

template <class T>
struct Sweep {
  int64_t L = 0, E = 0, W = 0;  // positions, feature width of a and b, width of c and out
  const T* a = nullptr;         // [L, E]
  const T* b = nullptr;         // [L, E]
  const T* c = nullptr;         // [L, W]
  const T* ls = nullptr;        // [L] log-scale, or null (all zeros)
  T* out = nullptr;             // [L, W]
  T* den = nullptr;             // [L] or null: den_t = sum of the (weighted, masked) a_t . b_j
  bool reverse = false;
  int64_t col0 = 0, cols = 0;  // the slice of columns of c and out this task computes
};

// Per-task scratch. ap = [diag(fo) a_C | P] (C rows, stride E + C) and sx = [S ; c_C] (E + C rows
// of width cols), so that the inter- and intra-chunk parts are ONE product ap sx with inner
// dimension E + n: one pass over the output tile, and longer micro-kernel runs. O(E W + C E)
// whatever L.
template <class T>
struct Work {
  Work(int64_t E, int64_t cols, int64_t C)
      : ap(C * (E + C)), sx((E + C) * cols), z(E), bs(C * E), fo(C), fi(C) {}
  simd::Scratch<T> ap, sx, z, bs, fo, fi;
};

// Copies rows [0, n) of x (width E) into dst scaled by f, and returns dst; returns x itself when
// every factor is 1.
template <class T>
const T* scaled_rows(const T* x, const T* f, int64_t n, int64_t E, T* dst) {
  if (std::all_of(f, f + n, [](T v) { return v == T(1); }))
    return x;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = 0; e < E; ++e) dst[i * E + e] = f[i] * x[i * E + e];
  return dst;
}

// P[o, i] = a_o . b_i for the chunk's n positions, then the causal mask (i <= o forward, i >= o
// reverse) and the weights w between the two positions; P has leading dimension ldp.
template <class T>
void chunk_scores(const Sweep<T>& s, int64_t t0, int64_t n, T* p, int64_t ldp) {
  const T* a = s.a + t0 * s.E;
  const T* b = s.b + t0 * s.E;
  gemm<T>(false, true, n, n, s.E, T(1), a, s.E, b, s.E, T(0), p, ldp);
  for (int64_t o = 0; o < n; ++o) {
    T* row = p + o * ldp;
    const int64_t lo = s.reverse ? o : 0, hi = s.reverse ? n : o + 1;  // kept: [lo, hi)
    std::fill(row, row + lo, T(0));
    std::fill(row + hi, row + n, T(0));
    if (!s.ls)
      continue;
    const T lo_ls = s.ls[t0 + o];
    for (int64_t i = lo; i < hi; ++i) {
      const T li = s.ls[t0 + i];
      row[i] *= s.reverse ? weight(lo_ls, li) : weight(li, lo_ls);
    }
  }
}

// One chunk [t0, t0 + n): out = [diag(fo) a_C | P] [S ; c_C], with S the state before the chunk
// referred to position ref, then S = fs S + b_C^T diag(fi) c_C referred to new_ref.
template <class T>
void chunk_step(const Sweep<T>& s, int64_t t0, int64_t n, bool first, Work<T>& w) {
  const int64_t E = s.E, W = s.W, cols = s.cols, C = kChunk, lda = E + C;
  const T* c = s.c + t0 * W + s.col0;
  T* out = s.out + t0 * W + s.col0;
  T* ap = w.ap.data();
  T* sx = w.sx.data();
  T* xc = sx + E * cols;  // the chunk's rows of c, below the state
  chunk_scores(s, t0, n, ap + E, lda);
  for (int64_t i = 0; i < n; ++i) std::copy(c + i * W, c + i * W + cols, xc + i * cols);
  // The state's reference position: the last one folded in (forward) or the first (reverse).
  const int64_t ref = s.reverse ? t0 + n : t0 - 1, new_ref = s.reverse ? t0 : t0 + n - 1;
  auto w_pos = [&](int64_t pos, int64_t other, bool pos_is_early) {
    if (!s.ls)
      return T(1);
    const T x = s.ls[pos], y = s.ls[other];
    return pos_is_early ? weight(x, y) : weight(y, x);
  };
  for (int64_t o = 0; o < n; ++o) {
    // forward: the state (ref) is earlier than the output; reverse: later.
    w.fo[o] = first ? T(0) : w_pos(ref, t0 + o, !s.reverse);
    w.fi[o] = w_pos(t0 + o, new_ref, !s.reverse);
  }
  if (first) {
    gemm<T>(false, false, n, cols, n, T(1), ap + E, lda, xc, cols, T(0), out, W);
  } else {
    const T* a = s.a + t0 * E;
    for (int64_t o = 0; o < n; ++o)
      for (int64_t e = 0; e < E; ++e) ap[o * lda + e] = w.fo[o] * a[o * E + e];
    gemm<T>(false, false, n, cols, E + n, T(1), ap, lda, sx, cols, T(0), out, W);
  }
  if (s.den) {  // row sums of the masked scores plus the state's share a_o . z
    for (int64_t o = 0; o < n; ++o) {
      const T* row = ap + o * lda + E;
      T d = T(0);
      for (int64_t i = 0; i < n; ++i) d += row[i];
      if (!first)
        d += w.fo[o] * simd::dot_contiguous(s.a + (t0 + o) * E, w.z.data(), E);
      s.den[t0 + o] = d;
    }
  }
  // The state update. The last chunk's is not needed.
  if ((s.reverse && t0 == 0) || (!s.reverse && t0 + n == s.L))
    return;
  if (first && s.den)
    std::fill(w.z.begin(), w.z.end(), T(0));
  const T fs = first ? T(1) : w_pos(ref, new_ref, !s.reverse);  // first: beta = 0 below
  if (fs != T(1)) {
    for (int64_t i = 0; i < E * cols; ++i) sx[i] *= fs;
    if (s.den)
      for (int64_t e = 0; e < E; ++e) w.z[e] *= fs;
  }
  const T* bs = scaled_rows(s.b + t0 * E, w.fi.data(), n, E, w.bs.data());
  gemm<T>(true, false, E, cols, n, T(1), bs, E, xc, cols, first ? T(0) : T(1), sx, cols);
  if (s.den)
    for (int64_t i = 0; i < n; ++i) simd::axpy(T(1), bs + i * E, w.z.data(), E);
}

template <class T>
void sweep(const Sweep<T>& s, Work<T>& w) {
  const int64_t C = kChunk, chunks = (s.L + C - 1) / C;
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t ci = s.reverse ? chunks - 1 - k : k;
    const int64_t t0 = ci * C, n = std::min(C, s.L - t0);
    chunk_step(s, t0, n, k == 0, w);
  }
}

// Columns per task: all of them, or narrower slices when there are fewer (batch, head) pairs
// than threads, so that every thread gets work. A column's arithmetic does not depend on the
// slice (gemm accumulates each element in the same order), so results are bit-identical for any
// thread count.
int64_t task_columns(int64_t W, int64_t bh) {
  const int64_t threads = in_parallel_region() ? 1 : num_threads();
  if (bh >= threads)
    return W;
  const int64_t per = (threads + bh - 1) / bh;
  const int64_t cols = (W + per - 1) / per;
  return std::max(kMinColumns, (cols + kMinColumns - 1) / kMinColumns * kMinColumns);
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
  const int64_t cw = std::min(W, task_columns(W, bh));
  const int64_t slices = (W + cw - 1) / cw;
  parallel_for(0, bh * slices, 1, [&](int64_t t0, int64_t t1) {
    Work<T> work(E, cw, kChunk);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t x = task / slices, sl = task % slices;
      Sweep<T> s;
      s.L = L;
      s.E = E;
      s.W = W;
      s.a = a + x * L * E;
      s.b = b + x * L * E;
      s.c = c + x * L * W;
      s.ls = ls ? ls + x * L : nullptr;
      s.out = out + x * L * W;
      s.den = den && sl == 0 ? den + x * L : nullptr;
      s.reverse = reverse;
      s.col0 = sl * cw;
      s.cols = std::min(cw, W - s.col0);
      sweep(s, work);
    }
  });
}

}  // namespace favor_causal_detail

const nn::favor_causal_detail::FavorCausalKernels& favor_causal_kernels() {
  static constexpr nn::favor_causal_detail::FavorCausalKernels kTable{
      &favor_causal_detail::sweeps<float>, &favor_causal_detail::sweeps<double>};
  return kTable;
}

}  // namespace attnlab::ATTNLAB_ARCH
