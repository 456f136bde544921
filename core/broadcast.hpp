// Broadcast iteration shared by the element-wise kernels (internal to core/ .cpp files).
//
// Operands are contiguous, so after broadcasting each one's stride along an output dimension is
// either its contiguous stride or 0. Adjacent dimensions that every operand walks contiguously
// are merged; the innermost merged dimension becomes a row processed by SIMD code with operand
// strides of 1 or 0.
#pragma once

#include <array>
#include <cstdint>

#include "core/parallel.hpp"
#include "core/shape.hpp"

namespace attnlab::detail {

template <int N>
struct BroadcastPlan {
  int rank = 0;
  int64_t dims[Shape::kMaxRank] = {};
  int64_t strides[N][Shape::kMaxRank] = {};
  int64_t inner() const { return rank ? dims[rank - 1] : 1; }
  int64_t rows() const {
    int64_t r = 1;
    for (int i = 0; i + 1 < rank; ++i) r *= dims[i];
    return r;
  }
};

template <int N>
BroadcastPlan<N> make_broadcast_plan(const Shape& out, const std::array<Shape, N>& ins) {
  BroadcastPlan<N> full;
  full.rank = out.rank();
  for (int k = 0; k < N; ++k) {
    const Shape& s = ins[k];
    int64_t acc = 1;
    for (int i = out.rank() - 1; i >= 0; --i) {
      const int j = i - (out.rank() - s.rank());
      const int64_t d = j >= 0 ? s[j] : 1;
      full.strides[k][i] = (d == 1 && out[i] != 1) ? 0 : acc;
      acc *= d;
    }
  }
  for (int i = 0; i < out.rank(); ++i) full.dims[i] = out[i];
  // Drop size-1 dimensions, then merge dimension i into i+1 when every operand continues
  // contiguously (stride[i] == stride[i+1] * dims[i+1], which also holds for two zeros).
  BroadcastPlan<N> p;
  for (int i = 0; i < full.rank; ++i) {
    if (full.dims[i] == 1)
      continue;
    bool merge = p.rank > 0;
    for (int k = 0; k < N && merge; ++k) {
      merge = p.strides[k][p.rank - 1] == full.strides[k][i] * full.dims[i];
    }
    if (merge) {
      p.dims[p.rank - 1] *= full.dims[i];
      for (int k = 0; k < N; ++k) p.strides[k][p.rank - 1] = full.strides[k][i];
    } else {
      p.dims[p.rank] = full.dims[i];
      for (int k = 0; k < N; ++k) p.strides[k][p.rank] = full.strides[k][i];
      ++p.rank;
    }
  }
  if (p.rank == 0) {  // a single element
    p.rank = 1;
    p.dims[0] = 1;
    for (int k = 0; k < N; ++k) p.strides[k][0] = 1;
  }
  return p;
}

// Calls row(offsets, out_offset, n, inner_strides) for every innermost row, in parallel over rows.
// offsets[k] is operand k's element offset at the row start; inner_strides[k] is 0 or 1.
template <int N, class F>
void for_each_broadcast_row(const BroadcastPlan<N>& p, F&& row) {
  const int64_t inner = p.inner(), rows = p.rows();
  const int outer_rank = p.rank - 1;
  std::array<int64_t, N> inner_strides;
  for (int k = 0; k < N; ++k) inner_strides[k] = p.strides[k][p.rank - 1];
  const int64_t grain = inner >= (1 << 15) ? 1 : (1 << 15) / inner;
  parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    int64_t idx[Shape::kMaxRank] = {};
    std::array<int64_t, N> off{};
    int64_t rem = r0;
    for (int i = outer_rank - 1; i >= 0; --i) {
      idx[i] = rem % p.dims[i];
      rem /= p.dims[i];
      for (int k = 0; k < N; ++k) off[k] += idx[i] * p.strides[k][i];
    }
    for (int64_t r = r0; r < r1; ++r) {
      row(off, r * inner, inner, inner_strides);
      for (int i = outer_rank - 1; i >= 0; --i) {  // advance the outer index like an odometer
        for (int k = 0; k < N; ++k) off[k] += p.strides[k][i];
        if (++idx[i] < p.dims[i])
          break;
        for (int k = 0; k < N; ++k) off[k] -= idx[i] * p.strides[k][i];
        idx[i] = 0;
      }
    }
  });
}

}  // namespace attnlab::detail
