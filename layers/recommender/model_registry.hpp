// Model kinds: the one vocabulary of `train`, `sweep`, `demo` and the lessons. Every attention
// kind is a model kind (SASRec with that attention; its options are the attention kind's), and
// families register whole models too (LISA's lisa-base, lisa-soft, lisa-mini, from its own file).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/option_binder.hpp"
#include "layers/attention/transformer_block.hpp"
#include "layers/nn/gradcheck_case.hpp"
#include "layers/recommender/recommender.hpp"

namespace attnlab::rec {

// What every model kind is built from besides its own options.
struct ModelContext {
  int64_t num_items = 0;
  int64_t max_length = 200;
  int64_t dim = 50;
  int64_t blocks = 2;  // stacked kinds only
  int64_t heads = 1;   // stacked kinds only
  double dropout = 0.2;
  NormPlacement norm = NormPlacement::SASRec;  // stacked kinds only
  uint64_t seed = 0;
};

struct ModelKind {
  std::string name, family, summary, reference;
  // Whether the model reads blocks, heads and norm (SASRec); a kind with one fixed layer (LISA)
  // refuses them.
  bool stacked = true;
  OptionSet options;
  std::function<std::shared_ptr<SequenceRecommender>(const OptionValues&, const ModelContext&)>
      make;

  template <class T>
  static ModelKind with_options(
      std::string name,
      std::string family,
      std::string summary,
      std::string reference,
      bool stacked,
      OptionSet options,
      std::function<std::shared_ptr<SequenceRecommender>(const T&, const ModelContext&)> make) {
    ModelKind k;
    k.name = std::move(name);
    k.family = std::move(family);
    k.summary = std::move(summary);
    k.reference = std::move(reference);
    k.stacked = stacked;
    k.options = std::move(options);
    k.make = [make](const OptionValues& o, const ModelContext& c) {
      return make(o.as<T>(), c);
    };
    return k;
  }
};

// SASRec with every attention kind (in attention_kinds() order), then the registered models.
const std::vector<ModelKind>& model_kinds();
const ModelKind* find_model_kind(const std::string& name);
// ValueError "model kind 'x' is unknown (known: ...)".
const ModelKind& model_kind(const std::string& name);
std::string model_kind_names();

// Registers model kinds before main(); never throws: a refused kind (no name or factory, a name
// registered twice) makes every lookup throw its ValueError, as RegisterAttentionKind does. A name
// that is also an attention kind's is refused at the first lookup.
struct RegisterModelKind {
  explicit RegisterModelKind(std::vector<ModelKind> kinds);
};

}  // namespace attnlab::rec
