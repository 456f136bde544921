// Tensor: a runtime-typed (float32, float64, int64), contiguous, row-major, 64-byte-aligned
// n-dimensional array. Storage is shared: copies of a Tensor and reshape() alias the same
// buffer (cheap); clone() and to(dtype) copy. There are no strided views: permute/slice
// materialise, which is cheap next to the math and keeps every kernel on contiguous memory.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/shape.hpp"
#include "core/storage.hpp"

namespace attnlab {

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false
  // Uninitialised contents; use zeros()/full() when the values matter.
  static Tensor empty(const Shape& shape, DType dtype = kFloat32);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int dim() const { return shape_.rank(); }
  int64_t size(int axis) const;  // negative axes count from the end
  int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }

  // Typed pointer to the first element; throws DTypeError if T does not match dtype().
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(storage_ ? storage_->data() : nullptr);
  }
  void* raw_data() const { return storage_ ? storage_->data() : nullptr; }

  // Element access with bounds and dtype checks (for tests, teaching and small code, not loops).
  template <class T>
  T& at(std::initializer_list<int64_t> index) const {
    return data<T>()[flat_index(index)];
  }
  double get(std::initializer_list<int64_t> index) const;  // any dtype, as double
  void set(std::initializer_list<int64_t> index, double value) const;
  double item() const;           // the single element of a one-element tensor, as double
  double flat(int64_t i) const;  // element i in row-major order, as double
  template <class T>
  std::vector<T> to_vector() const;  // all elements, converted to T

  // Shares storage. One dimension may be -1 (inferred).
  Tensor reshape(std::initializer_list<int64_t> dims) const;
  Tensor reshape(const std::vector<int64_t>& dims) const;
  Tensor reshape(const Shape& shape) const;
  Tensor flatten() const { return reshape({-1}); }

  Tensor clone() const;
  Tensor to(DType dtype) const;  // a copy converted to dtype (a clone when it is already dtype)
  void copy_from(const Tensor& src) const;  // same shape and dtype; copies the values in place
  void fill(double value) const;

  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }
  // Numpy-like text: "tensor([[1., 2.],\n        [3., 4.]], dtype=float32)"; long dimensions
  // are summarised with "..." (threshold 1000 elements, 3 edge items).
  std::string str() const;

 private:
  void check_dtype(DType want) const;
  int64_t flat_index(std::initializer_list<int64_t> index) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  DType dtype_ = kFloat32;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- creation ---------------------------------------------------------------------------------
Tensor zeros(const Shape& shape, DType dtype = kFloat32);
Tensor ones(const Shape& shape, DType dtype = kFloat32);
Tensor full(const Shape& shape, double value, DType dtype = kFloat32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor scalar_tensor(double value, DType dtype = kFloat32);  // rank 0
// [start, start + step, ...) below stop, like numpy.arange.
Tensor arange(double start, double stop, double step = 1.0, DType dtype = kFloat32);
Tensor arange(int64_t n, DType dtype = kFloat32);
// Copies `values` into a tensor of `shape` (numel must match) converted to dtype.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = kFloat32);
Tensor from_vector(const std::vector<float>& values, const Shape& shape);
Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape);
// 1-D tensor from a braced list: tensor({1, 2, 3}).
Tensor tensor(std::initializer_list<double> values, DType dtype = kFloat32);

// Largest absolute difference, and whether |a - b| <= atol + rtol * |b| everywhere (numpy's
// allclose; NaNs compare unequal). Shapes must match.
double max_abs_diff(const Tensor& a, const Tensor& b);
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

}  // namespace attnlab
