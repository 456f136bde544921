// Gradient checks of LISA's modules with their parameters: the product quantizer in every
// selection mode, the LisaAttention layer, and the LISA-Base / LISA-Soft / LISA-Mini models end to
// end (item ids -> scalar loss). Sizes are tiny so that every case runs in slow mode (full
// Jacobians). The CLI checks modules in eval mode: the models then use hard codes (Base, Mini;
// their code logits get a zero gradient, as their finite differences do) or probabilities (Soft).
#include "core/core.hpp"
#include "experiments/commands/gradcheck/gradcheck_cases.hpp"
#include "layers/recommender/lisa_model.hpp"
#include "layers/nn/losses.hpp"

namespace attnlab::experiments {
namespace {

using ag::Var;
using V = const std::vector<Var>&;

Tensor uniform(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 5}, kFloat64, lo, hi);
}

std::shared_ptr<nn::ProductQuantizer> quantizer(nn::Selection mode, bool residual) {
  nn::ProductQuantizerOptions o;
  o.dim = 3;
  o.codebooks = 2;
  o.codewords = 3;
  o.residual = residual;
  o.train_selection = o.eval_selection = mode;
  o.temperature.start = o.temperature.end = 0.7;
  Generator init(11);
  auto pq = std::make_shared<nn::ProductQuantizer>(o, init, std::make_shared<Generator>(12));
  pq->track_usage = false;
  return pq;
}

// The straight-through surrogate of a residual quantizer, composed from tape primitives: each
// codebook's selection is hard + p - stopgrad(p) with p = softmax((logits + noise) / tau), so its
// forward is the hard code's and its gradient the softmax's, as the fused select_codewords claims.
// `hard` [n, B, W] is the hard quantizer's selection at the same input.
Var composed_straight_through(const nn::ProductQuantizer& pq,
                              const Var& x,
                              const Tensor& noise,
                              const Tensor& hard) {
  const int64_t d = pq.options().dim, nb = pq.options().codebooks, w = pq.options().codewords;
  const double tau = pq.temperature();
  Var r = x, recon;
  for (int64_t b = 0; b < nb; ++b) {
    Var cb = ag::reshape(ag::slice(pq.codebooks, 0, b, b + 1), {w, d});
    Var logits = ag::matmul(ag::matmul(r, pq.bilinear), cb, false, true);
    Var noisy = noise.defined() ? logits + ag::constant(slice(noise, 1, b, b + 1).reshape({-1, w}))
                                : logits;
    Var p = ag::softmax(noisy / tau, -1);
    Var s = p - p.detach() + ag::constant(slice(hard, 1, b, b + 1).reshape({-1, w}));
    Var q = ag::matmul(s, cb);
    recon = b == 0 ? q : recon + q;
    r = r - q;
  }
  return recon;
}

void add_quantizer_cases(std::vector<GradcheckCase>& out) {
  const Tensor x = uniform({2, 3}, 61);
  const Tensor noise = gumbel({2, 2, 3}, RngKey{62, 0}, kFloat64);
  for (int residual = 0; residual < 2; ++residual) {
    auto pq = quantizer(nn::Selection::Soft, residual);
    out.push_back({std::string("pq/soft") + (residual ? "" : "_non-residual"),
                   [pq](V v) { return pq->forward(v[0]).reconstruction; },
                   {x},
                   pq});
  }
  auto gs = quantizer(nn::Selection::GumbelSoft, true);
  out.push_back({"pq/gumbel-soft_fixed_noise",
                 [gs, noise](V v) { return gs->forward(v[0], noise).reconstruction; },
                 {x},
                 gs});
  // Straight-through modes: a Hard quantizer tied to the same parameters gives the forward, the
  // composed surrogate the gradient.
  for (const bool gumbel_noise : {false, true}) {
    auto st = quantizer(
        gumbel_noise ? nn::Selection::GumbelStraightThrough : nn::Selection::StraightThrough, true);
    auto hard = quantizer(nn::Selection::Hard, true);
    hard->codebooks = st->codebooks;  // tied: Module::to converts the shared values in place
    hard->bilinear = st->bilinear;
    const Tensor g = gumbel_noise ? noise : Tensor();
    GradcheckCase c{gumbel_noise ? "pq/gumbel-st_fixed_noise" : "pq/st",
                    [st, g](V v) { return st->forward(v[0], g).reconstruction; },
                    {x},
                    st};
    c.hard = [hard, g](V v) {
      return hard->forward(v[0], g).reconstruction;
    };
    c.surrogate = [st, hard, g](V v) {
      Tensor h;
      {
        ag::NoGradGuard no_grad;
        h = hard->forward(v[0], g).selection.value();
      }
      return composed_straight_through(*st, v[0], g, h);
    };
    out.push_back(c);
  }
}

// LisaAttention with respect to codebooks [B, W, D], selections [N, L, B, W] and its projections,
// with a left pad excluded from the histograms.
void add_attention_layer_cases(std::vector<GradcheckCase>& out) {
  const int64_t N = 1, L = 4, B = 2, W = 3, D = 4;
  Tensor codes = Tensor::empty({N, L, B}, kInt64);
  for (int64_t i = 0; i < N * L * B; ++i) codes.data<int64_t>()[i] = (i * 5 + 2) % W;
  const Tensor keep = from_vector(std::vector<double>{0, 1, 1, 1}, {N, L}, kFloat64);
  const Tensor codebooks = uniform({B, W, D}, 63);
  const Tensor selections = softmax(uniform({N, L, B, W}, 64, -2, 2), -1);
  struct Variant {
    const char* name;
    nn::LisaImpl impl;
    nn::LisaQuery query;
    bool causal;
  };
  for (const Variant& s :
       {Variant{"fused_hard_query", nn::LisaImpl::Fused, nn::LisaQuery::Hard, 1},
        Variant{"fused_expected_query", nn::LisaImpl::Fused, nn::LisaQuery::Expected, 1},
        Variant{"reference_hard_query", nn::LisaImpl::Reference, nn::LisaQuery::Hard, 1},
        Variant{"fused_bidirectional", nn::LisaImpl::Fused, nn::LisaQuery::Hard, 0}}) {
    nn::LisaAttentionOptions o;
    o.dim = D;
    o.codebooks = B;
    o.codewords = W;
    o.impl = s.impl;
    o.query = s.query;
    o.causal = s.causal;
    Generator init(13);
    auto layer = std::make_shared<nn::LisaAttention>(o, init);
    out.push_back({std::string("layer/lisa_attention_") + s.name,
                   [layer, codes, keep](V v) { return layer->forward(v[0], v[1], codes, keep); },
                   {codebooks, selections},
                   layer});
  }
}

// The models: BCE over one positive and one negative candidate per position (padding weighted 0),
// as in training, from left-padded item ids.
void add_model_cases(std::vector<GradcheckCase>& out) {
  const Tensor ids = from_vector(std::vector<int64_t>{0, 0, 3, 1, 5, 2, 6, 4, 4, 1}, {2, 5});
  const Tensor candidates = from_vector(
      std::vector<int64_t>{1, 6, 2, 5, 3, 4, 1, 2, 6, 3, 1, 5, 3, 2, 2, 6, 5, 4, 2, 1}, {2, 5, 2});
  const Tensor targets =
      from_vector(std::vector<double>{1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0},
                  {2, 5, 2},
                  kFloat64);
  const Tensor weights =
      from_vector(std::vector<double>{0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                  {2, 5, 2},
                  kFloat64);
  for (auto variant : {rec::LisaVariant::Base, rec::LisaVariant::Soft, rec::LisaVariant::Mini}) {
    rec::LISAConfig c;
    c.num_items = 6;
    c.max_length = 5;
    c.dim = 4;
    c.codebooks = 2;
    c.codewords = 3;
    c.target_codebooks = 2;
    c.target_codewords = 4;
    c.variant = variant;
    c.dropout = 0.0;
    c.seed = 14;
    auto model = std::make_shared<rec::LISA>(c);
    out.push_back({std::string("model/lisa-") + rec::lisa_variant_name(variant),
                   [model, ids, candidates, targets, weights](V) {
                     Var scores = model->scores(model->hidden(ids), candidates);
                     return nn::bce_with_logits(scores, targets, weights);
                   },
                   {},
                   model});
  }
}

}  // namespace

void add_lisa_module_cases(std::vector<GradcheckCase>& out) {
  add_quantizer_cases(out);
  add_attention_layer_cases(out);
  add_model_cases(out);
}

}  // namespace attnlab::experiments
