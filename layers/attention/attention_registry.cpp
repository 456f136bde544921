#include "layers/attention/attention_registry.hpp"

#include <algorithm>

#include "layers/nn/kind_registration.hpp"

namespace attnlab::nn {
namespace {

// Registration order as it happened (static initialisation: link order), and the first refusal.
KindRegistration<AttentionKind>& registration() {
  static KindRegistration<AttentionKind> r("RegisterAttentionKind");
  return r;
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
  add(c.quadratic_memory, "O(L^2)-memory");
  add(c.quadratic_time && !c.quadratic_memory, "O(L^2)-time");
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
  const std::vector<AttentionKind>& registered = registration().kinds();  // throws a refusal
  SortedAttentionKinds& s = sorted_attention_kinds();
  if (s.source_size != registered.size()) {
    s.kinds = registered;
    std::stable_sort(s.kinds.begin(), s.kinds.end(), [](const auto& a, const auto& b) {
      return a.family < b.family;
    });
    s.source_size = registered.size();
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
  registration().add(std::move(kinds));
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
