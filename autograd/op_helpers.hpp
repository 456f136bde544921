// Small helpers shared by the op definitions in autograd/ops_*.cpp (not part of the public API).
#pragma once

#include <vector>

#include "autograd/engine.hpp"
#include "core/core.hpp"

namespace attnlab::ag::detail {

using Grads = InputGrads;

// Computes input i's gradient only if the engine needs it (an undefined Tensor otherwise).
template <class F>
Tensor if_needed(const BackwardContext& c, std::size_t i, F&& f) {
  return c.needs_input_grad[i] ? f() : Tensor();
}

}  // namespace attnlab::ag::detail
