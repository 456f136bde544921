// Gradient checks of the layers (parameters included) and the losses.
#include "core/core.hpp"
#include "experiments/commands/gradcheck/gradcheck_cases.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/attention/multihead_attention.hpp"
#include "layers/attention/softmax/softmax_kernel.hpp"
#include "layers/attention/transformer_block.hpp"
#include "layers/nn/basic.hpp"
#include "layers/nn/losses.hpp"
#include "layers/recommender/sasrec.hpp"

namespace attnlab::experiments {
namespace {

Tensor u(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 22}, kFloat64, lo, hi);
}

}  // namespace

void add_layer_cases(std::vector<GradcheckCase>& out) {
  using ag::Var;
  using V = const std::vector<Var>&;
  Generator init(7);
  auto lin = std::make_shared<nn::Linear>(4, 3, init);
  out.push_back({"layer/linear", [lin](V v) { return lin->forward(v[0]); }, {u({2, 4}, 1)}, lin});
  auto emb = std::make_shared<nn::Embedding>(6, 3, init, nn::EmbeddingOptions{0});
  const Tensor ids = from_vector(std::vector<int64_t>{1, 5, 5, 2}, {2, 2});
  out.push_back({"layer/embedding", [emb, ids](V) { return emb->forward(ids); }, {}, emb});
  auto ln = std::make_shared<nn::LayerNorm>(5);
  out.push_back(
      {"layer/layer_norm", [ln](V v) { return ln->forward(v[0]); }, {u({3, 5}, 2, -2, 2)}, ln});
  auto ffn = std::make_shared<nn::FeedForward>(4, 6, init, 0.0, nullptr, nn::Activation::GELU);
  out.push_back(
      {"layer/feed_forward_gelu", [ffn](V v) { return ffn->forward(v[0]); }, {u({2, 4}, 3)}, ffn});
  for (auto impl : {nn::SoftmaxImpl::Reference, nn::SoftmaxImpl::Fused}) {
    const std::string kind = impl == nn::SoftmaxImpl::Fused ? "fused" : "reference";
    nn::MultiHeadAttentionOptions mo;
    mo.heads = 2;
    auto mha = std::make_shared<nn::MultiHeadAttention>(
        4, std::make_shared<nn::SoftmaxKernel>(impl), init, mo);
    nn::AttentionMask m;
    m.causal = true;
    out.push_back({"layer/multihead_attention_" + kind,
                   [mha, m](V v) { return mha->forward(v[0], m); },
                   {u({2, 3, 4}, 4)},
                   mha});
  }
  for (const char* norm : {"pre", "post", "sasrec"}) {
    nn::TransformerBlockOptions bo;
    bo.dim = 4;
    bo.ffn_hidden = 5;
    bo.dropout = 0.0;
    bo.norm = nn::parse_norm_placement(norm);
    nn::MultiHeadAttentionOptions mo;
    mo.heads = 2;
    auto mha = std::make_shared<nn::MultiHeadAttention>(
        4, std::make_shared<nn::SoftmaxKernel>(), init, mo);
    auto block = std::make_shared<nn::TransformerBlock>(mha, bo, init, nullptr);
    nn::AttentionMask m;
    m.causal = true;
    m.key_padding = from_vector(std::vector<double>{1, 1, 1, 1, 1, 0}, {2, 3});
    out.push_back({std::string("layer/transformer_block_") + norm,
                   [block, m](V v) { return block->forward(v[0], m); },
                   {u({2, 3, 4}, 5)},
                   block});
  }
  rec::SASRecConfig sc;
  sc.num_items = 9;
  sc.max_length = 5;
  sc.dim = 4;
  sc.blocks = 1;
  sc.dropout = 0.0;
  auto sasrec = std::make_shared<rec::SASRec>(sc);
  const Tensor seq = from_vector(std::vector<int64_t>{0, 3, 4, 1, 9, 2, 2, 5, 6, 7}, {2, 5});
  out.push_back({"model/sasrec", [sasrec, seq](V) { return sasrec->hidden(seq); }, {}, sasrec});

  // Losses.
  const Tensor t = from_vector(std::vector<double>{1, 0, 1, 1, 0, 0}, {2, 3}, kFloat64);
  const Tensor w = from_vector(std::vector<double>{1, 1, 0, 1, 0.5, 1}, {2, 3}, kFloat64);
  out.push_back({"loss/bce_with_logits",
                 [t, w](V v) { return nn::bce_with_logits(v[0], t, w); },
                 {u({2, 3}, 6, -3, 3)},
                 nullptr});
  const Tensor cls = from_vector(std::vector<int64_t>{2, -100, 0}, {3});
  out.push_back({"loss/softmax_cross_entropy",
                 [cls](V v) { return nn::softmax_cross_entropy(v[0], cls); },
                 {u({3, 4}, 7, -2, 2)},
                 nullptr});
  const Tensor posi = from_vector(std::vector<int64_t>{1, 3}, {2});
  const Tensor negi = from_vector(std::vector<int64_t>{2, 4, 0, 1}, {2, 2});
  out.push_back({"loss/sampled_softmax",
                 [posi, negi](V v) { return nn::sampled_softmax_loss(v[0], v[1], posi, negi); },
                 {u({2, 3}, 8), u({5, 3}, 9)},
                 nullptr});
  const Tensor mask = from_vector(std::vector<double>{1, 0, 1}, {3}, kFloat64);
  out.push_back({"loss/masked_mean",
                 [mask](V v) { return nn::masked_mean(v[0], mask); },
                 {u({2, 3}, 10)},
                 nullptr});
}

// FAVOR+ (layers/attention/favor/favor_attention.hpp): every feature map alone (fused op and
// composed reference), and the whole attention (fused and reference, causal and bidirectional, with
// key padding) with respect to q, k, v and the projection W. epsilon = 0 for the exponential maps,
// so the detached stabilisers cancel and the finite difference sees the same function as the
// backward (favor_feature_maps.hpp explains the epsilon > 0 case).
void add_favor_cases(std::vector<GradcheckCase>& out) {
  using ag::Var;
  using V = const std::vector<Var>&;
  struct Map {
    const char* name;
    nn::FeatureMapSpec spec;
  };
  const std::vector<Map> maps = {
      {"positive", {nn::FeatureMap::Positive, nn::GeneralizedFn::ReLU, 0.0}},
      {"hyperbolic", {nn::FeatureMap::Hyperbolic, nn::GeneralizedFn::ReLU, 0.0}},
      {"trig", {nn::FeatureMap::Trigonometric, nn::GeneralizedFn::ReLU, 0.0}},
      {"relu", {nn::FeatureMap::Generalized, nn::GeneralizedFn::ReLU, 1e-3}},
      {"softplus", {nn::FeatureMap::Generalized, nn::GeneralizedFn::Softplus, 0.0}},
      {"elu+1", {nn::FeatureMap::EluPlusOne, nn::GeneralizedFn::ReLU, 0.0}},
  };
  const Tensor pad = from_vector(std::vector<double>{1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0}, {2, 6});
  for (const Map& map : maps) {
    const nn::FeatureMapSpec spec = map.spec;
    const bool projected = nn::uses_projection(spec.map);
    // The feature map alone, with respect to x (and W).
    for (int fused = 0; fused < 2; ++fused) {
      const std::string name =
          std::string("favor/features_") + map.name + (fused ? "_fused" : "_reference");
      std::vector<Tensor> inputs = {u({1, 2, 4, 3}, 31)};
      if (projected)
        inputs.push_back(u({5, 3}, 32));
      out.push_back({name,
                     [spec, fused, projected](V v) {
                       const Var w = projected ? v[1] : Var();
                       const auto shift =
                           nn::FeatureShift::None;  // the exact function (no detached shift)
                       return fused
                                  ? nn::favor_feature_map(v[0], w, spec, shift).features
                                  : nn::favor_feature_map_reference(v[0], w, spec, shift).features;
                     },
                     inputs,
                     nullptr});
    }
    // The whole attention.
    for (auto impl : {nn::FavorImpl::Reference, nn::FavorImpl::Fused}) {
      for (int causal = 0; causal < 2; ++causal) {
        nn::AttentionMask m;
        m.causal = causal;
        m.key_padding = pad;
        nn::FavorAttentionOptions o;
        o.features = spec;
        o.impl = impl;
        const std::string name = std::string("favor/attention_") + map.name +
                                 (impl == nn::FavorImpl::Fused ? "_fused" : "_reference") +
                                 (causal ? "_causal" : "_bidirectional") + "_padded";
        std::vector<Tensor> inputs = {
            u({2, 1, 6, 3}, 33), u({2, 1, 6, 3}, 34), u({2, 1, 6, 2}, 35)};
        if (projected)
          inputs.push_back(u({4, 3}, 36));
        out.push_back({name,
                       [m, o, projected](V v) {
                         return nn::favor_attention(
                             v[0], v[1], v[2], projected ? v[3] : Var(), m, o);
                       },
                       inputs,
                       nullptr});
      }
    }
  }
}

void add_kind_cases(std::vector<GradcheckCase>& out) {
  for (const auto& kind : nn::attention_kinds())
    for (auto& c : nn::gradcheck_cases(kind)) out.push_back(std::move(c));
}

void add_attention_cases(std::vector<GradcheckCase>& out) {
  using ag::Var;
  using V = const std::vector<Var>&;
  const Tensor pad = from_vector(std::vector<double>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {2, 5});
  for (auto impl : {nn::SoftmaxImpl::Reference, nn::SoftmaxImpl::Fused}) {
    for (int causal = 0; causal < 2; ++causal) {
      for (int masked = 0; masked < 2; ++masked) {
        nn::AttentionMask m;
        m.causal = causal;
        if (masked) {
          m.key_padding = pad;
          m.decay = 0.3;
        }
        const std::string name = std::string("attention/softmax_") +
                                 (impl == nn::SoftmaxImpl::Fused ? "fused" : "reference") +
                                 (causal ? "_causal" : "_bidirectional") +
                                 (masked ? "_padded_decay" : "");
        out.push_back({name,
                       [impl, m](V v) { return nn::softmax_attention(v[0], v[1], v[2], m, impl); },
                       {u({2, 1, 5, 3}, 11), u({2, 1, 5, 3}, 12), u({2, 1, 5, 2}, 13)},
                       nullptr});
      }
    }
  }
  add_favor_cases(out);
}

}  // namespace attnlab::experiments
