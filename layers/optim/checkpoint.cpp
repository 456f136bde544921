#include "layers/optim/checkpoint.hpp"

#include <cstring>
#include <map>
#include <set>

#include "core/core.hpp"

namespace attnlab::optim {
namespace {

constexpr int64_t kVersion = 1;

Tensor int_scalar(int64_t v) {
  Tensor t = Tensor::empty({}, kInt64);
  *t.data<int64_t>() = v;
  return t;
}

// The same encoding as Module::state_dict uses for its generators: the bit patterns of
// (seed, next stream) as int64 [2].
Tensor generator_state(const Generator& g) {
  Tensor t = Tensor::empty({2}, kInt64);
  const uint64_t words[2] = {g.seed(), g.stream()};
  std::memcpy(t.raw_data(), words, sizeof words);
  return t;
}

void check_names(const NamedGenerators& rngs, const NamedScalars& scalars, const char* who) {
  std::set<std::string> seen;
  for (const auto& [n, g] : rngs) {
    ATTNLAB_CHECK(!n.empty() && seen.insert(n).second,
                  ValueError,
                  who,
                  ": generator name '",
                  n,
                  "' is empty or given twice");
    ATTNLAB_CHECK(g != nullptr, ValueError, who, ": generator '", n, "' is null");
  }
  seen.clear();
  for (const auto& [n, v] : scalars) {
    ATTNLAB_CHECK(!n.empty() && seen.insert(n).second,
                  ValueError,
                  who,
                  ": scalar name '",
                  n,
                  "' is empty or given twice");
  }
}

// The entries' name prefixes: one definition for the writer and both readers.
constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimPrefix = "optim.";
constexpr const char* kRngPrefix = "rng.";
constexpr const char* kScalarPrefix = "scalar.";

// True when `name` starts with `prefix`; then *rest is the part after it.
bool strip_prefix(const std::string& name, const char* prefix, std::string* rest) {
  const size_t n = std::strlen(prefix);
  if (name.compare(0, n, prefix) != 0)
    return false;
  *rest = name.substr(n);
  return true;
}

// Runs f; an attnlab error escaping it is rethrown as the same type with `context` in front.
template <class F>
void with_context(const std::string& context, F&& f) {
  try {
    f();
  } catch (const ShapeError& e) {
    throw ShapeError(context + e.what());
  } catch (const DTypeError& e) {
    throw DTypeError(context + e.what());
  } catch (const ValueError& e) {
    throw ValueError(context + e.what());
  } catch (const IOError& e) {
    throw IOError(context + e.what());
  }
}

// A rank-0 entry of the given dtype, or the error naming it.
const Tensor& scalar_entry(const std::map<std::string, const Tensor*>& top,
                           const std::string& name,
                           DType dtype) {
  auto it = top.find(name);
  ATTNLAB_CHECK(it != top.end(), ValueError, "missing entry '", name, "'");
  const Tensor& t = *it->second;
  ATTNLAB_CHECK(
      t.dim() == 0, ShapeError, "entry '", name, "' must be a scalar (shape []), got ", t.shape());
  ATTNLAB_CHECK(
      t.dtype() == dtype, DTypeError, "entry '", name, "' must be ", dtype, ", got ", t.dtype());
  return t;
}

}  // namespace

NamedTensors checkpoint_entries(const nn::Module& model,
                                const Optimizer& opt,
                                int64_t step,
                                const NamedGenerators& rngs,
                                const NamedScalars& scalars) {
  check_names(rngs, scalars, "save_checkpoint");
  NamedTensors out;
  out.emplace_back("checkpoint_version", int_scalar(kVersion));
  out.emplace_back("step", int_scalar(step));
  for (auto& [n, t] : model.state_dict()) out.emplace_back(kModelPrefix + n, t);
  for (auto& [n, t] : opt.state_dict()) out.emplace_back(kOptimPrefix + n, t);
  for (const auto& [n, g] : rngs) out.emplace_back(kRngPrefix + n, generator_state(*g));
  for (const auto& [n, v] : scalars)
    out.emplace_back(kScalarPrefix + n, scalar_tensor(v, kFloat64));
  return out;
}

void save_checkpoint(const std::string& path,
                     const nn::Module& model,
                     const Optimizer& opt,
                     int64_t step,
                     const NamedGenerators& rngs,
                     const NamedScalars& scalars) {
  save_npz(path, checkpoint_entries(model, opt, step, rngs, scalars));
}

int64_t load_checkpoint_entries(const NamedTensors& entries,
                                const std::string& source,
                                nn::Module& model,
                                Optimizer& opt,
                                const NamedGenerators& rngs,
                                NamedScalars* scalars) {
  const std::string context = "load_checkpoint '" + source + "': ";
  int64_t step = 0;
  NamedTensors model_state, optim_state;
  NamedScalars loaded_scalars;
  std::vector<std::pair<Generator*, Tensor>> new_rngs;

  // 1. Sort the entries by prefix and check everything that does not belong to the model.
  with_context(context, [&] {
    check_names(rngs, {}, "load_checkpoint");
    std::map<std::string, const Tensor*> top, rng_entries;
    std::set<std::string> all;
    std::string unknown;  // the first entry with no known prefix
    for (const auto& [n, t] : entries) {
      ATTNLAB_CHECK(all.insert(n).second, ValueError, "entry '", n, "' appears twice");
      std::string rest;
      if (strip_prefix(n, kModelPrefix, &rest)) {
        model_state.emplace_back(rest, t);
      } else if (strip_prefix(n, kOptimPrefix, &rest)) {
        optim_state.emplace_back(rest, t);
      } else if (strip_prefix(n, kRngPrefix, &rest)) {
        rng_entries.emplace(n, &t);
      } else if (strip_prefix(n, kScalarPrefix, &rest)) {
        ATTNLAB_CHECK(
            t.dim() == 0, ShapeError, "entry '", n, "' must be a scalar, got ", t.shape());
        ATTNLAB_CHECK(
            is_floating(t.dtype()), DTypeError, "entry '", n, "' must be float, got ", t.dtype());
        loaded_scalars.emplace_back(rest, t.item());
      } else if (n == "checkpoint_version" || n == "step") {
        top.emplace(n, &t);
      } else if (unknown.empty()) {
        unknown = n;
      }
    }
    // The version first: a file that is no checkpoint at all should say so, not list entries.
    ATTNLAB_CHECK(
        top.count("checkpoint_version"),
        ValueError,
        "missing entry 'checkpoint_version': not an attnlab checkpoint (a file written by "
        "Module::save holds only a model: read it with Module::load)");
    const int64_t version = *scalar_entry(top, "checkpoint_version", kInt64).data<int64_t>();
    ATTNLAB_CHECK(version == kVersion,
                  ValueError,
                  "entry 'checkpoint_version' is ",
                  version,
                  "; this build reads version ",
                  kVersion);
    ATTNLAB_CHECK(unknown.empty(),
                  ValueError,
                  "unexpected entry '",
                  unknown,
                  "' (checkpoint entries are checkpoint_version, step, model.*, optim.*, rng.*, "
                  "scalar.*)");
    step = *scalar_entry(top, "step", kInt64).data<int64_t>();
    for (const auto& [n, g] : rngs) {
      auto it = rng_entries.find(kRngPrefix + n);
      ATTNLAB_CHECK(it != rng_entries.end(), ValueError, "missing entry '", kRngPrefix, n, "'");
      const Tensor& t = *it->second;
      ATTNLAB_CHECK(t.shape() == Shape{2},
                    ShapeError,
                    "entry '",
                    it->first,
                    "' must be [2], got ",
                    t.shape());
      ATTNLAB_CHECK(t.dtype() == kInt64,
                    DTypeError,
                    "entry '",
                    it->first,
                    "' must be int64, got ",
                    t.dtype());
      new_rngs.emplace_back(g, t);
      rng_entries.erase(it);
    }
    ATTNLAB_CHECK(rng_entries.empty(),
                  ValueError,
                  "unexpected entry '",
                  rng_entries.empty() ? "" : rng_entries.begin()->first,
                  "' (no generator of that name was passed to load_checkpoint)");
  });
  with_context(context + "optimizer (entries 'optim.*'): ",
               [&] { opt.check_state_dict(optim_state); });

  // 2. The model checks everything before it changes anything; the optimizer's state was checked
  // above, so its load cannot fail on content. Keep a copy of the model anyway so that no error
  // can leave a half-loaded pair.
  NamedTensors backup;
  for (auto& [n, t] : model.state_dict()) backup.emplace_back(n, t.clone());
  with_context(context + "model (entries 'model.*'): ",
               [&] { model.load_state_dict(model_state); });
  try {
    opt.load_state_dict(optim_state);
  } catch (...) {
    model.load_state_dict(backup);
    throw;
  }
  for (auto& [g, t] : new_rngs) {
    uint64_t words[2];
    std::memcpy(words, t.raw_data(), sizeof words);
    g->set_state(words[0], words[1]);
  }
  if (scalars)
    *scalars = std::move(loaded_scalars);
  return step;
}

NamedTensors read_checkpoint(const std::string& path) {
  NamedTensors entries;
  with_context("load_checkpoint '" + path + "': ", [&] { entries = load_npz(path); });
  return entries;
}

NamedScalars read_scalars(const NamedTensors& entries) {
  NamedScalars scalars;
  for (const auto& [n, t] : entries) {
    std::string rest;
    if (strip_prefix(n, kScalarPrefix, &rest) && t.dim() == 0 && is_floating(t.dtype()))
      scalars.emplace_back(rest, t.item());
  }
  return scalars;
}

int64_t load_checkpoint(const std::string& path,
                        nn::Module& model,
                        Optimizer& opt,
                        const NamedGenerators& rngs,
                        NamedScalars* scalars) {
  return load_checkpoint_entries(read_checkpoint(path), path, model, opt, rngs, scalars);
}

}  // namespace attnlab::optim
