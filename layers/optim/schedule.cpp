#include "layers/optim/schedule.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "core/error.hpp"

namespace attnlab::optim {
namespace {

// Shortest text that reads back to the same double.
std::string num(double v) {
  char buf[32];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  return buf;
}

void check_step(int64_t step, const char* who) {
  ATTNLAB_CHECK(step >= 0, ValueError, who, ": step must be >= 0, got ", step);
}

void check_lr(double v, const char* who, const char* what) {
  ATTNLAB_CHECK(
      std::isfinite(v) && v >= 0, ValueError, who, ": ", what, " must be finite and >= 0, got ", v);
}

}  // namespace

// ---- ConstantLR --------------------------------------------------------------------------------
ConstantLR::ConstantLR(double lr) : lr_(lr) {
  check_lr(lr, "ConstantLR", "lr");
}
double ConstantLR::lr(int64_t step) const {
  check_step(step, "ConstantLR");
  return lr_;
}
std::string ConstantLR::describe() const {
  return "constant:base_lr=" + num(lr_);
}

// ---- WarmupCosine ------------------------------------------------------------------------------
WarmupCosine::WarmupCosine(double base_lr, int64_t warmup_steps, int64_t total_steps, double min_lr)
    : base_(base_lr), min_(min_lr), warmup_(warmup_steps), total_(total_steps) {
  check_lr(base_lr, "WarmupCosine", "base_lr");
  check_lr(min_lr, "WarmupCosine", "min_lr");
  ATTNLAB_CHECK(min_lr <= base_lr,
                ValueError,
                "WarmupCosine: min_lr ",
                min_lr,
                " must not exceed base_lr ",
                base_lr);
  ATTNLAB_CHECK(total_steps >= 1 && warmup_steps >= 0 && warmup_steps <= total_steps,
                ValueError,
                "WarmupCosine: need 0 <= warmup_steps <= total_steps and total_steps >= 1, got "
                "warmup_steps ",
                warmup_steps,
                ", total_steps ",
                total_steps);
}

double WarmupCosine::lr(int64_t step) const {
  check_step(step, "WarmupCosine");
  if (step < warmup_)
    return base_ * static_cast<double>(step) / static_cast<double>(warmup_);
  if (step >= total_)
    return min_;
  const double progress =
      static_cast<double>(step - warmup_) / static_cast<double>(total_ - warmup_);
  return min_ + (base_ - min_) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

std::string WarmupCosine::describe() const {
  return "cosine:base_lr=" + num(base_) + ",warmup=" + std::to_string(warmup_) +
         ",total=" + std::to_string(total_) + ",min_lr=" + num(min_);
}

// ---- StepDecay ---------------------------------------------------------------------------------
StepDecay::StepDecay(double base_lr, int64_t step_size, double gamma)
    : base_(base_lr), gamma_(gamma), step_size_(step_size) {
  check_lr(base_lr, "StepDecay", "base_lr");
  ATTNLAB_CHECK(step_size >= 1, ValueError, "StepDecay: step_size must be >= 1, got ", step_size);
  ATTNLAB_CHECK(std::isfinite(gamma) && gamma > 0,
                ValueError,
                "StepDecay: gamma must be positive and finite, got ",
                gamma);
}

double StepDecay::lr(int64_t step) const {
  check_step(step, "StepDecay");
  return base_ * std::pow(gamma_, static_cast<double>(step / step_size_));
}

std::string StepDecay::describe() const {
  return "step:base_lr=" + num(base_) +
         ",step_size=" + std::to_string(step_size_) + ",gamma=" + num(gamma_);
}

// ---- parse_schedule ----------------------------------------------------------------------------
namespace {

struct Spec {
  std::string text, name;
  std::map<std::string, std::string> kv;

  [[noreturn]] void fail(const std::string& why) const {
    throw ValueError("parse_schedule: '" + text + "': " + why);
  }
  double real(const std::string& key, double fallback) {
    auto it = kv.find(key);
    if (it == kv.end())
      return fallback;
    const std::string v = it->second;
    kv.erase(it);
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || errno == ERANGE)
      fail(key + " = '" + v + "' is not a number");
    return d;
  }
  int64_t integer(const std::string& key, int64_t fallback) {
    auto it = kv.find(key);
    if (it == kv.end())
      return fallback;
    const std::string v = it->second;
    kv.erase(it);
    char* end = nullptr;
    errno = 0;
    const long long i = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE)
      fail(key + " = '" + v + "' is not an integer");
    return i;
  }
  bool has(const std::string& key) const { return kv.count(key) != 0; }
  void finish() const {
    if (!kv.empty())
      fail("unknown key '" + kv.begin()->first + "' for schedule '" + name + "'");
  }
};

Spec split_spec(const std::string& text) {
  Spec s;
  s.text = text;
  const std::size_t colon = text.find(':');
  s.name = text.substr(0, colon);
  if (colon == std::string::npos)
    return s;
  const std::string rest = text.substr(colon + 1);
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    std::size_t comma = rest.find(',', pos);
    if (comma == std::string::npos)
      comma = rest.size();
    const std::string item = rest.substr(pos, comma - pos);
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      s.fail("expected key=value, got '" + item + "'");
    if (!s.kv.emplace(item.substr(0, eq), item.substr(eq + 1)).second)
      s.fail("key '" + item.substr(0, eq) + "' given twice");
    pos = comma + 1;
  }
  return s;
}

}  // namespace

std::unique_ptr<LRSchedule> parse_schedule(const std::string& text,
                                           double base_lr,
                                           int64_t total_steps) {
  Spec s = split_spec(text);
  try {
    if (s.name == "constant") {
      const double lr = s.real("base_lr", base_lr);
      s.finish();
      return std::make_unique<ConstantLR>(lr);
    }
    if (s.name == "cosine" || s.name == "warmup_cosine") {
      const double lr = s.real("base_lr", base_lr);
      const int64_t warmup = s.integer("warmup", 0);
      const int64_t total = s.integer("total", total_steps);
      const double min_lr = s.real("min_lr", 0.0);
      s.finish();
      return std::make_unique<WarmupCosine>(lr, warmup, total, min_lr);
    }
    if (s.name == "step") {
      if (!s.has("step_size"))
        s.fail("schedule 'step' needs step_size=N");
      const double lr = s.real("base_lr", base_lr);
      const int64_t size = s.integer("step_size", 0);
      const double gamma = s.real("gamma", 0.1);
      s.finish();
      return std::make_unique<StepDecay>(lr, size, gamma);
    }
  } catch (const ValueError& e) {
    const std::string what = e.what();
    if (what.rfind("parse_schedule", 0) == 0)
      throw;
    s.fail(what);
  }
  s.fail("unknown schedule '" + s.name + "' (constant, cosine, warmup_cosine, step)");
}

}  // namespace attnlab::optim
