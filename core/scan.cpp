#include "core/scan.hpp"

#include <algorithm>
#include <cmath>

#include "core/axis_view.hpp"
#include "core/parallel.hpp"

namespace attnlab {
namespace {

// h_t = decay * h_prev + x_t along the axis of `v`, forward or reverse. Rows (inner == 1) are
// independent recurrences; otherwise each step updates a whole inner vector (vectorised).
template <class T>
void scan(const T* x, T* y, const detail::AxisView& v, T decay, bool reverse) {
  constexpr int64_t kChunk = 512;
  const int64_t chunks = (v.inner + kChunk - 1) / kChunk;
  const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, v.n * kChunk));
  parallel_for(0, v.outer * chunks, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t job = lo; job < hi; ++job) {
      const int64_t o = job / chunks, c0 = (job % chunks) * kChunk;
      const int64_t c1 = std::min(v.inner, c0 + kChunk);
      const T* xo = x + o * v.n * v.inner;
      T* yo = y + o * v.n * v.inner;
      for (int64_t s = 0; s < v.n; ++s) {
        const int64_t t = reverse ? v.n - 1 - s : s;
        const T* xt = xo + t * v.inner;
        T* yt = yo + t * v.inner;
        if (s == 0) {
          for (int64_t i = c0; i < c1; ++i) yt[i] = xt[i];
        } else {
          const T* prev = yo + (reverse ? t + 1 : t - 1) * v.inner;
          decayed_scan_step(prev + c0, xt + c0, yt + c0, c1 - c0, decay);
        }
      }
    }
  });
}

Tensor run(const Tensor& x, int axis, double decay, bool reverse, const char* op) {
  ATTNLAB_CHECK(x.defined(), ValueError, op, ": undefined tensor");
  ATTNLAB_CHECK(std::isfinite(decay), ValueError, op, ": decay must be finite, got ", decay);
  const int ax = normalize_axis(axis, x.dim(), op);
  return dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    if (y.numel()) {
      scan<T>(x.data<T>(),
              y.data<T>(),
              detail::axis_view(x.shape(), ax),
              static_cast<T>(decay),
              reverse);
    }
    return y;
  });
}

}  // namespace

void decayed_scan_step(const float* prev, const float* x, float* y, int64_t n, float decay) {
  for (int64_t i = 0; i < n; ++i) y[i] = decay * prev[i] + x[i];
}
void decayed_scan_step(const double* prev, const double* x, double* y, int64_t n, double decay) {
  for (int64_t i = 0; i < n; ++i) y[i] = decay * prev[i] + x[i];
}

Tensor cumsum(const Tensor& x, int axis, bool reverse) {
  return run(x, axis, 1.0, reverse, "cumsum");
}

Tensor decayed_scan(const Tensor& x, int axis, double decay, bool reverse) {
  return run(x, axis, decay, reverse, "decayed_scan");
}

}  // namespace attnlab
