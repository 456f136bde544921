// The gradient checks every attention kind gets from the registry (attention_registry.hpp).
#include "core/core.hpp"
#include "layers/attention/attention_registry.hpp"

namespace attnlab::nn {
namespace {

Tensor kind_check_input(const Shape& s, uint64_t seed) {
  return rand(s, RngKey{seed, 23}, kFloat64, -1.0, 1.0);
}

}  // namespace

std::vector<GradcheckCase> gradcheck_cases(const AttentionKind& kind) {
  return kind.gradcheck_cases ? kind.gradcheck_cases() : kernel_gradcheck_cases(kind);
}

std::vector<GradcheckCase> kernel_gradcheck_cases(const AttentionKind& kind) {
  OptionValues options = kind.options.defaults();
  if (kind.options.find("features") != nullptr)
    kind.options.set(options, "features", "4", kind.name);
  KernelContext context;
  context.head_dim = 3;
  context.seed = 5;
  const Tensor pad = from_vector(std::vector<double>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {2, 5});
  const KindCapabilities& caps = kind.capabilities;
  std::vector<GradcheckCase> out;
  for (int causal = 1; causal >= 0; --causal) {
    if (!(causal ? caps.causal : caps.bidirectional))
      continue;
    for (int extra = 0; extra < 3; ++extra) {  // plain, padded, padded with decay
      if ((extra >= 1 && !caps.key_padding) || (extra == 2 && !caps.distance_decay))
        continue;
      AttentionMask mask;
      mask.causal = causal == 1;
      if (extra >= 1)
        mask.key_padding = pad;
      if (extra == 2)
        mask.decay = 0.3;
      const std::string name = "kind/" + kind.name + "/" + (causal ? "causal" : "bidirectional") +
                               (extra == 0   ? ""
                                : extra == 1 ? "_padded"
                                             : "_padded_decay");
      std::shared_ptr<AttentionKernel> kernel = kind.make(options, context);
      GradcheckCase c;
      c.name = name;
      c.fn = [kernel, mask](const std::vector<ag::Var>& v) {
        return kernel->attend(v[0], v[1], v[2], mask);
      };
      c.inputs = {kind_check_input({2, 2, 5, 3}, 1),
                  kind_check_input({2, 2, 5, 3}, 2),
                  kind_check_input({2, 2, 5, 2}, 3)};
      c.module = kernel;  // converted to float64 and put in eval mode by the checker
      out.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace attnlab::nn
