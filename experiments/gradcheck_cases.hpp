// The gradient checks `attnlab gradcheck` runs: every differentiable op, layer, loss and attention
// kind, each a named function of float64 inputs (and captured parameters for layers).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "layers/module.hpp"

namespace attnlab::experiments {

struct GradcheckCase {
  std::string name;
  std::function<ag::Var(const std::vector<ag::Var>&)> fn;
  std::vector<Tensor> inputs;
  std::shared_ptr<nn::Module> module;  // its parameters are checked too (converted to float64)
  // Hard (straight-through) ops have no finite-difference derivative: when set, the case is
  // ag::check_straight_through(fn, hard, surrogate): fn's forward must equal `hard` and its
  // gradient the gradient of `surrogate`.
  std::function<ag::Var(const std::vector<ag::Var>&)> hard{}, surrogate{};
};

// Cases grouped by family; each family adds its cases to `out`.
void add_op_cases(std::vector<GradcheckCase>& out);
void add_layer_cases(std::vector<GradcheckCase>& out);
void add_attention_cases(std::vector<GradcheckCase>& out);
void add_lisa_cases(std::vector<GradcheckCase>& out);
void add_lisa_module_cases(std::vector<GradcheckCase>& out);  // quantizer, layer, models

}  // namespace attnlab::experiments
