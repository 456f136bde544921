#include "layers/attention_factory.hpp"

namespace attnlab::nn {

std::shared_ptr<AttentionKernel> make_attention_kernel(const std::string& name,
                                                       const KernelConfig& config) {
  const AttentionKind& kind = attention_kind(name);
  KernelContext context;
  context.head_dim = config.head_dim;
  context.seed = config.seed;
  context.dropout = config.dropout;
  OptionValues values = kind.options.defaults();
  auto set = [&](const char* option, const std::string& text) {
    if (kind.options.find(option) != nullptr)
      kind.options.set(values, option, text, name);
  };
  set("features", std::to_string(config.features));
  if (name != "favor-iid")
    set("orthogonal", config.orthogonal ? "true" : "false");
  set("feature-norm", feature_norm_name(config.feature_norm));
  if (config.epsilon)
    set("epsilon", OptionCodec<double>::format(*config.epsilon));
  set("key-stabilizer", key_stabilizer_name(config.key_stabilizer));
  set("query-stabilizer", config.query_stabilizer ? "true" : "false");
  set("redraw", redraw_policy_name(config.redraw.policy));
  set("redraw-interval", std::to_string(config.redraw.interval));
  set("impl", enum_names(config.favor_impl).name(config.favor_impl));
  return kind.make(values, context);
}

}  // namespace attnlab::nn
