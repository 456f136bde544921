// The exact counterpart of LISA's attention (LisaAttentionMode::ExactUnquantized,
// layers/recommender/lisa_exact_attention.hpp; docs/derivations/lisa_histograms.md 8): equal to
// the histogram attention when every r^b is its own codeword, equal in value and gradient to a
// reference written out from materialised scores, gradchecked, and switchable without touching
// the state dict or the random draws.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/optim/optim.hpp"
#include "layers/recommender/lisa_exact_attention.hpp"
#include "layers/recommender/lisa_model.hpp"
#include "layers/recommender/seqrec_trainer.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;
using namespace attnlab::rec;

namespace {

LISAConfig small_config(bool causal, bool residual) {
  LISAConfig c;
  c.num_items = 6;
  c.max_length = 6;
  c.dim = 4;
  c.codebooks = 2;
  c.codewords = 3;
  c.variant = LisaVariant::Base;
  c.decay = 0.3;
  c.causal = causal;
  c.residual = residual;
  c.dropout = 0.0;
  c.seed = 11;
  return c;
}

// Two left-padded sequences of length 6 (two pads, then one pad), items repeating.
Tensor padded_ids() {
  return from_vector(std::vector<int64_t>{0, 0, 3, 1, 3, 6, 0, 2, 5, 5, 4, 1}, {2, 6});
}

Tensor grad_or_zeros(const Var& p) {
  return p.has_grad() ? p.grad().clone() : zeros(p.shape(), p.dtype());
}

bool same_state(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || !testing::bitwise_equal(a[i].second, b[i].second))
      return false;
  return true;
}

// A quantizer that reconstructs every item exactly with hard codes: codebook 0 holds the items'
// inputs sqrt(D) E[item] (codeword w = item w + 1), the bilinear form is the identity and the
// items have equal norms, so item j scores highest against its own codeword (|e|^2 > e.e' for
// e != e'). Later codebooks are zero: with residual encoding they quantize r^b = 0 exactly.
void make_quantizer_perfect(LISA& m) {
  const LISAConfig& c = m.config();
  const int64_t d = c.dim;
  const Tensor table = m.item_embedding->weight.value();
  const Tensor raw = randn({c.num_items, d}, RngKey{5, 1}, kFloat64);
  for (int64_t item = 1; item <= c.num_items; ++item) {
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) norm += raw.get({item - 1, k}) * raw.get({item - 1, k});
    for (int64_t k = 0; k < d; ++k) table.set({item, k}, raw.get({item - 1, k}) / std::sqrt(norm));
  }
  // Codewords through the same op as the model's inputs (item_embedding(ids) * sqrt(D)).
  const Tensor items = arange(1, c.num_items + 1, 1, kInt64);
  const Tensor words = (m.item_embedding(items) * std::sqrt(static_cast<double>(d))).value();
  const Tensor cb = m.pq->codebooks.value();
  cb.fill(0.0);
  for (int64_t w = 0; w < c.num_items; ++w)
    for (int64_t k = 0; k < d; ++k) cb.set({0, w, k}, words.get({w, k}));
  const Tensor bl = m.pq->bilinear.value();
  bl.fill(0.0);
  for (int64_t k = 0; k < d; ++k) bl.set({k, k}, 1.0);
}

// The counterpart written out from its definition, independent of the softmax kernels: r^b from
// the codes (r^1 = e, r^(b+1) = r^b - C_b[u^b]; non-residual: r^b = e), materialised scores
// s (r_i^b W_Q^b).(r_j^b W_K^b) - lambda |i - j| and a softmax over each row's allowed keys
// (j real, and j <= i when causal) written with exp and sums; rows with no allowed key are 0.
Var reference_exact(const LISA& m, const Tensor& ids, const Tensor& codes) {
  const LISAConfig& c = m.config();
  const int64_t n = ids.size(0), l = ids.size(1), d = c.dim, nb = c.codebooks, w = c.codewords;
  // e = sqrt(D) E[ids]; the padding row is zero and gets no gradient (the table's padding_idx).
  const Tensor real = gt(ids.to(kFloat64), 0.0).reshape({n, l, 1});
  Var r = ag::index_select(m.item_embedding->weight, 0, ids) * std::sqrt(static_cast<double>(d)) *
          ag::constant(real);
  const LisaAttention& att = *m.attention;
  Tensor allowed = zeros({n, l, l}, kFloat64), bias = zeros({n, l, l}, kFloat64);
  for (int64_t x = 0; x < n; ++x)
    for (int64_t i = 0; i < l; ++i)
      for (int64_t j = 0; j < l; ++j) {
        allowed.set({x, i, j}, ids.get({x, j}) > 0 && (!c.causal || j <= i) ? 1.0 : 0.0);
        bias.set({x, i, j}, -c.decay * std::fabs(static_cast<double>(i - j)));
      }
  auto project = [&](const Var& x, const Var& weights, int64_t b) {
    Var wb = ag::reshape(ag::slice(weights, 0, b, b + 1), {d, d});
    return ag::reshape(ag::matmul(ag::reshape(x, {n * l, d}), wb), {n, l, d});
  };
  Var y;
  for (int64_t b = 0; b < nb; ++b) {
    Var q = project(r, att.w_q, b), k = project(r, att.w_k, b), v = project(r, att.w_v, b);
    Var z = ag::matmul(q, k, false, true) * (1.0 / std::sqrt(static_cast<double>(d))) +
            ag::constant(bias);
    // A detached maximum over the allowed keys (it cancels in the ratio); 0 for empty rows.
    Tensor mx = zeros({n, l, 1}, kFloat64), empty = zeros({n, l, 1}, kFloat64);
    for (int64_t x = 0; x < n; ++x)
      for (int64_t i = 0; i < l; ++i) {
        double best = -INFINITY;
        for (int64_t j = 0; j < l; ++j)
          if (allowed.get({x, i, j}) > 0)
            best = std::max(best, z.value().get({x, i, j}));
        mx.set({x, i, 0}, std::isfinite(best) ? best : 0.0);
        empty.set({x, i, 0}, std::isfinite(best) ? 0.0 : 1.0);
      }
    Var a = ag::constant(allowed) * ag::exp(z - ag::constant(mx));
    Var weights = a / (ag::sum(a, -1, true) + ag::constant(empty));
    Var yb = ag::matmul(weights, v);
    y = b == 0 ? yb : y + yb;
    if (c.residual && b + 1 < nb) {
      const Tensor u = slice(codes, 2, b, b + 1).reshape({n * l});
      Var cb = ag::reshape(ag::slice(m.pq->codebooks, 0, b, b + 1), {w, d});
      r = r - ag::reshape(ag::index_select(cb, 0, u), {n, l, d});
    }
  }
  return y;
}

}  // namespace

TEST_SUITE("layers.lisa_exact") {
  TEST_CASE("with a perfect quantizer the exact counterpart equals the histogram attention") {
    // What defines the counterpart: when every r^b is its own codeword, histogram attention is
    // exact attention over the r^b (lisa_histograms.md 4), so the two modes agree to rounding.
    // float64: the two paths sum the same O(1) terms in different orders, a few hundred
    // operations deep, so they differ by ~1e-15; a wrong codeword, bias or mask shows at 1e-2.
    for (bool causal : {true, false}) {
      for (int64_t codebooks : {1, 2}) {
        CAPTURE(causal);
        CAPTURE(codebooks);
        LISAConfig c = small_config(causal, codebooks == 2);
        c.dim = 8;
        c.codebooks = codebooks;
        c.codewords = c.num_items;
        c.dropout = 0.3;  // train mode: the same dropout masks in both modes
        LISA model(c);
        model.to(kFloat64);
        make_quantizer_perfect(model);
        for (bool training : {true, false}) {
          CAPTURE(training);
          model.train(training);
          const Tensor ids = padded_ids();
          const LisaRunState start = model.run_state();
          model.set_attention_mode(LisaAttentionMode::Histogram);
          const Tensor h_hist = model.hidden(ids).value();
          const Tensor y_hist = model.last_attention_output().value();
          // The quantizer is perfect: item j took codeword j - 1 in codebook 0.
          const Tensor u = model.last_trace().query_index;
          for (int64_t x = 0; x < 2; ++x)
            for (int64_t i = 0; i < 6; ++i)
              if (ids.get({x, i}) > 0)
                REQUIRE(u.get({x, i, 0}) == ids.get({x, i}) - 1);
          model.restore_run_state(start);
          model.set_attention_mode(LisaAttentionMode::ExactUnquantized);
          const Tensor h_exact = model.hidden(ids).value();
          const Tensor keep = gt(ids.to(kFloat64), 0.0).reshape({2, 6, 1});
          CHECK_CLOSE(h_exact, h_hist, 1e-12, 1e-12);
          // Real rows of y too (pad rows are discarded by the model; bidirectional pad rows
          // query with the pad's codeword in one mode and r = 0 in the other).
          CHECK_CLOSE(
              mul(model.last_attention_output().value(), keep), mul(y_hist, keep), 1e-12, 1e-12);
        }
        // A quantization error of 1e-3 in one codeword (the codes unchanged) shows at once.
        const Tensor cb = model.pq->codebooks.value();
        cb.set({0, 2, 0}, cb.get({0, 2, 0}) + 1e-3);
        const Tensor ids = padded_ids();
        const Tensor h_exact = model.hidden(ids).value();
        model.set_attention_mode(LisaAttentionMode::Histogram);
        CHECK(max_abs_diff(model.hidden(ids).value(), h_exact) > 1e-6);
      }
    }
  }

  TEST_CASE("the exact mode equals a reference from materialised scores - value and gradients") {
    for (bool causal : {true, false}) {
      for (bool residual : {true, false}) {
        CAPTURE(causal);
        CAPTURE(residual);
        LISA model(small_config(causal, residual));
        model.to(kFloat64);
        model.eval();  // hard codes, no gradient through the selection: the reference's r^b
        const Tensor ids = padded_ids();
        model.hidden(ids);
        const Tensor codes = model.last_trace().query_index;
        model.set_attention_mode(LisaAttentionMode::ExactUnquantized);
        model.hidden(ids);
        const Var y = model.last_attention_output();
        const Var ref = reference_exact(model, ids, codes);
        CHECK_CLOSE(y.value(), ref.value(), 1e-12, 1e-13);
        const Tensor wy = rand(y.shape(), RngKey{9, 1}, kFloat64, -1, 1);
        std::vector<Var> leaves{model.item_embedding->weight,
                                model.attention->w_q,
                                model.attention->w_k,
                                model.attention->w_v,
                                model.pq->codebooks};
        model.zero_grad();
        ag::sum(y * ag::constant(wy)).backward();
        std::vector<Tensor> got;
        for (const Var& p : leaves) got.push_back(grad_or_zeros(p));
        model.zero_grad();
        ag::sum(ref * ag::constant(wy)).backward();
        for (std::size_t i = 0; i < leaves.size(); ++i) {
          CAPTURE(i);
          CHECK_CLOSE(got[i], grad_or_zeros(leaves[i]), 1e-11, 1e-13);
        }
        // The codebooks reach the exact attention only through r^2 = e - C_1[u] (residual).
        CHECK((max(abs(got[4])).item() > 0) == residual);
      }
    }
  }

  TEST_CASE("the exact mode passes a fast gradcheck in float64 (soft codes)") {
    struct Case {
      LisaVariant variant;
      bool causal, residual;
    };
    for (Case cs : {Case{LisaVariant::Soft, true, true}, Case{LisaVariant::Base, false, false}}) {
      CAPTURE(cs.causal);
      LISAConfig c = small_config(cs.causal, cs.residual);
      c.variant = cs.variant;
      c.selection = Selection::Soft;  // differentiable: the straight-through modes are not
      LISA model(c);
      model.to(kFloat64);
      model.set_attention_mode(LisaAttentionMode::ExactUnquantized);
      const Tensor ids = padded_ids();
      const Tensor r = rand({2, 6, 4}, RngKey{2, 1}, kFloat64, -1, 1);
      auto f = [&](const std::vector<Var>& in) {
        return ag::sum(model.hidden(ids) * constant(r)) * in[0];
      };
      GradcheckOptions go;
      go.params = model.parameters();
      go.fast_mode = true;
      go.fast_trials = 3;
      const auto res = gradcheck(f, {ones({}, kFloat64)}, go);
      CHECK_MESSAGE(res.ok, res.report());
    }
  }

  TEST_CASE("both modes draw the same random numbers - generators end in the same states") {
    LISAConfig c = small_config(true, true);
    c.dropout = 0.2;
    c.selection = Selection::GumbelStraightThrough;  // Gumbel noise from the noise generator
    LISA model(c);
    model.train();
    const Tensor ids = padded_ids();
    const LisaRunState start = model.run_state();
    model.hidden(ids);
    const std::vector<Generator> after_histogram = model.run_state().generators;
    const NamedTensors state_histogram = model.state_dict();
    model.restore_run_state(start);
    model.set_attention_mode(LisaAttentionMode::ExactUnquantized);
    model.hidden(ids);
    const std::vector<Generator> after_exact = model.run_state().generators;
    REQUIRE(after_exact.size() == 2);
    for (std::size_t i = 0; i < after_exact.size(); ++i) {
      CAPTURE(i);
      CHECK(after_exact[i] == after_histogram[i]);
      CHECK(after_exact[i].stream() > start.generators[i].stream());  // both were drawn from
    }
    CHECK(same_state(model.state_dict(), state_histogram));
  }

  TEST_CASE("switching modes keeps the state dict and histogram mode stays bit-identical") {
    LISAConfig c = small_config(true, true);
    c.dropout = 0.2;
    c.selection = Selection::GumbelStraightThrough;
    LISA model(c);
    model.train();
    const Tensor ids = padded_ids();
    const NamedTensors before = model.state_dict();
    const LisaRunState start = model.run_state();
    const std::string plain = model.describe();
    CHECK(model.attention_mode() == LisaAttentionMode::Histogram);
    CHECK(plain.find("attention=") == std::string::npos);
    const Tensor h1 = model.hidden(ids).value();
    // The mode is no parameter, buffer or generator: the state dict is the same in both modes.
    model.restore_run_state(start);
    model.set_attention_mode(LisaAttentionMode::ExactUnquantized);
    CHECK(model.attention_mode() == LisaAttentionMode::ExactUnquantized);
    CHECK(same_state(model.state_dict(), before));
    CHECK(model.describe().find("attention=exact-unquantized") != std::string::npos);
    // One exact call with a backward, then back to histogram mode from the same run state.
    ag::sum(model.hidden(ids)).backward();
    model.zero_grad();
    model.set_attention_mode(LisaAttentionMode::Histogram);
    CHECK(model.describe() == plain);
    model.restore_run_state(start);
    CHECK(same_state(model.state_dict(), before));
    const Tensor h2 = model.hidden(ids).value();
    CHECK(testing::bitwise_equal(h1, h2));
  }

  TEST_CASE("a shadow step between run_state and restore_run_state leaves training bit-identical") {
    // Mini (two quantizers), Gumbel noise, dropout and an annealed temperature: everything a
    // forward pass advances. Model b runs an exact-mode loss and backward before each step.
    LISAConfig c = small_config(true, true);
    c.variant = LisaVariant::Mini;
    c.target_codebooks = 2;
    c.target_codewords = 4;
    c.dropout = 0.2;
    c.selection = Selection::GumbelStraightThrough;
    c.tau_schedule = TemperatureSchedule::Kind::Linear;
    c.tau = 1.0;
    c.tau_end = 0.5;
    c.tau_steps = 3;
    LISA a(c), b(c);
    optim::Adam opt_a(a.named_parameters(), 1e-2), opt_b(b.named_parameters(), 1e-2);
    const Tensor ids = padded_ids();
    const TrainBatch batch{ids, ids, zeros_like(ids)};
    for (int step = 0; step < 3; ++step) {
      const LisaRunState saved = b.run_state();
      b.set_attention_mode(LisaAttentionMode::ExactUnquantized);
      recommendation_loss(b, batch, LossKind::BCE).backward();
      b.zero_grad();
      CHECK(b.pq->step() == saved.step + 1);
      b.restore_run_state(saved);
      b.set_attention_mode(LisaAttentionMode::Histogram);
      for (auto* m : {&a, &b}) {
        optim::Adam& opt = m == &a ? opt_a : opt_b;
        opt.zero_grad();
        recommendation_loss(*m, batch, LossKind::BCE).backward();
        opt.step();
      }
    }
    CHECK(same_state(a.state_dict(), b.state_dict()));
    const LisaRunState ra = a.run_state(), rb = b.run_state();
    CHECK(ra.step == 3);
    CHECK(rb.step == 3);
    CHECK(rb.target_step == ra.target_step);
    for (std::size_t i = 0; i < ra.generators.size(); ++i)
      CHECK(ra.generators[i] == rb.generators[i]);
    CHECK(testing::bitwise_equal(a.codeword_usage().counts, b.codeword_usage().counts));
    CHECK(
        testing::bitwise_equal(a.target_codeword_usage().counts, b.target_codeword_usage().counts));
    CHECK(a.codeword_usage().items == b.codeword_usage().items);
  }

  TEST_CASE("bad inputs to the exact counterpart give clear errors") {
    LISA model(small_config(true, true));
    const Var wrong = constant(zeros({2, 6, 3, 4}));
    CHECK_THROWS_WITH_AS(lisa_exact_attention(*model.attention, wrong, Tensor()),
                         doctest::Contains("[N, L, 2, 4]"),
                         ShapeError);
    const Var inputs = constant(zeros({2, 6, 2, 4}));
    CHECK_THROWS_WITH_AS(lisa_exact_attention(*model.attention, inputs, ones({2, 5})),
                         doctest::Contains("keep must be [N, L] = [2, 6]"),
                         ShapeError);
    model.eval();
    model.set_attention_mode(LisaAttentionMode::ExactUnquantized);
    LisaStream state(model.attention_tables());
    CHECK_THROWS_WITH_AS(
        model.stream_step(state, 1, 0), doctest::Contains("exact-unquantized"), ValueError);
    LisaRunState broken = model.run_state();
    broken.generators.pop_back();
    CHECK_THROWS_WITH_AS(model.restore_run_state(broken),
                         doctest::Contains("expected 2 generator states, got 1"),
                         ValueError);
    broken = model.run_state();
    broken.usage.counts = zeros({2, 4}, kFloat64);
    CHECK_THROWS_WITH_AS(model.restore_run_state(broken),
                         doctest::Contains("counts must be [B, W] = [2, 3], got [2, 4]"),
                         ShapeError);
    CHECK(parse_lisa_attention_mode("exact-unquantized") == LisaAttentionMode::ExactUnquantized);
    CHECK_THROWS_AS(parse_lisa_attention_mode("exact"), ValueError);
  }
}
