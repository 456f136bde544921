#include "autograd/function.hpp"

#include "autograd/engine.hpp"

namespace attnlab::ag {

void Function::mark_non_differentiable(std::size_t output) {
  non_differentiable_.push_back(output);
}

std::vector<Var> apply(const std::shared_ptr<Function>& fn, const std::vector<Var>& inputs) {
  ATTNLAB_CHECK(fn, ValueError, "apply: null Function");
  OpRecorder op(fn->name(), inputs);
  fn->needs_.assign(inputs.size(), false);
  for (std::size_t i = 0; i < inputs.size(); ++i) fn->needs_[i] = op.needs_input_grad(i);
  std::vector<Tensor> values;
  values.reserve(inputs.size());
  for (const Var& v : inputs) values.push_back(v.value());
  fn->to_save_.clear();
  fn->non_differentiable_.clear();
  std::vector<Tensor> outputs = fn->forward(values);
  std::vector<bool> differentiable(outputs.size(), true);
  for (std::size_t o : fn->non_differentiable_) {
    ATTNLAB_CHECK(o < outputs.size(),
                  ValueError,
                  fn->name(),
                  ": mark_non_differentiable(",
                  o,
                  ") but forward returned ",
                  outputs.size(),
                  " outputs");
    differentiable[o] = false;
  }
  SavedTensors saved;
  for (Tensor& t : fn->to_save_) saved.push_back(std::move(t));
  fn->to_save_.clear();
  std::vector<Var> result = op.outputs(
      outputs,
      std::move(saved),
      [fn](const BackwardContext& c) {
        fn->saved_copy_ = c.saved.vec();
        fn->saved_view_ = &fn->saved_copy_;
        fn->needs_.assign(c.needs_input_grad.begin(), c.needs_input_grad.end());
        std::vector<Tensor> grads = fn->backward(c.grads.vec());
        fn->saved_view_ = nullptr;
        fn->saved_copy_.clear();
        InputGrads out;
        for (Tensor& g : grads) out.push_back(std::move(g));
        return out;
      },
      differentiable);
  if (!op.needs_grad()) {
    // No node was recorded: flag the non-differentiable outputs all the same.
    for (std::size_t o : fn->non_differentiable_)
      result[o] = non_differentiable(fn->name(), outputs[o]);
  }
  return result;
}

}  // namespace attnlab::ag
