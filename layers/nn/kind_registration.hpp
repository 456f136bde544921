// Registration of kinds (attention kinds, model kinds) from static registrar objects, which run
// before main(): an exception there aborts the program ("terminate called after throwing ..."),
// so a refused kind (no name or factory, a name already taken) is left out and its error kept, and
// every later read of the registry throws it: the program's first use of the registry fails with
// a one-line message. One mechanism for both registries
// (layers/attention/attention_registry.hpp, layers/recommender/model_registry.hpp).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace attnlab::nn {

// Kind: any struct with `name`, `family` and a `make` factory that converts to bool.
template <class Kind>
class KindRegistration {
 public:
  // `registrar` names the registrar in the errors ("RegisterAttentionKind").
  explicit KindRegistration(const char* registrar) : registrar_(registrar) {}

  // Adds the kinds; never throws. The first refusal is kept.
  void add(std::vector<Kind> kinds) {
    for (auto& k : kinds) {
      const std::string error = refusal(k);
      if (error.empty())
        kinds_.push_back(std::move(k));
      else if (refused_.empty())
        refused_ = error;
    }
  }
  // The kinds in registration order; ValueError with the first refusal, if any.
  const std::vector<Kind>& kinds() const {
    if (!refused_.empty())
      throw ValueError(refused_);
    return kinds_;
  }

 private:
  std::string refusal(const Kind& k) const {
    if (k.name.empty() || !k.make)
      return registrar_ + ": a kind needs a name and a factory (family '" + k.family + "')";
    for (const auto& existing : kinds_)
      if (existing.name == k.name)
        return registrar_ + ": kind '" + k.name + "' is registered twice (families " +
               existing.family + " and " + k.family + ")";
    return "";
  }

  std::string registrar_;
  std::vector<Kind> kinds_;
  std::string refused_;
};

}  // namespace attnlab::nn
