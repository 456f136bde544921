// Parameter initialisers (PyTorch's nn.init conventions, so results compare with PyTorch).
// Fans follow torch.nn.init._calculate_fan_in_and_fan_out: for a [out, in] matrix fan_in = in
// and fan_out = out; for more dimensions fan_in = shape[1] * receptive and fan_out = shape[0] *
// receptive, receptive = the product of shape[2:] (LISA's [B, W, D] codebooks: fan_in = W*D).
#pragma once

#include <string>

#include "core/enum_names.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"

namespace attnlab::nn {

enum class Init {
  XavierUniform,   // U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))
  XavierNormal,    // N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out))
  KaimingUniform,  // U(-a, a), a = sqrt(2) * sqrt(3 / fan_in)   (ReLU gain, fan_in mode)
  KaimingNormal,   // N(0, s^2), s = sqrt(2 / fan_in)
  Normal,          // N(0, std^2)
  Uniform,         // U(-std, std)
  Zeros,
  Ones,
};

struct InitSpec {
  Init kind = Init::XavierUniform;
  double std = 0.02;  // for Normal and Uniform
  double gain = 1.0;  // for the Xavier kinds
};

std::pair<double, double> fans(const Shape& shape);
Tensor initialize(const Shape& shape, const InitSpec& spec, RngKey key, DType dtype = kFloat32);
// Parses "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "normal",
// "uniform", "zeros", "ones" (ValueError otherwise).
const EnumNames<Init>& enum_names(Init);
Init parse_init(const std::string& name);
const char* init_name(Init kind);

}  // namespace attnlab::nn
