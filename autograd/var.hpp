// Var: the differentiable handle users compute with (attnlab's "Variable").
//
// A Var is a cheap shared handle (copies alias). It holds a value Tensor and, when gradients are
// involved, an AutogradMeta: the accumulated gradient, requires_grad, the Node that produced it,
// the label, and gradient hooks. The graph points from each Node to its inputs' AutogradMeta,
// never to their values, so a value lives only as long as a Var handle or a saved tensor needs it.
//
// Semantics follow PyTorch: leaves (Vars created by the user with requires_grad) accumulate into
// grad() across backward calls until zero_grad(); intermediate Vars keep their gradient only
// after retain_grad(). See autograd/engine.hpp for backward, and the README's "Autograd" section
// for the overview.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace attnlab::ag {

struct Node;

// A gradient hook sees the gradient flowing into a Var and returns the gradient to use instead
// (return its argument unchanged to only read it).
using GradHook = std::function<Tensor(const Tensor& grad)>;

struct AutogradMeta {
  Shape shape;  // of the value, to check incoming gradients
  DType dtype = kFloat32;
  Tensor grad;  // leaves, and non-leaves with retains_grad
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<Node> grad_fn;  // the producing node; null for leaves
  int output_nr = 0;              // which output of grad_fn this Var is
  std::string label;
  std::vector<std::pair<int, GradHook>> hooks;
  int next_hook_id = 0;
  // Engine scratch: which backward sweep last touched this leaf, and its slot in that sweep.
  uint64_t pending_epoch = 0;
  uint32_t pending_slot = 0;
};

struct VarImpl {
  Tensor value;
  std::shared_ptr<AutogradMeta> meta;           // null for plain constants
  const char* non_differentiable_op = nullptr;  // set on outputs of argmax, one_hot, ...
};

class Var {
 public:
  Var() = default;  // undefined
  // A constant (requires_grad = false) or, with requires_grad, a leaf whose grad() accumulates.
  explicit Var(Tensor value, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const;
  // Replaces the value (same shape and dtype), keeping the graph identity (optimizers, loaders).
  void set_value(const Tensor& value) const;
  // Replaces a leaf's value with one of any shape or dtype (Module::to, loading a checkpoint into
  // a differently typed model). Drops the accumulated gradient.
  void reset_value(const Tensor& value) const;
  const Shape& shape() const { return value().shape(); }
  int dim() const { return value().dim(); }
  int64_t size(int axis) const { return value().size(axis); }
  int64_t numel() const { return value().numel(); }
  DType dtype() const { return value().dtype(); }
  double item() const { return value().item(); }

  bool requires_grad() const { return impl_ && impl_->meta && impl_->meta->requires_grad; }
  // Turns a leaf into a parameter (or back). Only leaves can change this.
  const Var& requires_grad_(bool on = true) const;
  bool is_leaf() const { return !impl_ || !impl_->meta || !impl_->meta->grad_fn; }

  // The accumulated gradient (undefined when none has arrived yet).
  const Tensor& grad() const;
  bool has_grad() const { return grad().defined(); }
  void zero_grad() const;  // forgets the gradient (grad() becomes undefined)
  // Replaces the accumulated gradient (undefined: none), e.g. to put back gradients set aside
  // while another backward ran. ShapeError / DTypeError unless it has the value's shape and dtype.
  void set_grad(const Tensor& grad) const;
  // Keep this non-leaf's gradient after backward (overwritten by each backward).
  const Var& retain_grad() const;

  // Registers a hook on the gradient flowing into this Var; returns an id for remove_hook.
  int register_hook(GradHook hook) const;
  void remove_hook(int id) const;

  const std::string& label() const;
  const Var& set_label(std::string name) const;

  // The same value, cut from the graph (a new leaf that does not require grad).
  Var detach() const;

  // Backward from this Var: a scalar (one element) uses gradient 1; otherwise pass the gradient.
  void backward(bool retain_graph = false) const;
  void backward(const Tensor& grad_output, bool retain_graph = false) const;

  std::shared_ptr<Node> grad_fn() const;
  // Name of the non-differentiable op that produced this Var, or nullptr.
  const char* non_differentiable_op() const {
    return impl_ ? impl_->non_differentiable_op : nullptr;
  }

  // Engine access.
  const std::shared_ptr<VarImpl>& impl() const { return impl_; }
  explicit Var(std::shared_ptr<VarImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<VarImpl> impl_;
};

// A leaf that requires grad (a parameter or an input to differentiate).
inline Var param(Tensor value) {
  return Var(std::move(value), true);
}
// A leaf that does not require grad.
inline Var constant(Tensor value) {
  return Var(std::move(value), false);
}
// Names a Var for reports, DOT graphs and anomaly messages; returns it for chaining.
inline const Var& label(const Var& v, std::string name) {
  return v.set_label(std::move(name));
}

// ---- grad mode --------------------------------------------------------------------------------
// Thread-local switch: while disabled, ops record no nodes and save no tensors.
bool grad_enabled();
void set_grad_enabled(bool on);

class NoGradGuard {
 public:
  NoGradGuard() : saved_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(saved_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool saved_;
};

class EnableGradGuard {
 public:
  EnableGradGuard() : saved_(grad_enabled()) { set_grad_enabled(true); }
  ~EnableGradGuard() { set_grad_enabled(saved_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool saved_;
};

}  // namespace attnlab::ag
