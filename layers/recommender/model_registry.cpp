#include "layers/recommender/model_registry.hpp"

#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/sasrec.hpp"

namespace attnlab::rec {
namespace {

std::vector<ModelKind>& registered_model_kinds() {
  static std::vector<ModelKind> kinds;
  return kinds;
}

// The first model kind refused at registration, thrown by every lookup (as for attention kinds:
// layers/attention/attention_registry.hpp).
std::string& refused_registration() {
  static std::string error;
  return error;
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
  if (!refused_registration().empty())
    throw ValueError(refused_registration());
  static ModelKindCache cache;
  const auto& attention = attention_kinds();
  if (cache.attention != attention.size() || cache.models != registered_model_kinds().size()) {
    cache.kinds.clear();
    for (const auto& a : attention) cache.kinds.push_back(sasrec_kind(a));
    for (const auto& m : registered_model_kinds()) {
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
    std::string error;
    if (k.name.empty() || !k.make)
      error =
          "RegisterModelKind: a model kind needs a name and a factory (family '" + k.family + "')";
    for (const auto& existing : registered_model_kinds())
      if (error.empty() && existing.name == k.name)
        error = "RegisterModelKind: kind '" + k.name + "' is registered twice";
    if (!error.empty()) {
      if (refused_registration().empty())
        refused_registration() = error;
      continue;
    }
    registered_model_kinds().push_back(std::move(k));
  }
}

}  // namespace attnlab::rec
