// The FAVOR+ kinds (layers/attention/favor/favor_attention.hpp): one options struct, FavorOptions,
// bound to flags once; each kind is a feature map with its own defaults.
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/favor/favor_attention.hpp"

namespace attnlab::nn {
namespace {

// Useful FLOPs (a matmul's backward costs twice its forward): the projections q W^T and k W^T
// (2 L m d each), then the linear attention proper with F features: phi(k)^T v and phi(q) S
// (2 L F dv each, prefix-summed or not); normalisers and feature maps O(L F) are not counted.
// F = 2m for the two-sided maps, d for elu + 1 (no projection). A causal mask changes the order
// of the sums, not their count. Bytes: q, k, v read, o written; the backward reads them and dO,
// writes dq, dk, dv (the features are recomputed or kept: not counted).
AttentionCost favor_cost(const AttentionShape& s, const OptionValues& values) {
  const FavorOptions& o = values.as<FavorOptions>();
  const double f = static_cast<double>(feature_count(o.features, o.projections, s.d));
  const double m = uses_projection(o.features.map) ? static_cast<double>(o.projections) : 0.0;
  const double bh = static_cast<double>(s.batch_heads), e = static_cast<double>(s.element_bytes);
  const double forward = bh * (2.0 * m * s.d * (s.lq + s.lk) + 2.0 * f * s.dv * (s.lq + s.lk));
  const double q = s.lq * s.d, k = s.lk * s.d, v = s.lk * s.dv, out = s.lq * s.dv;
  AttentionCost c;
  c.forward_flops = forward;
  c.backward_flops = 2.0 * forward;
  c.forward_bytes = bh * e * (q + k + v + out);
  c.backward_bytes = bh * e * (q + k + v + 2 * out + q + k + v);
  return c;
}

std::string favor_at_least_one(int64_t v) {
  return v >= 1 ? "" : "must be >= 1";
}

// The options every FAVOR+ kind has.
OptionBinder<FavorOptions>& favor_bind_common(OptionBinder<FavorOptions>& b) {
  b.bind("key-stabilizer", &FavorOptions::key_stabilizer, "FAVOR+: the keys' detached shift")
      .bind("query-stabilizer", &FavorOptions::query_stabilizer, "FAVOR+: each query row's max")
      .bind("impl", &FavorOptions::impl, "fused ops or the composed reference")
      .bind_text(
          "epsilon",
          "FAVOR+: added to every feature (>= 0)",
          "FLOAT",
          [](FavorOptions& o, const std::string& text) {
            const double eps = OptionCodec<double>::parse(text, "--epsilon");
            if (!(eps >= 0))
              throw ValueError("--epsilon: must be >= 0, got '" + text + "'");
            o.features.epsilon = eps;
          },
          [](const FavorOptions& o) { return OptionCodec<double>::format(o.features.epsilon); });
  return b;
}

// The options of the kinds with random projections W [m, d].
OptionBinder<FavorOptions>& favor_bind_projection(OptionBinder<FavorOptions>& b) {
  b.bind("features", &FavorOptions::projections, "FAVOR+: random projections m", favor_at_least_one)
      .bind("orthogonal", &FavorOptions::orthogonal, "FAVOR+: block-orthogonal projections")
      .bind("feature-norm", &FavorOptions::norm, "FAVOR+: row norms of W")
      .bind_text(
          "redraw",
          "FAVOR+: when to redraw the features (" + enum_names(RedrawPolicy{}).known() + ")",
          enum_names(RedrawPolicy{}).known("|"),
          [](FavorOptions& o, const std::string& text) {
            o.redraw.policy = enum_names(RedrawPolicy{}).parse(text, "--redraw");
          },
          [](const FavorOptions& o) { return redraw_policy_name(o.redraw.policy); })
      .bind_text(
          "redraw-interval",
          "FAVOR+: training calls between redraws for --redraw every-n",
          "INT",
          [](FavorOptions& o, const std::string& text) {
            const int64_t n = OptionCodec<int64_t>::parse(text, "--redraw-interval");
            if (n < 1)
              throw ValueError("--redraw-interval: must be >= 1, got '" + text + "'");
            o.redraw.interval = n;
          },
          [](const FavorOptions& o) { return std::to_string(o.redraw.interval); });
  return b;
}

AttentionKind favor_kind(const std::string& name,
                         const std::string& summary,
                         const std::string& reference,
                         FavorOptions defaults) {
  const bool projected = uses_projection(defaults.features.map);
  OptionBinder<FavorOptions> binder(defaults);
  if (projected)
    favor_bind_projection(binder);
  favor_bind_common(binder);
  KindCapabilities caps;
  caps.causal = caps.bidirectional = caps.key_padding = true;
  caps.random_features = projected;
  AttentionKind kind = AttentionKind::with_options<FavorOptions>(
      name,
      "favor",
      summary,
      reference,
      caps,
      binder,
      [](const FavorOptions& options, const KernelContext& c) {
        FavorOptions o = options;  // the context's part: head width and seed
        o.head_dim = c.head_dim;
        o.seed = c.seed;
        return std::make_shared<FavorKernel>(o);
      });
  kind.cost = favor_cost;
  return kind;
}

FavorOptions favor_with_map(FeatureMap map,
                            GeneralizedFn fn = GeneralizedFn::ReLU,
                            double epsilon = 0.0,
                            bool orthogonal = true) {
  FavorOptions o;
  o.features.map = map;
  o.features.fn = fn;
  o.features.epsilon = epsilon;
  o.orthogonal = orthogonal;
  o.redraw = RedrawOptions{RedrawPolicy::EveryNCalls, 1000};
  return o;
}

const char* const kPerformer = "Choromanski et al. 2021 (Performer, ICLR)";

const RegisterAttentionKind favor_kinds{{
    favor_kind("favor",
               "FAVOR+ positive random features, orthogonal (Performer)",
               kPerformer,
               favor_with_map(FeatureMap::Positive)),
    favor_kind("favor-iid",
               "FAVOR+ positive random features, iid Gaussian projections",
               kPerformer,
               favor_with_map(FeatureMap::Positive, GeneralizedFn::ReLU, 0.0, false)),
    favor_kind("favor-hyp",
               "FAVOR+ hyperbolic positive features [exp(u), exp(-u)] (2m features)",
               kPerformer,
               favor_with_map(FeatureMap::Hyperbolic)),
    favor_kind("favor-trig",
               "FAVOR+ trigonometric features [sin, cos] (2m features; signed)",
               kPerformer,
               favor_with_map(FeatureMap::Trigonometric)),
    // 1e-3: the paper's kernel epsilon (relu rows can be all 0).
    favor_kind("favor-relu",
               "FAVOR+ generalized features relu(W x) (Performer-ReLU)",
               kPerformer,
               favor_with_map(FeatureMap::Generalized, GeneralizedFn::ReLU, 1e-3)),
    favor_kind("linear-elu",
               "linear attention with elu(x) + 1 features (Katharopoulos et al.)",
               "Katharopoulos et al. 2020 (Transformers are RNNs, ICML)",
               favor_with_map(FeatureMap::EluPlusOne)),
}};

}  // namespace
}  // namespace attnlab::nn
