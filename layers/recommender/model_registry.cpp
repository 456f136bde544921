#include "layers/recommender/model_registry.hpp"

#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/sasrec.hpp"

namespace attnlab::rec {
namespace {

std::vector<ModelKind>& registered_model_kinds() {
  static std::vector<ModelKind> kinds;
  return kinds;
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
  static ModelKindCache cache;
  const auto& attention = attention_kinds();
  if (cache.attention != attention.size() || cache.models != registered_model_kinds().size()) {
    cache.kinds.clear();
    for (const auto& a : attention) cache.kinds.push_back(sasrec_kind(a));
    for (const auto& m : registered_model_kinds()) cache.kinds.push_back(m);
    cache.attention = attention.size();
    cache.models = registered_model_kinds().size();
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
  for (auto& k : kinds) {
    ATTNLAB_CHECK(!k.name.empty() && k.make,
                  ValueError,
                  "RegisterModelKind: a model kind needs a name and a factory (family '",
                  k.family,
                  "')");
    for (const auto& existing : registered_model_kinds())
      ATTNLAB_CHECK(existing.name != k.name,
                    ValueError,
                    "RegisterModelKind: kind '",
                    k.name,
                    "' is registered twice");
    registered_model_kinds().push_back(std::move(k));
  }
}

}  // namespace attnlab::rec
