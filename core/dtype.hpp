// Runtime element types. Math kernels are templates over float/double, instantiated once each and
// selected here, in one place (dispatch_float). Int64 holds indices (item ids, codewords, argmax).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <type_traits>

#include "core/error.hpp"

namespace attnlab {

enum class DType { Float32, Float64, Int64 };

constexpr DType kFloat32 = DType::Float32;
constexpr DType kFloat64 = DType::Float64;
constexpr DType kInt64 = DType::Int64;

const char* dtype_name(DType d);  // "float32", "float64", "int64"
std::size_t dtype_size(DType d);
inline bool is_floating(DType d) {
  return d != DType::Int64;
}
std::ostream& operator<<(std::ostream& os, DType d);

template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int64_t>,
                "attnlab tensors hold float, double or int64_t");
  if constexpr (std::is_same_v<T, float>)
    return DType::Float32;
  if constexpr (std::is_same_v<T, double>)
    return DType::Float64;
  return DType::Int64;
}

// Calls f(float{}) or f(double{}) according to `d`; throws DTypeError naming `op` for int64.
// Usage: dispatch_float(x.dtype(), "exp", [&](auto tag) { using T = decltype(tag); ... });
template <class F>
decltype(auto) dispatch_float(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    default:
      throw DTypeError(
          detail::concat(op, ": expected a float32 or float64 tensor, got ", dtype_name(d)));
  }
}

// Like dispatch_float but also accepts int64 (for ops that only move elements).
template <class F>
decltype(auto) dispatch_any(DType d, F&& f) {
  switch (d) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    default:
      return f(int64_t{});
  }
}

}  // namespace attnlab
