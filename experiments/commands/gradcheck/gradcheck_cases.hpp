// The gradient checks `attnlab gradcheck` runs: every differentiable op, layer, loss and attention
// kind, each a named function of float64 inputs (and captured parameters for layers).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "layers/nn/gradcheck_case.hpp"
#include "layers/nn/module.hpp"

namespace attnlab::experiments {

// The library's (layers/nn/gradcheck_case.hpp), so that attention kinds carry their own cases.
using GradcheckCase = nn::GradcheckCase;

// Cases grouped by family; each family adds its cases to `out`.
void add_op_cases(std::vector<GradcheckCase>& out);
void add_layer_cases(std::vector<GradcheckCase>& out);
void add_attention_cases(std::vector<GradcheckCase>& out);
void add_lisa_cases(std::vector<GradcheckCase>& out);
void add_lisa_module_cases(std::vector<GradcheckCase>& out);  // quantizer, layer, models
// Every registered attention kind's cases (nn::gradcheck_cases), in registry order.
void add_kind_cases(std::vector<GradcheckCase>& out);

}  // namespace attnlab::experiments
