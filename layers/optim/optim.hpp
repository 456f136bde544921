// Optimizers (torch.optim's semantics) and gradient clipping.
//
//   optim::AdamW opt(model.named_parameters(), 1e-3);
//   for (...) {
//     opt.zero_grad();
//     Var loss = ...;
//     loss.backward();
//     optim::clip_grad_norm(opt.params(), 1.0);
//     opt.set_lr(schedule.lr(opt.steps()));
//     opt.step();
//   }
//
// Parameters are updated in place, through their value tensors, so every Var handle (and the
// module that owns it) sees the new values. A parameter whose gradient is undefined is skipped:
// its value, its state and its own step count stay as they are (as in PyTorch, where Adam's bias
// correction counts the updates each parameter actually received).
//
// The update arithmetic runs in double on each element; each stored result (the parameter, the
// moments, the momentum buffer) is rounded to the parameter's dtype (float32 or float64), which
// is also the dtype of the optimizer state. It is element-wise, so the result does not depend on
// the thread count.
//
// State for checkpoints (state_dict): "step" (int64 scalar, the number of step() calls), "lr"
// (float64 scalar) and per parameter "<name>.step" (int64 scalar, updates received) and one
// tensor of the parameter's shape per buffer: "<name>.momentum_buffer" (SGD with momentum),
// "<name>.exp_avg" and "<name>.exp_avg_sq" (Adam, AdamW). <name> is the parameter's name when the
// optimizer was built from named parameters (Module::named_parameters()), else its position
// "0", "1", .... Buffers a parameter has not used yet are saved as zeros. Hyper-parameters other
// than lr are not saved: construct the optimizer with the same ones before loading.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.hpp"
#include "core/npy.hpp"

namespace attnlab::optim {

// The parameters an optimizer updates: plain Vars (state entries named by position) or named ones.
// A Var listed twice (tied weights) is kept once, under its first name.
class ParamList {
 public:
  ParamList(std::vector<ag::Var> params);  // NOLINT: implicit on purpose
  ParamList(std::initializer_list<ag::Var> params);
  ParamList(std::vector<std::pair<std::string, ag::Var>> named);  // NOLINT
  ParamList(std::initializer_list<std::pair<std::string, ag::Var>> named);
  const std::vector<std::pair<std::string, ag::Var>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, ag::Var>> items_;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient; steps() grows by one.
  virtual void step();
  // Forgets every parameter's gradient (grad() becomes undefined, PyTorch's set_to_none).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);  // ValueError unless finite and >= 0
  int64_t steps() const { return steps_; }
  const char* name() const { return name_; }  // "SGD", "Adam", "AdamW"
  std::vector<ag::Var> params() const;
  std::vector<std::string> param_names() const;

  virtual NamedTensors state_dict() const;
  // Strict, like Module::load_state_dict: a missing, extra, mis-shaped or mis-typed entry throws
  // (ValueError / ShapeError / DTypeError naming the entry) and leaves the optimizer unchanged.
  // Buffers are converted to each parameter's dtype.
  virtual void load_state_dict(const NamedTensors& state);
  // The checks of load_state_dict without loading (used by load_checkpoint).
  void check_state_dict(const NamedTensors& state) const;

 protected:
  struct ParamState {
    std::string name;
    ag::Var param;
    int64_t step = 0;             // updates this parameter received
    std::vector<Tensor> buffers;  // one per buffer name, the parameter's shape and dtype
  };
  Optimizer(const char* name, ParamList params, double lr, std::vector<std::string> buffer_names);
  // Updates s.param in place from `grad` (same shape and dtype); s.step is already incremented
  // and s.buffers have the parameter's dtype.
  virtual void update(ParamState& s, const Tensor& grad) = 0;
  // ValueError "<name>: <what> must be ..., got <value>" unless lo <= value (< hi or <= hi).
  void check_range(const char* what, double value, double lo, double hi, bool hi_open) const;

 private:
  const char* name_;
  double lr_;
  int64_t steps_ = 0;
  std::vector<std::string> buffer_names_;
  std::vector<ParamState> states_;
};

// Stochastic gradient descent, torch.optim.SGD with dampening 0:
//   d = g + weight_decay * p
//   buf = d (first update), then buf = momentum * buf + d        (momentum != 0)
//   d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
class SGD : public Optimizer {
 public:
  SGD(ParamList params,
      double lr,
      double momentum = 0,
      bool nesterov = false,
      double weight_decay = 0);
  double momentum() const { return momentum_; }
  bool nesterov() const { return nesterov_; }
  double weight_decay() const { return weight_decay_; }

 protected:
  void update(ParamState& s, const Tensor& grad) override;

 private:
  double momentum_, weight_decay_;
  bool nesterov_;
};

// torch.optim.Adam (amsgrad off), the L2 penalty added to the gradient:
//   g = g + weight_decay * p
//   m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)      (t: this param's step)
class Adam : public Optimizer {
 public:
  Adam(ParamList params,
       double lr = 1e-3,
       double beta1 = 0.9,
       double beta2 = 0.999,
       double eps = 1e-8,
       double weight_decay = 0);
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }
  double weight_decay() const { return weight_decay_; }

 protected:
  Adam(const char* name,
       ParamList params,
       double lr,
       double beta1,
       double beta2,
       double eps,
       double weight_decay,
       bool decoupled);
  void update(ParamState& s, const Tensor& grad) override;

 private:
  double beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;  // AdamW
};

// torch.optim.AdamW: decoupled weight decay, p -= lr * weight_decay * p before Adam's update
// (which then adds no L2 term).
class AdamW : public Adam {
 public:
  AdamW(ParamList params,
        double lr = 1e-3,
        double beta1 = 0.9,
        double beta2 = 0.999,
        double eps = 1e-8,
        double weight_decay = 0.01);
};

// Scales the gradients in place so that their global Euclidean norm (over all elements of all
// parameters' gradients; undefined gradients count as zero) is at most max_norm, as
// torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6) when it is below 1.
// Returns the norm before clipping. A non-finite norm leaves the gradients untouched (the caller
// should skip the step) or, with error_if_nonfinite, throws ValueError. A Var listed twice counts
// once. The norm is accumulated in double in a fixed order (deterministic).
double clip_grad_norm(const std::vector<ag::Var>& params,
                      double max_norm,
                      bool error_if_nonfinite = false);

// Euclidean norm of all gradients (what clip_grad_norm returns), without changing them.
double grad_norm(const std::vector<ag::Var>& params);

}  // namespace attnlab::optim
