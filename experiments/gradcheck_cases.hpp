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
  bool large = false;                  // many parameters: use fast mode even in slow mode
};

// Cases grouped by family; each family adds its cases to `out`.
void add_op_cases(std::vector<GradcheckCase>& out);
void add_layer_cases(std::vector<GradcheckCase>& out);
void add_attention_cases(std::vector<GradcheckCase>& out);

}  // namespace attnlab::experiments
