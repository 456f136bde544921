#include "autograd/var.hpp"

#include "autograd/engine.hpp"
#include "autograd/node.hpp"

namespace attnlab::ag {
namespace {
thread_local bool t_grad_enabled = true;

std::shared_ptr<AutogradMeta> make_meta(const Tensor& value) {
  auto m = std::make_shared<AutogradMeta>();
  m->shape = value.shape();
  m->dtype = value.dtype();
  return m;
}
}  // namespace

bool grad_enabled() {
  return t_grad_enabled;
}
void set_grad_enabled(bool on) {
  t_grad_enabled = on;
}

Var::Var(Tensor value, bool requires_grad) : impl_(std::make_shared<VarImpl>()) {
  ATTNLAB_CHECK(value.defined(), ValueError, "Var: undefined value tensor");
  impl_->value = std::move(value);
  if (requires_grad)
    requires_grad_(true);
}

const Tensor& Var::value() const {
  ATTNLAB_CHECK(impl_, ValueError, "Var: use of an undefined Var");
  return impl_->value;
}

void Var::set_value(const Tensor& value) const {
  const Tensor& old = this->value();
  ATTNLAB_CHECK(value.defined() && value.shape() == old.shape() && value.dtype() == old.dtype(),
                ShapeError,
                "Var::set_value: new value ",
                value.shape(),
                " ",
                value.dtype(),
                " must match the current ",
                old.shape(),
                " ",
                old.dtype());
  impl_->value = value;
}

void Var::reset_value(const Tensor& value) const {
  ATTNLAB_CHECK(impl_ && value.defined(), ValueError, "Var::reset_value: undefined Var or value");
  ATTNLAB_CHECK(is_leaf(),
                GraphError,
                "Var::reset_value: only leaves can be reset (this Var was "
                "produced by '",
                impl_->meta->grad_fn->op,
                "')");
  ATTNLAB_CHECK(!requires_grad() || is_floating(value.dtype()),
                DTypeError,
                "Var::reset_value: a Var that requires grad needs a float value, got ",
                value.dtype());
  impl_->value = value;
  if (impl_->meta) {
    impl_->meta->shape = value.shape();
    impl_->meta->dtype = value.dtype();
    impl_->meta->grad = Tensor();
  }
}

const Var& Var::requires_grad_(bool on) const {
  ATTNLAB_CHECK(impl_, ValueError, "requires_grad_: undefined Var");
  ATTNLAB_CHECK(is_leaf(),
                GraphError,
                "requires_grad_: only leaves can change requires_grad (this Var was produced by '",
                impl_->meta->grad_fn->op,
                "'); use detach() to make a new leaf");
  if (on) {
    ATTNLAB_CHECK(!impl_->non_differentiable_op,
                  GraphError,
                  "requires_grad_: the output of '",
                  impl_->non_differentiable_op,
                  "' is not differentiable");
    ATTNLAB_CHECK(is_floating(impl_->value.dtype()),
                  DTypeError,
                  "requires_grad_: only float tensors can require grad, got ",
                  impl_->value.dtype());
    if (!impl_->meta)
      impl_->meta = make_meta(impl_->value);
    impl_->meta->requires_grad = true;
  } else if (impl_->meta) {
    impl_->meta->requires_grad = false;
  }
  return *this;
}

const Tensor& Var::grad() const {
  static const Tensor kNone;
  return impl_ && impl_->meta ? impl_->meta->grad : kNone;
}

void Var::zero_grad() const {
  if (impl_ && impl_->meta)
    impl_->meta->grad = Tensor();
}

void Var::set_grad(const Tensor& grad) const {
  ATTNLAB_CHECK(requires_grad(), GraphError, "set_grad: this Var does not require grad");
  if (grad.defined()) {
    ATTNLAB_CHECK(grad.shape() == value().shape(),
                  ShapeError,
                  "set_grad: the gradient has shape ",
                  grad.shape(),
                  ", the value ",
                  value().shape());
    ATTNLAB_CHECK(grad.dtype() == value().dtype(),
                  DTypeError,
                  "set_grad: the gradient is ",
                  dtype_name(grad.dtype()),
                  ", the value ",
                  dtype_name(value().dtype()));
  }
  impl_->meta->grad = grad;
}

const Var& Var::retain_grad() const {
  ATTNLAB_CHECK(requires_grad(), GraphError, "retain_grad: this Var does not require grad");
  impl_->meta->retains_grad = true;
  return *this;
}

int Var::register_hook(GradHook hook) const {
  ATTNLAB_CHECK(requires_grad(),
                GraphError,
                "register_hook: a hook needs a Var that requires grad (label '",
                label(),
                "')");
  const int id = impl_->meta->next_hook_id++;
  impl_->meta->hooks.emplace_back(id, std::move(hook));
  return id;
}

void Var::remove_hook(int id) const {
  if (!impl_ || !impl_->meta)
    return;
  auto& hooks = impl_->meta->hooks;
  for (auto it = hooks.begin(); it != hooks.end(); ++it) {
    if (it->first == id) {
      hooks.erase(it);
      return;
    }
  }
}

const std::string& Var::label() const {
  static const std::string kEmpty;
  return impl_ && impl_->meta ? impl_->meta->label : kEmpty;
}

const Var& Var::set_label(std::string name) const {
  ATTNLAB_CHECK(impl_, ValueError, "label: undefined Var");
  if (!impl_->meta)
    impl_->meta = make_meta(impl_->value);  // a label needs a home
  impl_->meta->label = std::move(name);
  return *this;
}

Var Var::detach() const {
  return Var(value(), false);
}

void Var::backward(bool retain_graph) const {
  ag::backward({*this}, {Tensor()}, retain_graph);
}

void Var::backward(const Tensor& grad_output, bool retain_graph) const {
  ag::backward({*this}, {grad_output}, retain_graph);
}

std::shared_ptr<Node> Var::grad_fn() const {
  return impl_ && impl_->meta ? impl_->meta->grad_fn : nullptr;
}

}  // namespace attnlab::ag
