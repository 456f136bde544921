// Custom fused ops with a hand-written backward, in one file (PyTorch's autograd.Function).
//
// Subclass Function, compute the forward on plain Tensors with core kernels, save what the
// backward needs with save_for_backward, and return one gradient per input from backward:
//
//   class Square : public ag::Function {
//    public:
//     const char* name() const override { return "square"; }
//     std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
//       save_for_backward({in[0]});
//       return {mul(in[0], in[0])};
//     }
//     std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
//       return {mul(mul(grad[0], saved()[0]), 2.0)};        // d(x^2) = 2x dx
//     }
//   };
//   Var y = ag::apply<Square>({x})[0];
//
// The engine accounts the saved tensors (Tape::report shows their bytes), frees them after
// backward unless retain_graph, and skips saving them entirely when no gradient is needed. A
// Function object lives as long as its node: members can hold non-tensor state (options, sizes).
#pragma once

#include <memory>
#include <vector>

#include "autograd/var.hpp"

namespace attnlab::ag {

class Function {
 public:
  virtual ~Function() = default;
  virtual const char* name() const = 0;
  // Plain tensors in, plain tensors out. Validate inputs here (throw attnlab errors).
  virtual std::vector<Tensor> forward(const std::vector<Tensor>& inputs) = 0;
  // One gradient per output in (zeros where none arrived), one per input out (an undefined Tensor
  // for "no gradient", e.g. when !needs_input_grad(i)).
  virtual std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) = 0;

 protected:
  void save_for_backward(std::vector<Tensor> tensors) { to_save_ = std::move(tensors); }
  // The saved tensors (during forward: what was passed to save_for_backward).
  const std::vector<Tensor>& saved() const { return saved_view_ ? *saved_view_ : to_save_; }
  bool needs_input_grad(std::size_t i) const { return i < needs_.size() && needs_[i]; }
  // This output gets no gradient; its Var is a flagged constant (like argmax's).
  void mark_non_differentiable(std::size_t output);

 private:
  friend std::vector<Var> apply(const std::shared_ptr<Function>& fn,
                                const std::vector<Var>& inputs);
  std::vector<Tensor> to_save_;
  std::vector<Tensor> saved_copy_;  // the node's saved tensors during backward
  const std::vector<Tensor>* saved_view_ = nullptr;
  std::vector<bool> needs_;
  std::vector<std::size_t> non_differentiable_;
};

// Runs fn on the inputs' values and records one node whose backward is fn->backward.
std::vector<Var> apply(const std::shared_ptr<Function>& fn, const std::vector<Var>& inputs);

template <class F, class... Args>
std::vector<Var> apply(const std::vector<Var>& inputs, Args&&... args) {
  // Qualified: unqualified, ADL on the shared_ptr argument would find std::apply.
  return ag::apply(std::make_shared<F>(std::forward<Args>(args)...), inputs);
}

}  // namespace attnlab::ag
