#include "layers/nn/init.hpp"

#include <cmath>

#include "core/elementwise.hpp"

namespace attnlab::nn {

std::pair<double, double> fans(const Shape& shape) {
  ATTNLAB_CHECK(shape.rank() >= 1, ShapeError, "init: cannot compute fans of a scalar");
  if (shape.rank() == 1)
    return {static_cast<double>(shape[0]), static_cast<double>(shape[0])};
  double receptive = 1;
  for (int i = 2; i < shape.rank(); ++i) receptive *= static_cast<double>(shape[i]);
  return {static_cast<double>(shape[1]) * receptive, static_cast<double>(shape[0]) * receptive};
}

Tensor initialize(const Shape& shape, const InitSpec& spec, RngKey key, DType dtype) {
  switch (spec.kind) {
    case Init::Zeros:
      return zeros(shape, dtype);
    case Init::Ones:
      return ones(shape, dtype);
    case Init::Normal:
      return randn(shape, key, dtype, 0.0, spec.std);
    case Init::Uniform:
      return rand(shape, key, dtype, -spec.std, spec.std);
    default:
      break;
  }
  const auto [fan_in, fan_out] = fans(shape);
  ATTNLAB_CHECK(fan_in > 0 && fan_out > 0, ShapeError, "init: empty shape ", shape);
  switch (spec.kind) {
    case Init::XavierUniform: {
      const double a = spec.gain * std::sqrt(6.0 / (fan_in + fan_out));
      return rand(shape, key, dtype, -a, a);
    }
    case Init::XavierNormal:
      return randn(shape, key, dtype, 0.0, spec.gain * std::sqrt(2.0 / (fan_in + fan_out)));
    case Init::KaimingUniform: {
      const double a = std::sqrt(2.0) * std::sqrt(3.0 / fan_in);
      return rand(shape, key, dtype, -a, a);
    }
    case Init::KaimingNormal:
      return randn(shape, key, dtype, 0.0, std::sqrt(2.0 / fan_in));
    default:
      throw ValueError("init: unknown initialiser");
  }
}

const EnumNames<Init>& enum_names(Init) {
  static const EnumNames<Init> names{{Init::XavierUniform, "xavier_uniform"},
                                     {Init::XavierNormal, "xavier_normal"},
                                     {Init::KaimingUniform, "kaiming_uniform"},
                                     {Init::KaimingNormal, "kaiming_normal"},
                                     {Init::Normal, "normal"},
                                     {Init::Uniform, "uniform"},
                                     {Init::Zeros, "zeros"},
                                     {Init::Ones, "ones"}};
  return names;
}

Init parse_init(const std::string& name) {
  return enum_names(Init{}).parse(name, "init: initialiser");
}

const char* init_name(Init kind) {
  return enum_names(kind).name(kind);
}

}  // namespace attnlab::nn
