#include "core/shape_ops.hpp"

#include <algorithm>
#include <cstring>

#include "core/axis_view.hpp"
#include "core/parallel.hpp"

namespace attnlab {
namespace {

// Copies with an element type of the right size (the ops here only move bytes).
template <class F>
void by_element_size(DType d, F&& f) {
  if (dtype_size(d) == 4) {
    f(uint32_t{});
  } else {
    f(uint64_t{});
  }
}

}  // namespace

Tensor permute(const Tensor& x, const std::vector<int>& dims) {
  ATTNLAB_CHECK(x.defined(), ValueError, "permute: undefined tensor");
  const int r = x.dim();
  ATTNLAB_CHECK(static_cast<int>(dims.size()) == r,
                ShapeError,
                "permute: ",
                dims.size(),
                " dimensions given for shape ",
                x.shape());
  std::vector<int> perm(r);
  std::vector<bool> seen(r, false);
  for (int i = 0; i < r; ++i) {
    perm[i] = normalize_axis(dims[i], r, "permute");
    ATTNLAB_CHECK(!seen[perm[i]],
                  ValueError,
                  "permute: axis ",
                  dims[i],
                  " repeated in the permutation of shape ",
                  x.shape());
    seen[perm[i]] = true;
  }
  Shape out_shape;
  for (int i = 0; i < r; ++i) out_shape.push_back(x.shape()[perm[i]]);
  Tensor y = Tensor::empty(out_shape, x.dtype());
  if (y.numel() == 0)
    return y;
  const auto in_strides = contiguous_strides(x.shape());
  std::vector<int64_t> st(r);  // input stride for each output dimension
  for (int i = 0; i < r; ++i) st[i] = in_strides[perm[i]];
  const int64_t inner = r ? out_shape[r - 1] : 1, inner_stride = r ? st[r - 1] : 1;
  const int64_t rows = y.numel() / inner;
  by_element_size(x.dtype(), [&](auto tag) {
    using E = decltype(tag);
    const E* xp = static_cast<const E*>(x.raw_data());
    E* yp = static_cast<E*>(y.raw_data());
    parallel_for(0, rows, std::max<int64_t>(1, (1 << 15) / inner), [&](int64_t lo, int64_t hi) {
      int64_t idx[Shape::kMaxRank] = {};
      int64_t off = 0, rem = lo;
      for (int i = r - 2; i >= 0; --i) {
        idx[i] = rem % out_shape[i];
        rem /= out_shape[i];
        off += idx[i] * st[i];
      }
      for (int64_t row = lo; row < hi; ++row) {
        E* dst = yp + row * inner;
        if (inner_stride == 1) {
          std::memcpy(dst, xp + off, sizeof(E) * inner);
        } else {
          for (int64_t j = 0; j < inner; ++j) dst[j] = xp[off + j * inner_stride];
        }
        for (int i = r - 2; i >= 0; --i) {
          off += st[i];
          if (++idx[i] < out_shape[i])
            break;
          off -= idx[i] * st[i];
          idx[i] = 0;
        }
      }
    });
  });
  return y;
}

Tensor transpose(const Tensor& x, int axis0, int axis1) {
  ATTNLAB_CHECK(x.defined(), ValueError, "transpose: undefined tensor");
  const int a = normalize_axis(axis0, x.dim(), "transpose");
  const int b = normalize_axis(axis1, x.dim(), "transpose");
  if (a == b)
    return x.clone();
  std::vector<int> perm(x.dim());
  for (int i = 0; i < x.dim(); ++i) perm[i] = i;
  std::swap(perm[a], perm[b]);
  return permute(x, perm);
}

Tensor slice(const Tensor& x, int axis, int64_t start, int64_t stop, int64_t step) {
  ATTNLAB_CHECK(x.defined(), ValueError, "slice: undefined tensor");
  ATTNLAB_CHECK(step >= 1, ValueError, "slice: step must be >= 1, got ", step);
  const int ax = normalize_axis(axis, x.dim(), "slice");
  const int64_t n = x.shape()[ax];
  auto clamp_bound = [n](int64_t b) {
    if (b < 0)
      b += n;
    return std::min(std::max<int64_t>(b, 0), n);
  };
  start = clamp_bound(start);
  stop = clamp_bound(stop);
  const int64_t count = stop > start ? (stop - start + step - 1) / step : 0;
  Shape out_shape = x.shape();
  out_shape[ax] = count;
  Tensor y = Tensor::empty(out_shape, x.dtype());
  const auto v = detail::axis_view(x.shape(), ax);
  const std::size_t row = static_cast<std::size_t>(v.inner) * dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y.raw_data());
  for (int64_t o = 0; o < v.outer; ++o) {
    for (int64_t j = 0; j < count; ++j) {
      std::memcpy(dst + (o * count + j) * row, src + (o * n + start + j * step) * row, row);
    }
  }
  return y;
}

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  ATTNLAB_CHECK(!xs.empty(), ValueError, "concat: no tensors given");
  const Tensor& first = xs[0];
  ATTNLAB_CHECK(first.defined(), ValueError, "concat: undefined tensor");
  const int ax = normalize_axis(axis, first.dim(), "concat");
  int64_t total = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    ATTNLAB_CHECK(t.defined() && t.dtype() == first.dtype(),
                  DTypeError,
                  "concat: tensor ",
                  i,
                  " is ",
                  t.defined() ? dtype_name(t.dtype()) : "undefined",
                  ", tensor 0 is ",
                  first.dtype());
    bool same = t.dim() == first.dim();
    for (int d = 0; same && d < t.dim(); ++d) same = d == ax || t.shape()[d] == first.shape()[d];
    ATTNLAB_CHECK(same,
                  ShapeError,
                  "concat: tensor ",
                  i,
                  " has shape ",
                  t.shape(),
                  ", incompatible with tensor 0 of shape ",
                  first.shape(),
                  " along axis ",
                  ax);
    total += t.shape()[ax];
  }
  Shape out_shape = first.shape();
  out_shape[ax] = total;
  Tensor y = Tensor::empty(out_shape, first.dtype());
  const auto v = detail::axis_view(out_shape, ax);
  const std::size_t esize = dtype_size(first.dtype());
  char* dst = static_cast<char*>(y.raw_data());
  for (int64_t o = 0; o < v.outer; ++o) {
    for (const Tensor& t : xs) {
      const std::size_t block = static_cast<std::size_t>(t.shape()[ax] * v.inner) * esize;
      if (block == 0)
        continue;
      std::memcpy(dst, static_cast<const char*>(t.raw_data()) + o * block, block);
      dst += block;
    }
  }
  return y;
}

Tensor stack(const std::vector<Tensor>& xs, int axis) {
  ATTNLAB_CHECK(!xs.empty(), ValueError, "stack: no tensors given");
  std::vector<Tensor> expanded;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    ATTNLAB_CHECK(xs[i].defined() && xs[i].shape() == xs[0].shape(),
                  ShapeError,
                  "stack: tensor ",
                  i,
                  " has shape ",
                  xs[i].shape(),
                  ", tensor 0 has ",
                  xs[0].shape());
    expanded.push_back(unsqueeze(xs[i], axis));
  }
  return concat(expanded, axis);
}

Tensor pad(const Tensor& x, const std::vector<std::pair<int64_t, int64_t>>& widths, double value) {
  ATTNLAB_CHECK(x.defined(), ValueError, "pad: undefined tensor");
  ATTNLAB_CHECK(static_cast<int>(widths.size()) == x.dim(),
                ShapeError,
                "pad: ",
                widths.size(),
                " (before, after) pairs for shape ",
                x.shape());
  Shape out_shape;
  for (int d = 0; d < x.dim(); ++d) {
    ATTNLAB_CHECK(widths[d].first >= 0 && widths[d].second >= 0,
                  ValueError,
                  "pad: negative width in dimension ",
                  d);
    out_shape.push_back(x.shape()[d] + widths[d].first + widths[d].second);
  }
  Tensor y = full(out_shape, value, x.dtype());
  if (x.numel() == 0)
    return y;
  const int r = x.dim();
  if (r == 0) {
    y.copy_from(x);
    return y;
  }
  const auto ost = contiguous_strides(out_shape);
  const int64_t inner = x.shape()[r - 1];
  const int64_t rows = x.numel() / inner;
  const std::size_t esize = dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y.raw_data());
  int64_t idx[Shape::kMaxRank] = {};
  for (int64_t row = 0; row < rows; ++row) {
    int64_t off = widths[r - 1].first;
    for (int d = 0; d < r - 1; ++d) off += (idx[d] + widths[d].first) * ost[d];
    std::memcpy(dst + off * esize, src + row * inner * esize, inner * esize);
    for (int d = r - 2; d >= 0; --d) {
      if (++idx[d] < x.shape()[d])
        break;
      idx[d] = 0;
    }
  }
  return y;
}

Tensor unsqueeze(const Tensor& x, int axis) {
  ATTNLAB_CHECK(x.defined(), ValueError, "unsqueeze: undefined tensor");
  const int ax = normalize_axis(axis, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(ax, 1);
  return x.reshape(s);
}

Tensor squeeze(const Tensor& x, int axis) {
  ATTNLAB_CHECK(x.defined(), ValueError, "squeeze: undefined tensor");
  const int ax = normalize_axis(axis, x.dim(), "squeeze");
  ATTNLAB_CHECK(x.shape()[ax] == 1,
                ShapeError,
                "squeeze: dimension ",
                axis,
                " of shape ",
                x.shape(),
                " is not 1");
  Shape s = x.shape();
  s.erase(ax);
  return x.reshape(s);
}

}  // namespace attnlab
