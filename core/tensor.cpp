#include "core/tensor.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ostream>
#include <sstream>

#include "core/pool.hpp"

namespace attnlab {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
    case DType::Int64:
      return "int64";
  }
  return "?";
}

std::size_t dtype_size(DType d) {
  return d == DType::Float32 ? 4 : 8;
}

std::ostream& operator<<(std::ostream& os, DType d) {
  return os << dtype_name(d);
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ =
      std::allocate_shared<Storage>(detail::PoolAllocator<Storage>(),
                                    static_cast<std::size_t>(shape.numel()) * dtype_size(dtype));
  return t;
}

int64_t Tensor::size(int axis) const {
  return shape_[normalize_axis(axis, dim(), "Tensor::size")];
}

void Tensor::check_dtype(DType want) const {
  ATTNLAB_CHECK(defined(), ValueError, "Tensor: access to an undefined tensor");
  ATTNLAB_CHECK(dtype_ == want,
                DTypeError,
                "Tensor::data: tensor holds ",
                dtype_name(dtype_),
                ", requested ",
                dtype_name(want));
}

int64_t Tensor::flat_index(std::initializer_list<int64_t> index) const {
  ATTNLAB_CHECK(static_cast<int>(index.size()) == dim(),
                ShapeError,
                "Tensor::at: ",
                index.size(),
                " indices for a tensor of shape ",
                shape_);
  int64_t flat = 0, i = 0;
  for (int64_t ix : index) {
    ATTNLAB_CHECK(ix >= 0 && ix < shape_[i],
                  ValueError,
                  "Tensor::at: index ",
                  ix,
                  " out of range for dimension ",
                  i,
                  " of shape ",
                  shape_);
    flat = flat * shape_[i] + ix;
    ++i;
  }
  return flat;
}

double Tensor::flat(int64_t i) const {
  ATTNLAB_CHECK(defined(), ValueError, "Tensor::flat: undefined tensor");
  ATTNLAB_CHECK(i >= 0 && i < numel(),
                ValueError,
                "Tensor::flat: index ",
                i,
                " out of range for ",
                numel(),
                " elements");
  return dispatch_any(dtype_, [&](auto tag) {
    using T = decltype(tag);
    return static_cast<double>(static_cast<const T*>(raw_data())[i]);
  });
}

double Tensor::get(std::initializer_list<int64_t> index) const {
  return flat(flat_index(index));
}

void Tensor::set(std::initializer_list<int64_t> index, double value) const {
  const int64_t i = flat_index(index);
  dispatch_any(dtype_, [&](auto tag) {
    using T = decltype(tag);
    static_cast<T*>(raw_data())[i] = static_cast<T>(value);
  });
}

double Tensor::item() const {
  ATTNLAB_CHECK(defined() && numel() == 1,
                ValueError,
                "Tensor::item: expected a one-element tensor, got shape ",
                shape_);
  return flat(0);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  ATTNLAB_CHECK(defined(), ValueError, "Tensor::to_vector: undefined tensor");
  std::vector<T> out(static_cast<std::size_t>(numel()));
  dispatch_any(dtype_, [&](auto tag) {
    using S = decltype(tag);
    const S* p = static_cast<const S*>(raw_data());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  });
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

Tensor Tensor::reshape(std::initializer_list<int64_t> dims) const {
  return reshape(std::vector<int64_t>(dims));
}

Tensor Tensor::reshape(const std::vector<int64_t>& dims) const {
  int infer = -1;
  int64_t known = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      ATTNLAB_CHECK(
          infer < 0, ShapeError, "reshape: more than one -1 in the new shape for ", shape_);
      infer = static_cast<int>(i);
    } else {
      ATTNLAB_CHECK(dims[i] >= 0, ShapeError, "reshape: negative dimension ", dims[i]);
      known *= dims[i];
    }
  }
  std::vector<int64_t> d = dims;
  if (infer >= 0) {
    ATTNLAB_CHECK(known != 0 && numel() % known == 0,
                  ShapeError,
                  "reshape: cannot infer -1: ",
                  numel(),
                  " elements of shape ",
                  shape_,
                  " do not divide into ",
                  known);
    d[infer] = numel() / known;
  }
  return reshape(Shape(d));
}

Tensor Tensor::reshape(const Shape& shape) const {
  ATTNLAB_CHECK(defined(), ValueError, "reshape: undefined tensor");
  ATTNLAB_CHECK(shape.numel() == numel(),
                ShapeError,
                "reshape: cannot reshape ",
                shape_,
                " (",
                numel(),
                " elements) into ",
                shape,
                " (",
                shape.numel(),
                " elements)");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::clone() const {
  ATTNLAB_CHECK(defined(), ValueError, "clone: undefined tensor");
  Tensor t = empty(shape_, dtype_);
  if (nbytes())
    std::memcpy(t.raw_data(), raw_data(), nbytes());
  return t;
}

Tensor Tensor::to(DType dtype) const {
  ATTNLAB_CHECK(defined(), ValueError, "to: undefined tensor");
  if (dtype == dtype_)
    return clone();
  Tensor t = empty(shape_, dtype);
  const int64_t n = numel();
  dispatch_any(dtype_, [&](auto src_tag) {
    using S = decltype(src_tag);
    dispatch_any(dtype, [&](auto dst_tag) {
      using D = decltype(dst_tag);
      const S* s = static_cast<const S*>(raw_data());
      D* d = static_cast<D*>(t.raw_data());
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(s[i]);
    });
  });
  return t;
}

void Tensor::copy_from(const Tensor& src) const {
  ATTNLAB_CHECK(defined() && src.defined(), ValueError, "copy_from: undefined tensor");
  ATTNLAB_CHECK(src.shape() == shape_ && src.dtype() == dtype_,
                ShapeError,
                "copy_from: destination ",
                shape_,
                " ",
                dtype_,
                " vs source ",
                src.shape(),
                " ",
                src.dtype());
  if (nbytes() && raw_data() != src.raw_data())
    std::memcpy(raw_data(), src.raw_data(), nbytes());
}

void Tensor::fill(double value) const {
  ATTNLAB_CHECK(defined(), ValueError, "fill: undefined tensor");
  const int64_t n = numel();
  dispatch_any(dtype_, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(raw_data());
    const T v = static_cast<T>(value);
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  });
}

// ---- printing ---------------------------------------------------------------------------------
namespace {

struct PrintFormat {
  bool integral = true;  // every finite value is a whole number: print "3."
  bool scientific = false;
  int width = 1;
};

std::string format_value(double v, const PrintFormat& f, bool is_int) {
  char buf[64];
  if (is_int) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  } else if (std::isnan(v)) {
    std::snprintf(buf, sizeof buf, "nan");
  } else if (std::isinf(v)) {
    std::snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
  } else if (f.integral) {
    std::snprintf(buf, sizeof buf, "%.0f.", v);
  } else if (f.scientific) {
    std::snprintf(buf, sizeof buf, "%.4e", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.4f", v);
  }
  return buf;
}

constexpr int64_t kSummaryThreshold = 1000;
constexpr int64_t kEdgeItems = 3;

void print_rec(std::ostream& os,
               const Tensor& t,
               int axis,
               int64_t offset,
               bool summarize,
               const PrintFormat& f,
               int indent) {
  const int64_t n = t.shape()[axis];
  int64_t stride = 1;
  for (int i = axis + 1; i < t.dim(); ++i) stride *= t.shape()[i];
  const bool is_int = t.dtype() == kInt64;
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      os << (axis + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - kEdgeItems - 1;
      continue;
    }
    if (axis + 1 == t.dim()) {
      std::string s = format_value(t.flat(offset + i), f, is_int);
      os << std::string(f.width > static_cast<int>(s.size()) ? f.width - s.size() : 0, ' ') << s;
      if (i + 1 < n)
        os << ", ";
    } else {
      print_rec(os, t, axis + 1, offset + i * stride, summarize, f, indent + 1);
      if (i + 1 < n) {
        os << ',' << std::string(t.dim() - axis - 1, '\n') << std::string(indent + 1, ' ');
      }
    }
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined())
    return "tensor(undefined)";
  std::ostringstream os;
  const std::string prefix = "tensor(";
  PrintFormat f;
  const int64_t n = numel();
  double max_abs = 0, min_abs = INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    const double v = flat(i);
    if (!std::isfinite(v))
      continue;
    if (v != std::floor(v))
      f.integral = false;
    max_abs = std::max(max_abs, std::fabs(v));
    if (v != 0)
      min_abs = std::min(min_abs, std::fabs(v));
  }
  if (dtype_ != kInt64 && !f.integral)
    f.scientific = max_abs >= 1e5 || min_abs < 1e-4;
  if (f.integral && max_abs >= 1e8) {
    f.integral = false;
    f.scientific = true;
  }
  for (int64_t i = 0; i < n; ++i) {
    f.width =
        std::max(f.width, static_cast<int>(format_value(flat(i), f, dtype_ == kInt64).size()));
  }
  os << prefix;
  if (dim() == 0) {
    os << format_value(flat(0), f, dtype_ == kInt64);
  } else if (n == 0) {
    os << "[], shape=" << shape_;
  } else {
    print_rec(os, *this, 0, 0, n > kSummaryThreshold, f, static_cast<int>(prefix.size()));
  }
  os << ", dtype=" << dtype_name(dtype_) << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  return os << t.str();
}

// ---- creation ---------------------------------------------------------------------------------
Tensor zeros(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  if (t.nbytes())
    std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor ones(const Shape& shape, DType dtype) {
  return full(shape, 1.0, dtype);
}

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  t.fill(value);
  return t;
}

Tensor zeros_like(const Tensor& t) {
  return zeros(t.shape(), t.dtype());
}
Tensor ones_like(const Tensor& t) {
  return ones(t.shape(), t.dtype());
}
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, t.dtype());
}
Tensor scalar_tensor(double value, DType dtype) {
  return full(Shape{}, value, dtype);
}

Tensor arange(double start, double stop, double step, DType dtype) {
  ATTNLAB_CHECK(step != 0 && std::isfinite(step),
                ValueError,
                "arange: step must be finite and "
                "non-zero, got ",
                step);
  const double span = (stop - start) / step;
  const int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  Tensor t = Tensor::empty(Shape{n}, dtype);
  dispatch_any(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return t;
}

Tensor arange(int64_t n, DType dtype) {
  return arange(0.0, static_cast<double>(n), 1.0, dtype);
}

namespace {
template <class S>
Tensor from_values(const std::vector<S>& values, const Shape& shape, DType dtype) {
  ATTNLAB_CHECK(static_cast<int64_t>(values.size()) == shape.numel(),
                ShapeError,
                "from_vector: ",
                values.size(),
                " values for shape ",
                shape,
                " (",
                shape.numel(),
                " elements)");
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_any(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
  });
  return t;
}
}  // namespace

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  return from_values(values, shape, dtype);
}
Tensor from_vector(const std::vector<float>& values, const Shape& shape) {
  return from_values(values, shape, kFloat32);
}
Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape) {
  return from_values(values, shape, kInt64);
}

Tensor tensor(std::initializer_list<double> values, DType dtype) {
  return from_values(
      std::vector<double>(values), Shape{static_cast<int64_t>(values.size())}, dtype);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  ATTNLAB_CHECK(a.shape() == b.shape(),
                ShapeError,
                "max_abs_diff: shapes differ: ",
                a.shape(),
                " vs ",
                b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::fabs(a.flat(i) - b.flat(i));
    if (std::isnan(d))
      return NAN;
    m = std::max(m, d);
  }
  return m;
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  ATTNLAB_CHECK(a.shape() == b.shape(),
                ShapeError,
                "allclose: shapes differ: ",
                a.shape(),
                " vs ",
                b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.flat(i), y = b.flat(i);
    if (x == y)
      continue;  // also equal infinities
    if (!(std::fabs(x - y) <= atol + rtol * std::fabs(y)))
      return false;
  }
  return true;
}

}  // namespace attnlab
