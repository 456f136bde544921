#include "layers/recommender/model_registry.hpp"

#include "layers/attention/attention_registry.hpp"
#include "layers/nn/kind_registration.hpp"
#include "layers/recommender/sasrec.hpp"

namespace attnlab::rec {
namespace {

// The registered model kinds in registration order, and the first refusal
// (layers/nn/kind_registration.hpp).
nn::KindRegistration<ModelKind>& registration() {
  static nn::KindRegistration<ModelKind> r("RegisterModelKind");
  return r;
}

// SASRec (Kang & McAuley, ICDM 2018) with attention kind `a`: its options are the kind's.
ModelKind sasrec_kind(const AttentionKind& a) {
  ModelKind m;
  m.name = a.name;
  m.family = a.family;
  m.summary = "SASRec with " + a.summary;
  m.reference = "Kang & McAuley 2018 (SASRec); " + a.reference;
  m.stacked = true;
  m.options = a.options;
  const std::string name = a.name;
  m.make = [name](const OptionValues& options, const ModelContext& c) {
    SASRecConfig mc;
    mc.num_items = c.num_items;
    mc.max_length = c.max_length;
    mc.dim = c.dim;
    mc.blocks = c.blocks;
    mc.heads = c.heads;
    mc.dropout = c.dropout;
    mc.norm = c.norm;
    mc.seed = c.seed;
    mc.attention = name;
    mc.kernel = attention_kind(name).factory(options);
    return std::make_shared<SASRec>(mc);
  };
  return m;
}

struct ModelKindCache {
  std::vector<ModelKind> kinds;
  size_t attention = static_cast<size_t>(-1), models = static_cast<size_t>(-1);
};

}  // namespace

const std::vector<ModelKind>& model_kinds() {
  const std::vector<ModelKind>& registered = registration().kinds();  // throws a refusal
  static ModelKindCache cache;
  const auto& attention = attention_kinds();
  if (cache.attention != attention.size() || cache.models != registered.size()) {
    cache.kinds.clear();
    for (const auto& a : attention) cache.kinds.push_back(sasrec_kind(a));
    for (const auto& m : registered) {
      // Every attention kind is also a model kind (SASRec with it): one name, one model.
      ATTNLAB_CHECK(find_attention_kind(m.name) == nullptr,
                    ValueError,
                    "RegisterModelKind: kind '",
                    m.name,
                    "' is also an attention kind (SASRec with it is already the model kind '",
                    m.name,
                    "')");
      cache.kinds.push_back(m);
    }
    cache.attention = attention.size();
    cache.models = registered.size();
  }
  return cache.kinds;
}

const ModelKind* find_model_kind(const std::string& name) {
  for (const auto& k : model_kinds())
    if (k.name == name)
      return &k;
  return nullptr;
}

std::string model_kind_names() {
  std::string names;
  for (const auto& k : model_kinds()) names += (names.empty() ? "" : ", ") + k.name;
  return names;
}

const ModelKind& model_kind(const std::string& name) {
  const ModelKind* kind = find_model_kind(name);
  if (kind == nullptr)
    throw ValueError("model kind '" + name + "' is unknown (known: " + model_kind_names() + ")");
  return *kind;
}

RegisterModelKind::RegisterModelKind(std::vector<ModelKind> kinds) {
  registration().add(std::move(kinds));
}

}  // namespace attnlab::rec
