// `attnlab approx --study kinds`: any registered attention kind (a built-in one, or a user's own
// kind registered in their executable, see docs/extending.md) against exact softmax attention on
// the same inputs, in value and in gradient. The kind is built through the registry with its
// default options, so a new kind needs nothing here.
//
// For every kind, input scale and sample s: q, k ~ N(0, scale^2 I), v ~ N(0, I), a random
// cotangent G, all [1, heads, L, d] from (seed, s); the kind's kernel gets the seed seed + s (its
// random features, if any), in eval mode (no feature redraw, no dropout). The exact side is the
// registry's softmax-fused. Metrics, averaged over the samples: out_mse = mean (Y - Y*)^2,
// rel_err = |Y - Y*|_F / |Y*|_F, and the cosine and relative error of dL/dq, dL/dk, dL/dv for
// L = sum(Y . G) against the exact gradients.
#include <iostream>

#include "autograd/autograd.hpp"
#include "experiments/commands/approx/approx.hpp"
#include "experiments/support/progress.hpp"
#include "experiments/support/table.hpp"
#include "layers/attention/attention_registry.hpp"

namespace attnlab::approx {

KernelGradients attend_with_gradients(nn::AttentionKernel& kernel,
                                      const Tensor& q,
                                      const Tensor& k,
                                      const Tensor& v,
                                      const Tensor& g,
                                      const nn::AttentionMask& mask) {
  ag::Var vq(q, true), vk(k, true), vv(v, true);
  ag::Var out = kernel.attend(vq, vk, vv, mask);
  ag::sum(ag::mul(out, ag::Var(g))).backward();
  return {out.value(), gradient_or_zeros(vq), gradient_or_zeros(vk), gradient_or_zeros(vv)};
}

namespace {

std::shared_ptr<nn::AttentionKernel> build(const std::string& kind,
                                           const KindsStudyOptions& o,
                                           uint64_t seed) {
  nn::KernelContext context;
  context.head_dim = o.head_dim;
  context.seed = seed;
  auto kernel = nn::make_attention_kernel(kind, context);
  kernel->eval();
  kernel->to(o.dtype);
  return kernel;
}

struct Sums {
  double mse = 0, rel = 0, cq = 0, rq = 0, ck = 0, rk = 0, cv = 0, rv = 0;
};

void add_sample(Sums& s, const KernelGradients& a, const KernelGradients& exact) {
  const Tensor diff = a.out - exact.out;
  s.mse += sum(diff * diff).item() / static_cast<double>(diff.numel());
  s.rel += frobenius(diff) / frobenius(exact.out);
  const auto [cq, rq] = agreement(a.dq, exact.dq);
  const auto [ck, rk] = agreement(a.dk, exact.dk);
  const auto [cv, rv] = agreement(a.dv, exact.dv);
  s.cq += cq, s.rq += rq, s.ck += ck, s.rk += rk, s.cv += cv, s.rv += rv;
}

}  // namespace

int run_kinds_study(const cli::Parser& parser, const KindsStudyOptions& o) {
  for (const std::string& kind : o.kinds) {
    const nn::AttentionKind* k = nn::find_attention_kind(kind);
    if (k == nullptr)
      throw cli::UsageError("--kinds: attention kind '" + kind +
                            "' is unknown (known: " + nn::attention_kind_names() + ")");
    if (o.causal ? !k->capabilities.causal : !k->capabilities.bidirectional)
      throw cli::UsageError("--kinds: " + kind + " has no " +
                            (o.causal ? "causal" : "bidirectional") + " form");
  }
  nn::AttentionMask mask;
  mask.causal = o.causal;
  cli::Table table({"kind",
                    "scale",
                    "L",
                    "d",
                    "causal",
                    "samples",
                    "out_mse",
                    "rel_err",
                    "cos_dq",
                    "rel_dq",
                    "cos_dk",
                    "rel_dk",
                    "cos_dv",
                    "rel_dv"});
  cli::Progress progress(static_cast<int64_t>(o.kinds.size() * o.scales.size()) * o.samples,
                         "approx");
  const Shape shape{1, o.heads, o.length, o.head_dim};
  for (const std::string& kind : o.kinds) {
    for (double scale : o.scales) {
      Sums s;
      for (int64_t i = 0; i < o.samples; ++i) {
        const uint64_t stream = 4 * static_cast<uint64_t>(i);
        const Tensor q = randn(shape, RngKey{o.seed, stream}, o.dtype) * scale;
        const Tensor k = randn(shape, RngKey{o.seed, stream + 1}, o.dtype) * scale;
        const Tensor v = randn(shape, RngKey{o.seed, stream + 2}, o.dtype);
        const Tensor g = randn(shape, RngKey{o.seed, stream + 3}, o.dtype);
        const uint64_t seed = o.seed + static_cast<uint64_t>(i);
        const KernelGradients exact =
            attend_with_gradients(*build("softmax-fused", o, seed), q, k, v, g, mask);
        add_sample(s, attend_with_gradients(*build(kind, o, seed), q, k, v, g, mask), exact);
        progress.step(1, kind);
      }
      const double n = static_cast<double>(o.samples);
      table.add_row({kind,
                     cli::Cell(scale, 2),
                     o.length,
                     o.head_dim,
                     o.causal ? "yes" : "no",
                     o.samples,
                     cli::Cell::sci(s.mse / n),
                     cli::Cell::sci(s.rel / n),
                     cli::Cell(s.cq / n, 4),
                     cli::Cell::sci(s.rq / n),
                     cli::Cell(s.ck / n, 4),
                     cli::Cell::sci(s.rk / n),
                     cli::Cell(s.cv / n, 4),
                     cli::Cell::sci(s.rv / n)});
    }
  }
  std::cout << "attention kinds against exact softmax attention ("
            << (o.causal ? "causal" : "bidirectional") << ", " << dtype_name(o.dtype) << ", seed "
            << o.seed << "; gradients of sum(out . G))\n";
  table.print(std::cout);
  const std::string out = parser.common().out;
  if (!out.empty()) {
    table.write(out, "approx_kinds");
    table.write(out, "result");  // what `attnlab sweep --command approx` collects
    std::cout << "wrote " << out << "/approx_kinds.csv, .jsonl\n";
  }
  return 0;
}

}  // namespace attnlab::approx
