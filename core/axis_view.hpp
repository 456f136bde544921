// A tensor seen as [outer, n, inner] around one axis: the layout every axis-wise kernel
// (reductions, scans, softmax over an axis, index ops) works on. Internal to core/ .cpp files.
#pragma once

#include <cstdint>

#include "core/shape.hpp"

namespace attnlab::detail {

struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
};

inline AxisView axis_view(const Shape& s, int axis) {
  AxisView v;
  for (int i = 0; i < axis; ++i) v.outer *= s[i];
  v.n = s[axis];
  for (int i = axis + 1; i < s.rank(); ++i) v.inner *= s[i];
  return v;
}

}  // namespace attnlab::detail
