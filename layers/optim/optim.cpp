// Optimizer base (parameter bookkeeping, state_dict), SGD and gradient clipping. Adam and AdamW
// are in layers/optim/adam.cpp.
#include "layers/optim/optim.hpp"

#include <cmath>
#include <map>
#include <set>

#include "autograd/node.hpp"
#include "core/core.hpp"

namespace attnlab::optim {
namespace {

// Element-wise loops over large tensors run on the pool; each element is computed in one chunk,
// so the result is the same for any thread count.
constexpr int64_t kGrain = 1 << 15;

std::vector<std::pair<std::string, ag::Var>> dedupe(
    std::vector<std::pair<std::string, ag::Var>> items) {
  std::vector<std::pair<std::string, ag::Var>> out;
  std::set<const void*> seen;
  for (auto& [n, v] : items) {
    if (v.defined() && !seen.insert(v.impl().get()).second)
      continue;
    out.emplace_back(std::move(n), std::move(v));
  }
  return out;
}

std::vector<std::pair<std::string, ag::Var>> numbered(const std::vector<ag::Var>& params) {
  std::vector<std::pair<std::string, ag::Var>> out;
  for (std::size_t i = 0; i < params.size(); ++i) out.emplace_back(std::to_string(i), params[i]);
  return out;
}

// A scalar entry of a state dict: int64 or float64, rank 0.
Tensor int_scalar(int64_t v) {
  Tensor t = Tensor::empty({}, kInt64);
  *t.data<int64_t>() = v;
  return t;
}

}  // namespace

// ---- ParamList ---------------------------------------------------------------------------------
ParamList::ParamList(std::vector<ag::Var> params)
    : items_(dedupe(numbered(params))) {}
ParamList::ParamList(std::initializer_list<ag::Var> params)
    : ParamList(std::vector<ag::Var>(params)) {}
ParamList::ParamList(std::vector<std::pair<std::string, ag::Var>> named)
    : items_(dedupe(std::move(named))) {}
ParamList::ParamList(std::initializer_list<std::pair<std::string, ag::Var>> named)
    : ParamList(std::vector<std::pair<std::string, ag::Var>>(named)) {}

// ---- Optimizer ---------------------------------------------------------------------------------
Optimizer::Optimizer(const char* name,
                     ParamList params,
                     double lr,
                     std::vector<std::string> buffer_names)
    : name_(name), lr_(lr), buffer_names_(std::move(buffer_names)) {
  check_range("lr", lr, 0, INFINITY, true);
  ATTNLAB_CHECK(!params.items().empty(), ValueError, name_, ": got an empty parameter list");
  std::set<std::string> names;
  for (const auto& [n, v] : params.items()) {
    ATTNLAB_CHECK(v.defined(), ValueError, name_, ": parameter '", n, "' is undefined");
    ATTNLAB_CHECK(v.is_leaf(),
                  ValueError,
                  name_,
                  ": parameter '",
                  n,
                  "' is not a leaf (it was produced by '",
                  v.grad_fn() ? v.grad_fn()->op : "?",
                  "'); optimizers update leaves only");
    ATTNLAB_CHECK(is_floating(v.dtype()),
                  DTypeError,
                  name_,
                  ": parameter '",
                  n,
                  "' must be float32 or float64, got ",
                  v.dtype());
    ATTNLAB_CHECK(!n.empty() && names.insert(n).second,
                  ValueError,
                  name_,
                  ": parameter name '",
                  n,
                  "' is empty or used twice");
    ParamState s;
    s.name = n;
    s.param = v;
    for (std::size_t b = 0; b < buffer_names_.size(); ++b)
      s.buffers.push_back(zeros_like(v.value()));
    states_.push_back(std::move(s));
  }
}

void Optimizer::check_range(
    const char* what, double value, double lo, double hi, bool hi_open) const {
  const bool ok = std::isfinite(value) && value >= lo && (hi_open ? value < hi : value <= hi);
  ATTNLAB_CHECK(ok,
                ValueError,
                name_,
                ": ",
                what,
                " must be in [",
                lo,
                ", ",
                hi,
                hi_open ? ")" : "]",
                ", got ",
                value);
}

void Optimizer::set_lr(double lr) {
  check_range("lr", lr, 0, INFINITY, true);
  lr_ = lr;
}

std::vector<ag::Var> Optimizer::params() const {
  std::vector<ag::Var> out;
  for (const auto& s : states_) out.push_back(s.param);
  return out;
}

std::vector<std::string> Optimizer::param_names() const {
  std::vector<std::string> out;
  for (const auto& s : states_) out.push_back(s.name);
  return out;
}

void Optimizer::zero_grad() {
  for (auto& s : states_) s.param.zero_grad();
}

void Optimizer::step() {
  for (auto& s : states_) {
    const Tensor& g = s.param.grad();
    if (!g.defined())
      continue;
    const Tensor& p = s.param.value();
    ATTNLAB_CHECK(g.dtype() == p.dtype(),
                  DTypeError,
                  name_,
                  ": parameter '",
                  s.name,
                  "' is ",
                  p.dtype(),
                  " but its gradient is ",
                  g.dtype());
    ATTNLAB_CHECK(g.shape() == p.shape(),
                  ShapeError,
                  name_,
                  ": parameter '",
                  s.name,
                  "' is ",
                  p.shape(),
                  " but its gradient is ",
                  g.shape());
    // Module::to may have changed the parameter's dtype since the buffers were made.
    for (Tensor& b : s.buffers) {
      ATTNLAB_CHECK(b.shape() == p.shape(),
                    ShapeError,
                    name_,
                    ": parameter '",
                    s.name,
                    "' changed shape from ",
                    b.shape(),
                    " to ",
                    p.shape(),
                    " after the optimizer was built");
      if (b.dtype() != p.dtype())
        b = b.to(p.dtype());
    }
    ++s.step;
    update(s, g);
  }
  ++steps_;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  out.emplace_back("step", int_scalar(steps_));
  out.emplace_back("lr", scalar_tensor(lr_, kFloat64));
  for (const auto& s : states_) {
    out.emplace_back(s.name + ".step", int_scalar(s.step));
    for (std::size_t b = 0; b < buffer_names_.size(); ++b) {
      out.emplace_back(s.name + "." + buffer_names_[b], s.buffers[b].clone());
    }
  }
  return out;
}

void Optimizer::check_state_dict(const NamedTensors& state) const {
  std::map<std::string, const Tensor*> given;
  for (const auto& [n, t] : state) {
    ATTNLAB_CHECK(given.emplace(n, &t).second,
                  ValueError,
                  name_,
                  "::load_state_dict: entry '",
                  n,
                  "' appears twice");
  }
  auto take = [&](const std::string& n, const Shape& shape, bool is_int) {
    auto it = given.find(n);
    ATTNLAB_CHECK(it != given.end(),
                  ValueError,
                  name_,
                  "::load_state_dict: missing entry '",
                  n,
                  "' (expected shape ",
                  shape,
                  "; was the state saved by another optimizer type or model?)");
    const Tensor& t = *it->second;
    ATTNLAB_CHECK(t.defined() && t.shape() == shape,
                  ShapeError,
                  name_,
                  "::load_state_dict: entry '",
                  n,
                  "' has shape ",
                  t.defined() ? t.shape().str() : "(undefined)",
                  " but ",
                  shape,
                  " was expected");
    ATTNLAB_CHECK(is_int ? t.dtype() == kInt64 : is_floating(t.dtype()),
                  DTypeError,
                  name_,
                  "::load_state_dict: entry '",
                  n,
                  "' is ",
                  t.dtype(),
                  "; expected ",
                  is_int ? "int64" : "float32 or float64");
    given.erase(it);
    return t;
  };
  const Tensor steps = take("step", Shape{}, true);
  ATTNLAB_CHECK(*steps.data<int64_t>() >= 0,
                ValueError,
                name_,
                "::load_state_dict: entry 'step' is negative (",
                *steps.data<int64_t>(),
                ")");
  const Tensor lr = take("lr", Shape{}, false);
  ATTNLAB_CHECK(std::isfinite(lr.item()) && lr.item() >= 0,
                ValueError,
                name_,
                "::load_state_dict: entry 'lr' must be finite and >= 0, got ",
                lr.item());
  for (const auto& s : states_) {
    const Tensor st = take(s.name + ".step", Shape{}, true);
    ATTNLAB_CHECK(*st.data<int64_t>() >= 0,
                  ValueError,
                  name_,
                  "::load_state_dict: entry '",
                  s.name,
                  ".step' is negative");
    for (const auto& b : buffer_names_) take(s.name + "." + b, s.param.shape(), false);
  }
  if (!given.empty()) {
    std::string extra;
    for (const auto& [n, t] : given) {
      extra += (extra.empty() ? "'" : ", '") + n + "' " +
               (t->defined() ? t->shape().str() : std::string("(undefined)"));
    }
    throw ValueError(std::string(name_) + "::load_state_dict: unexpected entries: " + extra);
  }
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  check_state_dict(state);
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  steps_ = *by_name.at("step").data<int64_t>();
  lr_ = by_name.at("lr").item();
  for (auto& s : states_) {
    s.step = *by_name.at(s.name + ".step").data<int64_t>();
    for (std::size_t b = 0; b < buffer_names_.size(); ++b) {
      s.buffers[b] = by_name.at(s.name + "." + buffer_names_[b]).to(s.param.dtype());
    }
  }
}

// ---- SGD ---------------------------------------------------------------------------------------
namespace {
std::vector<std::string> sgd_buffers(double momentum) {
  if (momentum != 0)
    return {"momentum_buffer"};
  return {};
}

template <class T>
void sgd_update(T* p,
                const T* g,
                T* buf,
                int64_t n,
                int64_t step,
                double lr,
                double mom,
                bool nesterov,
                double wd) {
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      double d = g[i];
      if (wd != 0)
        d += wd * static_cast<double>(p[i]);
      if (buf) {
        buf[i] = step == 1 ? static_cast<T>(d) : static_cast<T>(mom * buf[i] + d);
        d = nesterov ? d + mom * static_cast<double>(buf[i]) : static_cast<double>(buf[i]);
      }
      p[i] = static_cast<T>(p[i] - lr * d);
    }
  });
}
}  // namespace

SGD::SGD(ParamList params, double lr, double momentum, bool nesterov, double weight_decay)
    : Optimizer("SGD", std::move(params), lr, sgd_buffers(momentum)),
      momentum_(momentum),
      weight_decay_(weight_decay),
      nesterov_(nesterov) {
  check_range("momentum", momentum, 0, INFINITY, true);
  check_range("weight_decay", weight_decay, 0, INFINITY, true);
  ATTNLAB_CHECK(!nesterov || momentum > 0,
                ValueError,
                "SGD: nesterov needs a positive momentum, got momentum ",
                momentum);
}

void SGD::update(ParamState& s, const Tensor& grad) {
  const Tensor& p = s.param.value();
  dispatch_float(p.dtype(), "SGD", [&](auto tag) {
    using T = decltype(tag);
    sgd_update<T>(p.data<T>(),
                                grad.data<T>(),
                                s.buffers.empty() ? nullptr : s.buffers[0].data<T>(),
                                p.numel(),
                                s.step,
                                lr(),
                                momentum_,
                                nesterov_,
                                weight_decay_);
  });
}

// ---- gradient clipping -------------------------------------------------------------------------
namespace {
std::vector<Tensor> unique_grads(const std::vector<ag::Var>& params) {
  std::vector<Tensor> out;
  std::set<const void*> seen;
  for (const auto& v : params) {
    if (!v.defined() || !seen.insert(v.impl().get()).second)
      continue;
    if (v.grad().defined())
      out.push_back(v.grad());
  }
  return out;
}

double sum_squares(const std::vector<Tensor>& grads) {
  double total = 0;
  for (const Tensor& g : grads) {
    dispatch_float(g.dtype(), "clip_grad_norm", [&](auto tag) {
      using T = decltype(tag);
      const T* p = g.data<T>();
      // Four accumulators in a fixed order: faster than one chain, still deterministic.
      double acc[4] = {0, 0, 0, 0};
      const int64_t n = g.numel();
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) {
        for (int k = 0; k < 4; ++k) acc[k] += static_cast<double>(p[i + k]) * p[i + k];
      }
      for (; i < n; ++i) acc[0] += static_cast<double>(p[i]) * p[i];
      total += (acc[0] + acc[1]) + (acc[2] + acc[3]);
    });
  }
  return total;
}
}  // namespace

double grad_norm(const std::vector<ag::Var>& params) {
  return std::sqrt(sum_squares(unique_grads(params)));
}

double clip_grad_norm(const std::vector<ag::Var>& params,
                      double max_norm,
                      bool error_if_nonfinite) {
  ATTNLAB_CHECK(std::isfinite(max_norm) && max_norm > 0,
                ValueError,
                "clip_grad_norm: max_norm must be positive and finite, got ",
                max_norm);
  const std::vector<Tensor> grads = unique_grads(params);
  const double norm = std::sqrt(sum_squares(grads));
  if (!std::isfinite(norm)) {
    ATTNLAB_CHECK(!error_if_nonfinite,
                  ValueError,
                  "clip_grad_norm: the total gradient norm is ",
                  norm,
                  " (a gradient holds NaN or Inf)");
    return norm;
  }
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1) {
    for (const Tensor& g : grads) scale_(g, coef);
  }
  return norm;
}

}  // namespace attnlab::optim
