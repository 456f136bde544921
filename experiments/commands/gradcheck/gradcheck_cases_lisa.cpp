// Gradient checks of LISA (layers/attention/lisa/product_quantizer.hpp,
// layers/attention/lisa/lisa_attention.hpp): every codeword-selection mode, the decayed histograms,
// and the histogram attention (fused op and composed reference; hard and expected-row queries;
// causal and bidirectional histograms) with respect to its tables, values and histograms.
#include "core/core.hpp"
#include "experiments/commands/gradcheck/gradcheck_cases.hpp"
#include "layers/attention/lisa/lisa_attention.hpp"
#include "layers/attention/lisa/product_quantizer.hpp"

namespace attnlab::experiments {
namespace {

Tensor uniform(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 0}, kFloat64, lo, hi);
}

}  // namespace

void add_lisa_cases(std::vector<GradcheckCase>& out) {
  using ag::Var;
  using V = const std::vector<Var>&;
  const double tau = 0.7;
  // Selection: logits [N, L, B, W]. Gumbel modes with a fixed noise tensor are deterministic
  // functions of the logits, so they gradcheck like the soft mode.
  const Tensor logits = uniform({1, 3, 2, 4}, 41, -2, 2);
  const Tensor noise = gumbel({1, 3, 2, 4}, RngKey{42, 0}, kFloat64);
  out.push_back(
      {"lisa/select_soft",
       [tau](V v) { return nn::select_codewords(v[0], nn::Selection::Soft, tau).selection; },
       {logits},
       nullptr});
  out.push_back(
      {"lisa/select_gumbel-soft_fixed_noise",
       [tau, noise](V v) {
         return nn::select_codewords(v[0], nn::Selection::GumbelSoft, tau, noise).selection;
       },
       {logits},
       nullptr});
  // Straight-through modes: forward = the hard one-hot, gradient = the soft selection's.
  for (const auto& [name, mode] :
       {std::pair<const char*, nn::Selection>{"lisa/select_st", nn::Selection::StraightThrough},
        {"lisa/select_gumbel-st_fixed_noise", nn::Selection::GumbelStraightThrough}}) {
    const bool gumbel = mode == nn::Selection::GumbelStraightThrough;
    const Tensor g = gumbel ? noise : Tensor();
    GradcheckCase c{
        name,
        [mode, tau, g](V v) { return nn::select_codewords(v[0], mode, tau, g).selection; },
        {logits},
        nullptr};
    c.hard = [tau, g](V v) {
      return nn::select_codewords(v[0], nn::Selection::Hard, tau, g).selection;
    };
    c.surrogate = [tau, g, gumbel](V v) {
      return nn::select_codewords(
                 v[0], gumbel ? nn::Selection::GumbelSoft : nn::Selection::Soft, tau, g)
          .selection;
    };
    out.push_back(c);
  }

  // Histograms: the decayed prefix scan (causal) and the two-sided sum (bidirectional), with a
  // padded position excluded.
  const Tensor keep = from_vector(std::vector<double>{0, 1, 1, 1, 1}, {1, 5}, kFloat64);
  for (int causal = 0; causal < 2; ++causal) {
    out.push_back({std::string("lisa/histograms_") + (causal ? "causal" : "bidirectional"),
                   [keep, causal](V v) { return nn::lisa_histograms(v[0], keep, 0.3, causal); },
                   {uniform({1, 5, 2, 3}, 43, 0, 1)},
                   nullptr});
  }

  // The histogram attention w.r.t. tables [B, W, W], values [B, W, D], histograms [N, L, B, W]
  // (and the query probabilities for the expected-row query). Histograms are positive here; the
  // fused op's gradient where H = 0 is covered by the unit tests.
  const int64_t N = 1, L = 4, B = 2, W = 3, D = 2;
  Tensor query = Tensor::empty({N, L, B}, kInt64);
  for (int64_t i = 0; i < N * L * B; ++i) query.data<int64_t>()[i] = (i * 7 + 1) % W;
  for (auto impl : {nn::LisaImpl::Reference, nn::LisaImpl::Fused}) {
    for (int expected = 0; expected < 2; ++expected) {
      const std::string name = std::string("lisa/attention_") +
                               (impl == nn::LisaImpl::Fused ? "fused" : "reference") +
                               (expected ? "_expected_query" : "_hard_query");
      std::vector<Tensor> inputs = {
          uniform({B, W, W}, 44, -2, 2), uniform({B, W, D}, 45), uniform({N, L, B, W}, 46, 0.1, 2)};
      if (expected)
        inputs.push_back(softmax(uniform({N, L, B, W}, 47, -1, 1), -1));
      out.push_back(
          {name,
           [impl, expected, query](V v) {
             return nn::lisa_histogram_attention(
                 v[0], v[1], v[2], expected ? Tensor() : query, expected ? v[3] : Var(), 0.0, impl);
           },
           inputs,
           nullptr});
    }
  }
}

}  // namespace attnlab::experiments
