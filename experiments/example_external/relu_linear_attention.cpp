// A user's own attention kind, from outside attnlab's tree: causal and bidirectional ReLU linear
// attention (Katharopoulos et al., "Transformers are RNNs", ICML 2020, with phi = relu + eps in
// place of their elu + 1):
//
//   phi(x) = relu(x) + eps                         (each of the d features of a query or key)
//   causal:         out_i = phi(q_i)^T S_i / phi(q_i)^T z_i,
//                   S_i = sum_{j<=i} phi(k_j) v_j^T,  z_i = sum_{j<=i} phi(k_j)
//   bidirectional:  the same with the sums over every j
//
// The sums and the division are attnlab's public linear-attention ops nn::favor_causal /
// nn::favor_bidirectional and nn::favor_normalize (layers/attention/favor/favor_attention.hpp),
// which take any non-negative features and bring their own fused forward and backward: the kind
// only supplies its feature map. Registered below, it is an attention kind of every command of the
// executable it is linked into (attnlab_add_cli in CMakeLists.txt): `my_attnlab train --attention
// relu-linear`, `my_attnlab gradcheck --filter kind/relu-linear`, `my_attnlab bench attention
// --kind relu-linear`, `my_attnlab sweep --grid "attention=relu-linear;seed=1,2" ...`.
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/favor/favor_attention.hpp"

namespace my_kinds {

using namespace attnlab;

struct ReluLinearOptions {
  double epsilon = 1e-3;  // keeps every feature positive, so no normaliser is 0
};

class ReluLinearKernel : public nn::AttentionKernel {
 public:
  explicit ReluLinearKernel(const ReluLinearOptions& options)
      : nn::AttentionKernel("ReluLinearKernel"), options_(options) {
    ATTNLAB_CHECK(options.epsilon > 0,
                  ValueError,
                  "relu-linear: epsilon must be > 0 (a row of zero features has no normaliser), "
                  "got ",
                  options.epsilon);
  }

  ag::Var attend(const ag::Var& q,
                 const ag::Var& k,
                 const ag::Var& v,
                 const nn::AttentionMask& mask) override {
    ATTNLAB_CHECK(mask.decay == 0,
                  ValueError,
                  "relu-linear: distance decay is not supported (got decay ",
                  mask.decay,
                  ")");
    const ag::Var qf = ag::relu(q) + options_.epsilon;
    ag::Var kf = ag::relu(k) + options_.epsilon;
    if (mask.key_padding.defined()) {
      // A padded key gets an all-zero feature row: it leaves numerator and normaliser alike.
      ATTNLAB_CHECK(mask.key_padding.shape() == Shape({k.size(0), k.size(2)}),
                    ShapeError,
                    "relu-linear: key_padding must be [batch, keys] = [",
                    k.size(0),
                    ", ",
                    k.size(2),
                    "], got ",
                    mask.key_padding.shape());
      const Tensor keep = mask.key_padding.to(k.dtype()).reshape({k.size(0), 1, k.size(2), 1});
      kf = kf * ag::constant(keep);
    }
    const nn::FavorSums sums =
        mask.causal ? nn::favor_causal(qf, kf, v) : nn::favor_bidirectional(qf, kf, v);
    return nn::favor_normalize(sums.numerator, sums.normalizer);
  }

  std::string describe() const override {
    return "relu-linear(eps=" + std::to_string(options_.epsilon) + ")";
  }

 private:
  ReluLinearOptions options_;
};

// Float64 checks of the kind's gradients against finite differences (`my_attnlab gradcheck`):
// causal and bidirectional, each also with padded keys inside the sequence. Named as attnlab's
// own kinds' cases, "kind/<name>/<mask>", so `gradcheck --filter kind/relu-linear` selects them.
std::vector<nn::GradcheckCase> gradcheck_cases() {
  std::vector<nn::GradcheckCase> cases;
  const Shape s{2, 2, 5, 3};  // batch, heads, length, head width
  const std::vector<Tensor> inputs{randn(s, RngKey{11, 1}, kFloat64),
                                   randn(s, RngKey{11, 2}, kFloat64),
                                   randn(s, RngKey{11, 3}, kFloat64)};
  const Tensor padding =
      from_vector(std::vector<double>{1, 1, 1, 1, 0, 1, 1, 0, 1, 1}, {2, 5}, kFloat64);
  for (const bool causal : {true, false}) {
    for (const bool padded : {false, true}) {
      nn::AttentionMask mask;
      mask.causal = causal;
      if (padded)
        mask.key_padding = padding;
      auto kernel = std::make_shared<ReluLinearKernel>(ReluLinearOptions{});
      const std::string name = std::string("kind/relu-linear/") +
                               (causal ? "causal" : "bidirectional") + (padded ? "_padded" : "");
      cases.push_back({name,
                       [kernel, mask](const std::vector<ag::Var>& x) {
                         return kernel->attend(x[0], x[1], x[2], mask);
                       },
                       inputs,
                       nullptr});
    }
  }
  return cases;
}

// Useful FLOPs per (batch, head) for `bench attention`'s GFLOP/s: the forward's two products
// phi(k)^T v and phi(q) S (2 L d dv each, prefix-summed or not), the backward twice that; the
// feature maps and the normaliser are O(L d) and not counted.
nn::AttentionCost relu_linear_cost(const nn::AttentionShape& s, const OptionValues&) {
  const double products = 2.0 * 2.0 * static_cast<double>(s.lq) * s.d * s.dv * s.batch_heads;
  const double e = static_cast<double>(s.element_bytes) * s.batch_heads;
  nn::AttentionCost c;
  c.forward_flops = products;
  c.backward_flops = 2 * products;
  c.forward_bytes = e * (s.lq * s.d + s.lk * (s.d + s.dv) + s.lq * s.dv);
  c.backward_bytes = 2 * c.forward_bytes;
  return c;
}

// The kind's entry in the registry: its name (the --attention / --kind value), family, summary,
// paper, what it supports, its options (flags of train and bench attention), its factory, its
// gradient checks and its cost model.
nn::AttentionKind relu_linear_kind() {
  nn::KindCapabilities supports;
  supports.causal = supports.bidirectional = supports.key_padding = true;
  nn::AttentionKind kind = nn::AttentionKind::with_options<ReluLinearOptions>(
      "relu-linear",
      "my-linear",
      "ReLU linear attention, phi(x) = relu(x) + eps (from example_external)",
      "Katharopoulos et al., ICML 2020",
      supports,
      OptionBinder<ReluLinearOptions>().bind(
          "epsilon",
          &ReluLinearOptions::epsilon,
          "relu-linear: added to every feature (> 0: no normaliser is 0)",
          option_checks::Positive{}),
      [](const ReluLinearOptions& o, const nn::KernelContext&) {
        return std::make_shared<ReluLinearKernel>(o);
      });
  kind.gradcheck_cases = gradcheck_cases;
  kind.cost = relu_linear_cost;
  return kind;
}

const nn::RegisterAttentionKind registered{{relu_linear_kind()}};

}  // namespace my_kinds
