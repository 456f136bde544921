// A named gradient check: a function of float64 inputs (and of a module's parameters), checked
// against finite differences by `attnlab gradcheck`. Attention kinds carry theirs in the registry
// (layers/attention/attention_registry.hpp), so a new kind brings its own checks.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "layers/nn/module.hpp"

namespace attnlab::nn {

struct GradcheckCase {
  std::string name;
  std::function<ag::Var(const std::vector<ag::Var>&)> fn;
  std::vector<Tensor> inputs;
  std::shared_ptr<Module> module;  // its parameters are checked too (converted to float64)
  // Hard (straight-through) ops have no finite-difference derivative: when set, the case is
  // ag::check_straight_through(fn, hard, surrogate): fn's forward must equal `hard` and its
  // gradient the gradient of `surrogate`.
  std::function<ag::Var(const std::vector<ag::Var>&)> hard{}, surrogate{};
};

}  // namespace attnlab::nn
