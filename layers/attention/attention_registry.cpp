#include "layers/attention/attention_registry.hpp"

#include <algorithm>

namespace attnlab::nn {
namespace {

// Registration order as it happened (static initialisation: link order).
std::vector<AttentionKind>& registered_attention_kinds() {
  static std::vector<AttentionKind> kinds;
  return kinds;
}

// The public order: by family name, then each family's own order, so that the listing does not
// depend on the order the linker placed the families' files in.
struct SortedAttentionKinds {
  std::vector<AttentionKind> kinds;
  size_t source_size = static_cast<size_t>(-1);
};
SortedAttentionKinds& sorted_attention_kinds() {
  static SortedAttentionKinds s;
  return s;
}

// The first kind refused at registration. Registrars run before main(), where an exception
// aborts the program ("terminate called after ..."): the error waits here, and the registry's
// lookups throw it, so the program's first use of the registry fails with its message.
std::string& refused_registration() {
  static std::string error;
  return error;
}

}  // namespace

std::string describe(const KindCapabilities& c) {
  std::string out;
  auto add = [&](bool has, const char* name) {
    if (has)
      out += (out.empty() ? "" : ", ") + std::string(name);
  };
  add(c.causal, "causal");
  add(c.bidirectional, "bidirectional");
  add(c.key_padding, "key-padding");
  add(c.distance_decay, "decay");
  add(c.dropout, "dropout");
  add(c.random_features, "random-features");
  return out;
}

std::shared_ptr<AttentionKernel> AttentionKind::make_default(const KernelContext& context) const {
  return make(options.defaults(), context);
}

KernelFactory AttentionKind::factory(OptionValues values) const {
  auto build = make;
  return [build, values](const KernelContext& c) {
    return build(values, c);
  };
}

const std::vector<AttentionKind>& attention_kinds() {
  if (!refused_registration().empty())
    throw ValueError(refused_registration());
  SortedAttentionKinds& s = sorted_attention_kinds();
  if (s.source_size != registered_attention_kinds().size()) {
    s.kinds = registered_attention_kinds();
    std::stable_sort(s.kinds.begin(), s.kinds.end(), [](const auto& a, const auto& b) {
      return a.family < b.family;
    });
    s.source_size = registered_attention_kinds().size();
  }
  return s.kinds;
}

const AttentionKind* find_attention_kind(const std::string& name) {
  for (const auto& k : attention_kinds())
    if (k.name == name)
      return &k;
  return nullptr;
}

std::string attention_kind_names() {
  std::string names;
  for (const auto& k : attention_kinds()) names += (names.empty() ? "" : ", ") + k.name;
  return names;
}

const AttentionKind& attention_kind(const std::string& name) {
  const AttentionKind* kind = find_attention_kind(name);
  if (kind == nullptr)
    throw ValueError("attention kind '" + name + "' is unknown (known: " + attention_kind_names() +
                     ")");
  return *kind;
}

RegisterAttentionKind::RegisterAttentionKind(std::vector<AttentionKind> kinds) {
  for (auto& k : kinds) {
    std::string error;
    if (k.name.empty() || !k.make)
      error =
          "RegisterAttentionKind: a kind needs a name and a factory (family '" + k.family + "')";
    for (const auto& existing : registered_attention_kinds())
      if (error.empty() && existing.name == k.name)
        error = "RegisterAttentionKind: kind '" + k.name + "' is registered twice (families " +
                existing.family + " and " + k.family + ")";
    if (!error.empty()) {
      if (refused_registration().empty())
        refused_registration() = error;
      continue;
    }
    registered_attention_kinds().push_back(std::move(k));
  }
}

std::shared_ptr<AttentionKernel> make_attention_kernel(
    const std::string& name,
    const KernelContext& context,
    const std::vector<std::pair<std::string, std::string>>& options) {
  const AttentionKind& kind = attention_kind(name);
  OptionValues values = kind.options.defaults();
  for (const auto& [option, text] : options) kind.options.set(values, option, text, name);
  return kind.make(values, context);
}

}  // namespace attnlab::nn
