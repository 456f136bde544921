#include "layers/nn/module.hpp"

#include <cstring>
#include <map>
#include <sstream>
#include <typeinfo>

#include "autograd/engine.hpp"
#include "core/core.hpp"

namespace attnlab::nn {
namespace module_detail {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Generator state as a 2-element int64 tensor: the bit patterns of (seed, next stream).
Tensor generator_state(const Generator& g) {
  Tensor t = Tensor::empty({2}, kInt64);
  const uint64_t words[2] = {g.seed(), g.stream()};
  std::memcpy(t.raw_data(), words, sizeof words);
  return t;
}

}  // namespace module_detail

using module_detail::join;

void Module::check_name(const std::string& name, const char* what) {
  ATTNLAB_CHECK(!name.empty() && name.find('.') == std::string::npos,
                ValueError,
                "Module: ",
                what,
                " name '",
                name,
                "' must be non-empty and contain no '.'");
}

void Module::check_unique(const std::string& name) const {
  auto taken = [&](const auto& list) {
    for (const auto& [n, v] : list) {
      if (n == name)
        return true;
    }
    return false;
  };
  bool child_taken = false;
  for (const auto& c : children_) child_taken = child_taken || c.name == name;
  ATTNLAB_CHECK(!taken(params_) && !taken(buffers_) && !taken(generators_) && !child_taken,
                ValueError,
                "Module ",
                type_name_,
                ": the name '",
                name,
                "' is already registered");
}

Var Module::register_parameter(const std::string& name, const Tensor& value) {
  check_name(name, "parameter");
  check_unique(name);
  ATTNLAB_CHECK(is_floating(value.dtype()),
                DTypeError,
                "Module ",
                type_name_,
                ": parameter '",
                name,
                "' must be float, got ",
                value.dtype());
  Var v = ag::param(value);
  v.set_label(name);
  params_.emplace_back(name, v);
  return v;
}

void Module::register_buffer(const std::string& name, const Tensor& value) {
  check_name(name, "buffer");
  check_unique(name);
  buffers_.emplace_back(name, value);
}

Tensor& Module::buffer(const std::string& name) {
  for (auto& [n, t] : buffers_) {
    if (n == name)
      return t;
  }
  throw ValueError("Module " + type_name_ + ": no buffer named '" + name + "'");
}

const Tensor& Module::buffer(const std::string& name) const {
  return const_cast<Module*>(this)->buffer(name);
}

void Module::register_generator(const std::string& name, std::shared_ptr<Generator> gen) {
  check_name(name, "generator");
  check_unique(name);
  ATTNLAB_CHECK(gen, ValueError, "Module ", type_name_, ": generator '", name, "' is null");
  generators_.emplace_back(name, std::move(gen));
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m, SlotSetter set_slot) {
  check_name(name, "submodule");
  check_unique(name);
  ATTNLAB_CHECK(m, ValueError, "Module ", type_name_, ": submodule '", name, "' is null");
  m->name_ = name;
  m->train(training_);
  children_.push_back({name, std::move(m), std::move(set_slot)});
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& c : children_) out.emplace_back(c.name, c.module);
  return out;
}

std::shared_ptr<Module> Module::module_at(const std::string& path) const {
  const Module* m = this;
  std::shared_ptr<Module> found;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t dot = std::min(path.find('.', start), path.size());
    const std::string head = path.substr(start, dot - start);
    found = nullptr;
    for (const auto& c : m->children_) {
      if (c.name == head)
        found = c.module;
    }
    ATTNLAB_CHECK(found,
                  ValueError,
                  "Module ",
                  type_name_,
                  ": no submodule at '",
                  path,
                  "' ('",
                  head,
                  "' is not a child of ",
                  m->name_.empty() ? m->type_name_ : m->name_,
                  ")");
    m = found.get();
    start = dot + 1;
  }
  return found;
}

std::shared_ptr<Module> Module::replace_module(const std::string& path,
                                               std::shared_ptr<Module> replacement) {
  ATTNLAB_CHECK(
      replacement, ValueError, "replace_module: the replacement for '", path, "' is null");
  const std::size_t dot = path.rfind('.');
  Module& parent = dot == std::string::npos ? *this : *module_at(path.substr(0, dot));
  const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  module_at(path);  // throws naming the path if it does not exist
  for (auto& c : parent.children_) {
    if (c.name != name)
      continue;
    // Without a typed slot, only the same concrete type keeps every reader of the child valid.
    const bool fits =
        c.set_slot ? c.set_slot(replacement) : typeid(*replacement) == typeid(*c.module);
    ATTNLAB_CHECK(fits,
                  ValueError,
                  "replace_module: '",
                  path,
                  "' holds a ",
                  c.module->type_name_,
                  " and cannot take a ",
                  replacement->type_name_,
                  c.set_slot ? " (not of the slot's type)" : " (a different module type)");
    replacement->name_ = name;
    if (!parent.named_parameters().empty())
      replacement->to(parent.dtype());
    replacement->train(parent.training_);
    std::swap(c.module, replacement);
    return replacement;  // the old child
  }
  return nullptr;  // unreachable: module_at found it
}

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> out = params_;
  for (const auto& [name, child, slot] : children_) {
    for (auto& [n, v] : child->named_parameters()) out.emplace_back(join(name, n), v);
  }
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [n, v] : named_parameters()) out.push_back(v);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out = buffers_;
  for (const auto& [name, child, slot] : children_) {
    for (auto& [n, t] : child->named_buffers()) out.emplace_back(join(name, n), t);
  }
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Generator>>> Module::named_generators() const {
  auto out = generators_;
  for (const auto& [name, child, slot] : children_) {
    for (auto& [n, g] : child->named_generators()) out.emplace_back(join(name, n), g);
  }
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, v] : named_parameters()) n += v.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.module->train(on);
}

void Module::to(DType dtype) {
  ATTNLAB_CHECK(is_floating(dtype),
                DTypeError,
                "Module::to: expected float32 or float64, got ",
                dtype_name(dtype));
  for (auto& [n, v] : params_) {
    if (v.dtype() != dtype)
      v.reset_value(v.value().to(dtype));
  }
  for (auto& [n, t] : buffers_) {
    if (is_floating(t.dtype()) && t.dtype() != dtype)
      t = t.to(dtype);
  }
  for (auto& c : children_) c.module->to(dtype);
}

DType Module::dtype() const {
  const auto params = named_parameters();
  return params.empty() ? kFloat32 : params.front().second.dtype();
}

void Module::zero_grad() {
  for (auto& [n, v] : named_parameters()) v.zero_grad();
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  for (const auto& [n, v] : named_parameters()) out.emplace_back(n, v.value());
  for (const auto& [n, t] : named_buffers()) out.emplace_back(n, t);
  for (const auto& [n, g] : named_generators()) {
    out.emplace_back(n, module_detail::generator_state(*g));
  }
  return out;
}

void Module::load_state_dict(const NamedTensors& state) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [n, t] : state) {
    ATTNLAB_CHECK(
        given.emplace(n, &t).second, ValueError, "load_state_dict: entry '", n, "' appears twice");
  }
  auto take = [&](const std::string& name, const Shape& want, const char* kind) -> const Tensor& {
    auto it = given.find(name);
    ATTNLAB_CHECK(it != given.end(),
                  ValueError,
                  "load_state_dict: missing ",
                  kind,
                  " '",
                  name,
                  "' (expected shape ",
                  want,
                  ")");
    const Tensor& t = *it->second;
    ATTNLAB_CHECK(t.shape() == want,
                  ShapeError,
                  "load_state_dict: ",
                  kind,
                  " '",
                  name,
                  "' has shape ",
                  t.shape(),
                  " in the file but ",
                  want,
                  " in the model");
    given.erase(it);
    return t;
  };
  // Check everything before changing anything, so a bad file leaves the model untouched.
  std::vector<std::pair<Var, Tensor>> new_params;
  for (const auto& [n, v] : named_parameters()) {
    const Tensor& t = take(n, v.shape(), "parameter");
    ATTNLAB_CHECK(is_floating(t.dtype()),
                  DTypeError,
                  "load_state_dict: parameter '",
                  n,
                  "' is ",
                  t.dtype(),
                  " in the file; expected float");
    new_params.emplace_back(v, t.to(v.dtype()));
  }
  std::vector<std::pair<std::string, Tensor>> new_buffers;
  for (const auto& [n, b] : named_buffers()) {
    const Tensor& t = take(n, b.shape(), "buffer");
    ATTNLAB_CHECK(is_floating(t.dtype()) == is_floating(b.dtype()),
                  DTypeError,
                  "load_state_dict: buffer '",
                  n,
                  "' is ",
                  t.dtype(),
                  " in the file but ",
                  b.dtype(),
                  " in the model");
    new_buffers.emplace_back(n, t.to(b.dtype()));
  }
  std::vector<std::pair<std::shared_ptr<Generator>, Tensor>> new_gens;
  for (const auto& [n, g] : named_generators()) {
    const Tensor& t = take(n, Shape{2}, "generator state");
    ATTNLAB_CHECK(t.dtype() == kInt64,
                  DTypeError,
                  "load_state_dict: generator state '",
                  n,
                  "' must be int64, got ",
                  t.dtype());
    new_gens.emplace_back(g, t);
  }
  if (!given.empty()) {
    std::string extra;
    for (const auto& [n, t] : given)
      extra += (extra.empty() ? "'" : ", '") + n + "' " + t->shape().str();
    throw ValueError("load_state_dict: unexpected entries not in the model: " + extra);
  }
  for (auto& [v, t] : new_params) v.value().copy_from(t);
  // Buffers are replaced by name: walk the tree again (a buffer lives in exactly one module).
  for (auto& [name, t] : new_buffers) {
    Module* m = this;
    std::string rest = name;
    for (std::size_t dot; (dot = rest.find('.')) != std::string::npos;) {
      const std::string head = rest.substr(0, dot);
      Module* next = nullptr;
      for (auto& c : m->children_) {
        if (c.name == head)
          next = c.module.get();
      }
      m = next;
      rest = rest.substr(dot + 1);
    }
    m->buffer(rest) = t;
  }
  for (auto& [g, t] : new_gens) {
    uint64_t words[2];
    std::memcpy(words, t.raw_data(), sizeof words);
    g->set_state(words[0], words[1]);
  }
}

void Module::save(const std::string& path) const {
  save_npz(path, state_dict());
}

void Module::load(const std::string& path) {
  load_state_dict(load_npz(path));
}

std::string Module::str() const {
  std::ostringstream os;
  os << describe();
  if (!children_.empty()) {
    os << "(\n";
    for (const auto& [n, c, slot] : children_) {
      std::string inner = c->str();
      std::string indented;
      for (char ch : inner) {
        indented += ch;
        if (ch == '\n')
          indented += "  ";
      }
      os << "  (" << n << "): " << indented << "\n";
    }
    os << ")";
  }
  return os.str();
}

ForwardState capture_forward_state(const Module& m) {
  ForwardState out;
  for (const auto& [name, t] : m.named_buffers()) out.buffers.emplace_back(name, t.clone());
  for (const auto& [name, g] : m.named_generators())
    out.generators.push_back({name, g->seed(), g->stream()});
  return out;
}

int64_t restore_forward_state(const Module& m, const ForwardState& state) {
  int64_t set = 0;
  for (const auto& [name, t] : m.named_buffers()) {
    for (const auto& [saved_name, saved] : state.buffers) {
      if (saved_name != name)
        continue;
      ATTNLAB_CHECK(saved.shape() == t.shape() && saved.dtype() == t.dtype(),
                    ShapeError,
                    "restore_forward_state: buffer '",
                    name,
                    "' is ",
                    t.shape(),
                    " ",
                    dtype_name(t.dtype()),
                    ", it was captured as ",
                    saved.shape(),
                    " ",
                    dtype_name(saved.dtype()));
      t.copy_from(saved);
      ++set;
    }
  }
  for (const auto& [name, g] : m.named_generators()) {
    for (const GeneratorState& saved : state.generators) {
      if (saved.name != name)
        continue;
      g->set_state(saved.seed, saved.stream);
      ++set;
    }
  }
  return set;
}

namespace {
thread_local bool g_traces_frozen = false;
}  // namespace

bool traces_frozen() {
  return g_traces_frozen;
}
FreezeTracesGuard::FreezeTracesGuard() : saved_(g_traces_frozen) {
  g_traces_frozen = true;
}
FreezeTracesGuard::~FreezeTracesGuard() {
  g_traces_frozen = saved_;
}

}  // namespace attnlab::nn
