#include "core/indexing.hpp"

#include <algorithm>
#include <cstring>

#include "core/axis_view.hpp"
#include "core/parallel.hpp"

namespace attnlab {
namespace {

void check_index_tensor(const Tensor& index, const char* op) {
  ATTNLAB_CHECK(index.defined(), ValueError, op, ": undefined index tensor");
  ATTNLAB_CHECK(index.dtype() == kInt64,
                DTypeError,
                op,
                ": index must be int64, got ",
                index.dtype(),
                " ",
                index.shape());
}

void check_range(const Tensor& index, int64_t n, const char* op, int axis, const Shape& shape) {
  const int64_t* p = index.data<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i) {
    ATTNLAB_CHECK(p[i] >= 0 && p[i] < n,
                  ValueError,
                  op,
                  ": index ",
                  p[i],
                  " out of range [0, ",
                  n,
                  ") for axis ",
                  axis,
                  " of shape ",
                  shape);
  }
}

// Shape of index_select's result: x.shape[:axis] + index.shape + x.shape[axis+1:].
Shape take_shape(const Shape& x, int axis, const Shape& index) {
  Shape out;
  for (int i = 0; i < axis; ++i) out.push_back(x[i]);
  for (int64_t d : index) out.push_back(d);
  for (int i = axis + 1; i < x.rank(); ++i) out.push_back(x[i]);
  return out;
}

// Row-major offsets of every element of `index` into a tensor of `shape`, with the coordinate
// along `axis` replaced by the index value (the addressing of gather / scatter_add).
template <class F>
void for_each_gather(const Shape& shape, int axis, const Tensor& index, F&& f) {
  const auto strides = contiguous_strides(shape);
  const Shape& is = index.shape();
  const int64_t* ip = index.data<int64_t>();
  int64_t coord[Shape::kMaxRank] = {};
  for (int64_t e = 0; e < index.numel(); ++e) {
    int64_t off = 0;
    for (int d = 0; d < is.rank(); ++d) off += (d == axis ? ip[e] : coord[d]) * strides[d];
    f(e, off);
    for (int d = is.rank() - 1; d >= 0; --d) {
      if (++coord[d] < is[d])
        break;
      coord[d] = 0;
    }
  }
}

void check_gather_shapes(const Shape& x, int axis, const Shape& index, const char* op) {
  ATTNLAB_CHECK(index.rank() == x.rank(),
                ShapeError,
                op,
                ": index ",
                index,
                " must have the rank of the data ",
                x);
  for (int d = 0; d < x.rank(); ++d) {
    ATTNLAB_CHECK(d == axis || index[d] <= x[d],
                  ShapeError,
                  op,
                  ": index ",
                  index,
                  " exceeds data ",
                  x,
                  " in dimension ",
                  d);
  }
}

}  // namespace

Tensor index_select(const Tensor& x, int axis, const Tensor& index) {
  ATTNLAB_CHECK(x.defined(), ValueError, "index_select: undefined tensor");
  check_index_tensor(index, "index_select");
  const int ax = normalize_axis(axis, x.dim(), "index_select");
  check_range(index, x.shape()[ax], "index_select", ax, x.shape());
  const auto v = detail::axis_view(x.shape(), ax);
  Tensor y = Tensor::empty(take_shape(x.shape(), ax, index.shape()), x.dtype());
  const int64_t k = index.numel();
  const std::size_t row_bytes = static_cast<std::size_t>(v.inner) * dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y.raw_data());
  const int64_t* ip = index.data<int64_t>();
  if (row_bytes == 0)
    return y;
  parallel_for(0,
               v.outer * k,
               std::max<int64_t>(1, (1 << 16) / static_cast<int64_t>(row_bytes)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t job = lo; job < hi; ++job) {
                   const int64_t o = job / k, j = job % k;
                   std::memcpy(
                       dst + job * row_bytes, src + (o * v.n + ip[j]) * row_bytes, row_bytes);
                 }
               });
  return y;
}

Tensor index_add(const Shape& shape, int axis, const Tensor& index, const Tensor& src) {
  ATTNLAB_CHECK(src.defined(), ValueError, "index_add: undefined tensor");
  check_index_tensor(index, "index_add");
  const int ax = normalize_axis(axis, shape.rank(), "index_add");
  const Shape expect = take_shape(shape, ax, index.shape());
  ATTNLAB_CHECK(src.shape() == expect,
                ShapeError,
                "index_add: source ",
                src.shape(),
                " does not match ",
                expect,
                " (target ",
                shape,
                ", index ",
                index.shape(),
                ", axis ",
                ax,
                ")");
  check_range(index, shape[ax], "index_add", ax, shape);
  const auto v = detail::axis_view(shape, ax);
  const int64_t k = index.numel();
  const int64_t* ip = index.data<int64_t>();
  return dispatch_float(src.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    Tensor y = zeros(shape, src.dtype());
    const T* sp = src.data<T>();
    T* yp = y.data<T>();
    // Parallel over (outer, column chunk); within a job, indices are applied in order j = 0..k-1,
    // so repeated indices accumulate in a fixed order.
    constexpr int64_t kChunk = 256;
    const int64_t chunks = std::max<int64_t>(1, (v.inner + kChunk - 1) / kChunk);
    parallel_for(0, v.outer * chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t job = lo; job < hi; ++job) {
        const int64_t o = job / chunks, c0 = (job % chunks) * kChunk;
        const int64_t c1 = std::min(v.inner, c0 + kChunk);
        for (int64_t j = 0; j < k; ++j) {
          const T* s = sp + (o * k + j) * v.inner;
          T* d = yp + (o * v.n + ip[j]) * v.inner;
          for (int64_t i = c0; i < c1; ++i) d[i] += s[i];
        }
      }
    });
    return y;
  });
}

Tensor gather(const Tensor& x, int axis, const Tensor& index) {
  ATTNLAB_CHECK(x.defined(), ValueError, "gather: undefined tensor");
  check_index_tensor(index, "gather");
  const int ax = normalize_axis(axis, x.dim(), "gather");
  check_gather_shapes(x.shape(), ax, index.shape(), "gather");
  check_range(index, x.shape()[ax], "gather", ax, x.shape());
  Tensor y = Tensor::empty(index.shape(), x.dtype());
  dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(y.raw_data());
    for_each_gather(
        x.shape(), ax, index, [&](int64_t e, int64_t off) { yp[e] = xp[off]; });
  });
  return y;
}

Tensor scatter_add(const Shape& shape, int axis, const Tensor& index, const Tensor& src) {
  ATTNLAB_CHECK(src.defined(), ValueError, "scatter_add: undefined tensor");
  check_index_tensor(index, "scatter_add");
  const int ax = normalize_axis(axis, shape.rank(), "scatter_add");
  ATTNLAB_CHECK(src.shape() == index.shape(),
                ShapeError,
                "scatter_add: source ",
                src.shape(),
                " and index ",
                index.shape(),
                " must have the same shape");
  check_gather_shapes(shape, ax, index.shape(), "scatter_add");
  check_range(index, shape[ax], "scatter_add", ax, shape);
  return dispatch_float(src.dtype(), "scatter_add", [&](auto tag) {
    using T = decltype(tag);
    Tensor y = zeros(shape, src.dtype());
    const T* sp = src.data<T>();
    T* yp = y.data<T>();
    for_each_gather(
        shape, ax, index, [&](int64_t e, int64_t off) { yp[off] += sp[e]; });
    return y;
  });
}

Tensor unique(const Tensor& x, Tensor* inverse) {
  ATTNLAB_CHECK(x.dtype() == kInt64,
                DTypeError,
                "unique: expected an int64 tensor, got ",
                x.dtype(),
                " of shape ",
                x.shape());
  const int64_t n = x.numel();
  const int64_t* p = x.data<int64_t>();
  std::vector<int64_t> values(p, p + n);
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  Tensor out = Tensor::empty({static_cast<int64_t>(values.size())}, kInt64);
  std::copy(values.begin(), values.end(), out.data<int64_t>());
  if (inverse) {
    *inverse = Tensor::empty(x.shape(), kInt64);
    int64_t* inv = inverse->data<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      inv[i] = std::lower_bound(values.begin(), values.end(), p[i]) - values.begin();
  }
  return out;
}

Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype) {
  check_index_tensor(index, "one_hot");
  ATTNLAB_CHECK(
      num_classes > 0, ValueError, "one_hot: num_classes must be positive, got ", num_classes);
  check_range(index, num_classes, "one_hot", -1, index.shape());
  Shape shape = index.shape();
  shape.push_back(num_classes);
  Tensor y = zeros(shape, dtype);
  const int64_t* ip = index.data<int64_t>();
  dispatch_any(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* yp = static_cast<T*>(y.raw_data());
    for (int64_t i = 0; i < index.numel(); ++i) yp[i * num_classes + ip[i]] = T(1);
  });
  return y;
}

}  // namespace attnlab
