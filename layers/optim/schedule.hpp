// Learning-rate schedules: pure functions of the step, so a resumed run (which restores the step)
// gets the same rates without saving any schedule state.
//
// `step` is the 0-based index of the update about to be made, i.e. Optimizer::steps() before
// step():   opt.set_lr(schedule.lr(opt.steps())); opt.step();
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace attnlab::optim {

class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  virtual double lr(int64_t step) const = 0;  // step >= 0 (ValueError otherwise)
  // The canonical spec, which parse_schedule reads back: "cosine:base_lr=0.001,warmup=100,...".
  virtual std::string describe() const = 0;
};

class ConstantLR : public LRSchedule {
 public:
  explicit ConstantLR(double lr);
  double lr(int64_t step) const override;
  std::string describe() const override;

 private:
  double lr_;
};

// Linear warmup from 0, then half a cosine down to min_lr, then min_lr (HuggingFace's
// get_cosine_schedule_with_warmup with a floor):
//   step < warmup:          base_lr * step / warmup              (0 at step 0)
//   warmup <= step < total: min_lr + (base_lr - min_lr) * (1 + cos(pi * (step - warmup) /
//                                                                   (total - warmup))) / 2
//   step >= total:          min_lr
// 0 <= warmup_steps <= total_steps, total_steps >= 1, 0 <= min_lr <= base_lr.
class WarmupCosine : public LRSchedule {
 public:
  WarmupCosine(double base_lr, int64_t warmup_steps, int64_t total_steps, double min_lr = 0);
  double lr(int64_t step) const override;
  std::string describe() const override;

 private:
  double base_, min_;
  int64_t warmup_, total_;
};

// base_lr * gamma^floor(step / step_size) (torch.optim.lr_scheduler.StepLR).
class StepDecay : public LRSchedule {
 public:
  StepDecay(double base_lr, int64_t step_size, double gamma);
  double lr(int64_t step) const override;
  std::string describe() const override;

 private:
  double base_, gamma_;
  int64_t step_size_;
};

// A schedule from a command-line spec "<name>[:key=value,...]", with defaults from the other
// flags (base_lr from --lr, total_steps from --steps):
//   "constant"                                   ConstantLR(lr = base_lr)
//   "cosine[:warmup=N,total=N,min_lr=X,base_lr=X]"   WarmupCosine (warmup 0, total total_steps)
//   "step:step_size=N[,gamma=X,base_lr=X]"       StepDecay (gamma 0.1)
// "warmup_cosine" is an alias of "cosine". Unknown names or keys, malformed numbers and invalid
// values are ValueErrors that quote the spec. describe() output parses back to the same schedule.
std::unique_ptr<LRSchedule> parse_schedule(const std::string& spec,
                                           double base_lr,
                                           int64_t total_steps = 0);

}  // namespace attnlab::optim
