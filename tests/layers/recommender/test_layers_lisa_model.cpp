// The LISA recommender: variants train, left padding is excluded, usage, streaming, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/optim/optim.hpp"
#include "layers/recommender/lisa_model.hpp"
#include "layers/recommender/seqrec_trainer.hpp"
#include "tests/scratch_path.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;
using namespace attnlab::rec;

namespace {

LISAConfig tiny(LisaVariant v) {
  LISAConfig c;
  c.num_items = 20;
  c.max_length = 12;
  c.dim = 16;
  c.codebooks = 2;
  c.codewords = 8;
  c.target_codebooks = 2;
  c.target_codewords = 16;
  c.variant = v;
  c.dropout = 0.0;
  c.seed = 3;
  return c;
}

// Sequences following item -> item + 1 (mod 20), left-padded to L = 12 with 0..5 pads.
TrainBatch synthetic_batch(int64_t n, int64_t l, uint64_t seed) {
  TrainBatch b{zeros({n, l}, kInt64), zeros({n, l}, kInt64), zeros({n, l}, kInt64)};
  const Tensor starts = randint({n}, 1, 21, RngKey{seed, 1});
  const Tensor negs = randint({n, l}, 1, 21, RngKey{seed, 2});
  for (int64_t x = 0; x < n; ++x) {
    const int64_t pads = x % 6;
    int64_t item = starts.data<int64_t>()[x];
    for (int64_t i = pads; i < l; ++i) {
      const int64_t next = item % 20 + 1;
      b.input.at<int64_t>({x, i}) = item;
      b.positive.at<int64_t>({x, i}) = next;
      b.negative.at<int64_t>({x, i}) = negs.at<int64_t>({x, i});
      item = next;
    }
  }
  return b;
}

// The leave-one-out split of synthetic sequences (SyntheticConfig's other settings default).
SplitDataset synthetic_split(int64_t users,
                             int64_t items,
                             int64_t topics,
                             int64_t min_length,
                             int64_t max_length,
                             uint64_t seed) {
  SyntheticConfig sc;
  sc.users = users;
  sc.items = items;
  sc.topics = topics;
  sc.min_length = min_length;
  sc.max_length = max_length;
  sc.seed = seed;
  return leave_one_out(synthetic_sequences(sc));
}

}  // namespace

TEST_SUITE("layers.lisa_model") {
  TEST_CASE("each variant trains a few steps on tiny synthetic data and the loss decreases") {
    struct Case {
      LisaVariant v;
      std::optional<Selection> sel;
      LisaQuery query;
    };
    for (Case cs : {Case{LisaVariant::Base, std::nullopt, LisaQuery::Hard},
                    Case{LisaVariant::Soft, std::nullopt, LisaQuery::Expected},
                    Case{LisaVariant::Mini, std::nullopt, LisaQuery::Hard},
                    Case{LisaVariant::Base, Selection::GumbelStraightThrough, LisaQuery::Hard}}) {
      const std::string name = lisa_variant_name(cs.v);
      CAPTURE(name);
      LISAConfig c = tiny(cs.v);
      c.selection = cs.sel;
      c.query = cs.query;
      if (cs.v == LisaVariant::Soft)
        c.regularizer = 1e-2;
      LISA model(c);
      optim::Adam opt(model.named_parameters(), 1e-2, 0.9, 0.98);
      const TrainBatch batch = synthetic_batch(16, 12, 5);
      std::vector<double> losses;
      for (int step = 0; step < 30; ++step) {
        opt.zero_grad();
        Var loss = recommendation_loss(model, batch, LossKind::BCE);  // includes auxiliary_loss()
        loss.backward();
        opt.step();
        losses.push_back(loss.item());
        REQUIRE(std::isfinite(loss.item()));
      }
      const double first = (losses[0] + losses[1] + losses[2]) / 3;
      const double last = (losses[27] + losses[28] + losses[29]) / 3;
      CAPTURE(first);
      CAPTURE(last);
      // Gumbel noise (std 1.28) swamps the small initial logits, so codes are near random at
      // first and the noisy variant learns more slowly (an ablation result, not a bug).
      CHECK(last < (cs.sel ? 0.95 : 0.8) * first);
      // Codebooks are in use (no total collapse on this data).
      CHECK(model.codeword_usage().items > 0);
      CHECK(model.codeword_usage().used[0] >= 1);
    }
  }

  TEST_CASE("left padding is excluded - histograms at pads are zero and real rows ignore pads") {
    LISA model(tiny(LisaVariant::Base));
    model.eval();
    Tensor ids = zeros({1, 10}, kInt64), real = zeros({1, 6}, kInt64);
    for (int64_t i = 0; i < 6; ++i) {
      ids.at<int64_t>({0, 4 + i}) = 3 + i;
      real.at<int64_t>({0, i}) = 3 + i;
    }
    model.hidden(ids);
    const Tensor h = model.last_trace().histograms.value();
    CHECK(max(abs(slice(h, 1, 0, 4))).item() == 0);
    model.hidden(real);
    CHECK_CLOSE(slice(h, 1, 4, 10), model.last_trace().histograms.value(), 1e-6, 1e-7);
    // Hidden states at pads are zero.
    const Tensor out = model.hidden(ids).value();
    CHECK(max(abs(slice(out, 1, 0, 4))).item() == 0);
  }

  TEST_CASE("codeword usage counts real items only") {
    LISA model(tiny(LisaVariant::Mini));
    model.eval();
    const TrainBatch b = synthetic_batch(6, 12, 9);
    model.reset_codeword_usage();
    model.hidden(b.input);
    int64_t real = 0;
    for (int64_t v : b.input.to_vector<int64_t>()) real += v > 0;
    const CodewordUsage& u = model.codeword_usage();
    CHECK(u.items == real);
    for (std::size_t j = 0; j < u.used.size(); ++j) {
      CHECK(u.used[j] <= 8);
      CHECK(u.entropy[j] <= std::log(8.0) + 1e-12);
    }
    model.item_vectors(b.positive);
    CHECK(model.target_codeword_usage().items > 0);
    LISA base(tiny(LisaVariant::Base));
    CHECK_THROWS_AS(base.target_codeword_usage(), ValueError);
  }

  TEST_CASE("precomputed tables and one stream per user reproduce the model's attention") {
    LISA model(tiny(LisaVariant::Base));
    model.eval();
    const TrainBatch b = synthetic_batch(3, 12, 4);
    model.hidden(b.input);
    const LisaTrace& tr = model.last_trace();
    // The batched attention output from the traced pieces (the fused op the model ran).
    const Tensor y =
        lisa_histogram_attention(tr.tables, tr.values, tr.histograms, tr.query_index).value();
    const LisaTables tables = model.attention_tables();
    for (int64_t x = 0; x < 3; ++x) {
      LisaStream stream(tables);
      for (int64_t i = 0; i < 12; ++i) {
        if (b.input.at<int64_t>({x, i}) == 0)
          continue;
        const Tensor u = slice(slice(tr.query_index, 0, x, x + 1), 1, i, i + 1).reshape({2});
        const Tensor got = stream.step_codes(u);
        CHECK_CLOSE(got, slice(slice(y, 0, x, x + 1), 1, i, i + 1).reshape({16}), 1e-5, 1e-6);
      }
    }
  }

  TEST_CASE("stream_step reproduces the batched hidden states one item at a time") {
    for (LisaVariant v : {LisaVariant::Base, LisaVariant::Soft}) {
      LISAConfig c = tiny(v);
      c.query = v == LisaVariant::Soft ? LisaQuery::Expected : LisaQuery::Hard;
      LISA model(c);
      model.eval();
      const TrainBatch b = synthetic_batch(2, 12, 8);
      const Tensor h = model.hidden(b.input).value();
      for (int64_t x = 0; x < 2; ++x) {
        LisaStream state(model.attention_tables());
        for (int64_t i = 0; i < 12; ++i) {
          const int64_t item = b.input.at<int64_t>({x, i});
          if (item == 0)
            continue;
          const Tensor got = model.stream_step(state, item, i);
          CHECK_CLOSE(got, slice(slice(h, 0, x, x + 1), 1, i, i + 1).reshape({16}), 2e-5, 2e-5);
        }
      }
      model.train();
      LisaStream state(model.attention_tables());
      CHECK_THROWS_AS(model.stream_step(state, 1, 0), ValueError);
    }
  }

  TEST_CASE("Base targets from the step's quantized rows - same loss and gradients as quantizing") {
    // share_target_rows gathers the targets from the rows hidden() quantized and quantizes only
    // the ids the input lacks: the same values bit for bit (the quantizer works row by row) and
    // the same gradients up to the order of their float64 sums.
    const TrainBatch b = synthetic_batch(3, 12, 9);
    std::set<int64_t> in_input;
    for (int64_t v : b.input.to_vector<int64_t>()) in_input.insert(v);
    int64_t missing = 0;
    for (int64_t v : b.negative.to_vector<int64_t>()) missing += !in_input.count(v);
    REQUIRE(missing > 0);  // the quantize-the-rest path runs too
    LISA fresh(tiny(LisaVariant::Base)), shared(tiny(LisaVariant::Base));
    fresh.share_target_rows = false;
    for (LISA* m : {&fresh, &shared}) {
      m->to(kFloat64);
      m->train();
    }
    Var lf = recommendation_loss(fresh, b, LossKind::BCE);
    Var ls = recommendation_loss(shared, b, LossKind::BCE);
    CHECK(testing::bitwise_equal(lf.value(), ls.value()));
    lf.backward();
    ls.backward();
    const auto pf = fresh.named_parameters(), ps = shared.named_parameters();
    REQUIRE(pf.size() == ps.size());
    for (std::size_t i = 0; i < pf.size(); ++i) {
      CAPTURE(pf[i].first);
      if (!pf[i].second.grad().defined()) {
        CHECK_FALSE(ps[i].second.grad().defined());
        continue;
      }
      CHECK_CLOSE(ps[i].second.grad(), pf[i].second.grad(), 1e-12, 1e-14);
    }
    CHECK(max(abs(shared.pq->codebooks.grad())).item() > 0);
  }

  TEST_CASE("shared target rows are not used once the quantizer's parameters changed") {
    LISA model(tiny(LisaVariant::Base));
    model.train();
    const TrainBatch b = synthetic_batch(3, 12, 9);
    model.hidden(b.input);
    Tensor c = model.pq->codebooks.value();  // an in-place update, as an optimizer step makes
    for (int64_t i = 0; i < c.numel(); ++i) c.data<float>()[i] += 0.25f;
    const Tensor after = model.item_vectors(b.positive).value();
    model.share_target_rows = false;
    CHECK(testing::bitwise_equal(after, model.item_vectors(b.positive).value()));
  }

  TEST_CASE("the Soft model passes a fast gradcheck in float64") {
    LISAConfig c = tiny(LisaVariant::Soft);
    c.num_items = 6;
    c.max_length = 5;
    c.dim = 4;
    c.codewords = 3;
    LISA model(c);
    model.to(kFloat64);
    const Tensor ids = from_vector(std::vector<int64_t>{0, 1, 2, 3, 1, 4, 5, 6, 2, 2}, {2, 5});
    const Tensor r = rand({2, 5, 4}, RngKey{1, 1}, kFloat64, -1, 1);
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

  // Evaluation gathers per-position selections and histograms for last_trace(); under frozen
  // traces (evaluate(), a shadow's replay) no one reads them, and the model runs from the
  // quantized rows as in training: the same hidden states, and with the fused hard-query
  // attention (the default) without [N, L, B, W] tensors. (evaluate() at the ML-1M study's batch
  // of 256 held 961 MiB for LISA-Base 8 x 128 at width 128, against 293 MiB for a training step.)
  TEST_CASE(
      "evaluation under frozen traces runs from the rows - same hidden states and less "
      "memory and the trace is left alone") {
    struct Case {
      LisaVariant variant;
      bool causal;
      LisaQuery query;
      LisaImpl impl;
    };
    const Case cases[] = {{LisaVariant::Base, true, LisaQuery::Hard, LisaImpl::Fused},
                          {LisaVariant::Mini, true, LisaQuery::Hard, LisaImpl::Fused},
                          {LisaVariant::Soft, true, LisaQuery::Hard, LisaImpl::Fused},
                          // Configurations without the fused item op: they gather the rows.
                          {LisaVariant::Base, false, LisaQuery::Hard, LisaImpl::Fused},
                          {LisaVariant::Soft, true, LisaQuery::Expected, LisaImpl::Fused},
                          {LisaVariant::Base, true, LisaQuery::Hard, LisaImpl::Reference}};
    for (const Case& k : cases) {
      CAPTURE(lisa_variant_name(k.variant));
      CAPTURE(k.causal);
      CAPTURE(static_cast<int>(k.query));
      CAPTURE(static_cast<int>(k.impl));
      LISAConfig c = tiny(k.variant);
      c.codewords = 64;  // [N, L, B, W] tensors large next to the others
      c.causal = k.causal;
      c.query = k.query;
      c.impl = k.impl;
      LISA model(c);
      model.eval();
      const NoGradGuard no_grad;  // as in evaluate()
      const TrainBatch b = synthetic_batch(6, 12, 5);
      {
        // A first call allocates what later calls reuse; frozen, it leaves no trace whose
        // release would lower the next call's peak.
        const FreezeTracesGuard frozen;
        model.hidden(b.input);
      }
      reset_peak_memory();
      int64_t before = memory_stats().live_bytes;
      const Tensor per_position = model.hidden(b.input).value();
      const int64_t per_position_peak = memory_stats().peak_bytes - before;
      const Tensor traced = model.last_trace().histograms.value();
      REQUIRE(traced.shape() == Shape{6, 12, 2, 64});
      Tensor rows;
      int64_t rows_peak = 0;
      {
        const FreezeTracesGuard frozen;
        reset_peak_memory();
        before = memory_stats().live_bytes;
        rows = model.hidden(b.input).value();
        rows_peak = memory_stats().peak_bytes - before;
      }
      // The item op gathers, masks, scans and attends as the per-position ops do, in the same
      // order: the same bits.
      CHECK(testing::bitwise_equal(rows, per_position));
      CHECK(model.last_trace().histograms.value().raw_data() == traced.raw_data());
      if (k.causal && k.query == LisaQuery::Hard && k.impl == LisaImpl::Fused) {
        CAPTURE(rows_peak);
        CAPTURE(per_position_peak);
        // The per-position selections, logits and histograms, each [N, L, B, W], are not made.
        CHECK(per_position_peak - rows_peak >= 3 * static_cast<int64_t>(traced.nbytes()));
      }
    }
  }

  TEST_CASE("evaluate leaves the trace of the caller's last forward") {
    const SplitDataset data = synthetic_split(40, 20, 4, 6, 14, 4);
    LISA model(tiny(LisaVariant::Base));
    model.eval();
    model.hidden(synthetic_batch(3, 12, 6).input);
    const Tensor traced = model.last_trace().histograms.value();
    EvalOptions o;
    o.negatives = 10;
    o.batch_size = 16;
    const RankingMetrics m = evaluate(model, data, o);
    CHECK(m.users == 40);
    // Without the guard the trace would be the last evaluation batch's ([8, 12, 2, 8]).
    CHECK(model.last_trace().histograms.value().shape() == Shape{3, 12, 2, 8});
    CHECK(model.last_trace().histograms.value().raw_data() == traced.raw_data());
  }

  TEST_CASE("bad configurations and inputs give clear errors") {
    LISAConfig c = tiny(LisaVariant::Base);
    c.codewords = 0;
    CHECK_THROWS_AS(LISA{c}, ValueError);
    c = tiny(LisaVariant::Base);
    c.dropout = 1.0;
    CHECK_THROWS_AS(LISA{c}, ValueError);
    LISA model(tiny(LisaVariant::Base));
    CHECK_THROWS_WITH_AS(model.hidden(zeros({2, 5})), doctest::Contains("int64"), ShapeError);
    CHECK_THROWS_AS(model.hidden(zeros({2, 13}, kInt64)), ShapeError);
    CHECK_THROWS_AS(parse_lisa_variant("large"), ValueError);
    CHECK(parse_lisa_variant("mini") == LisaVariant::Mini);
  }
}

// A resumed run must continue the Gumbel noise and the temperature schedule where the checkpoint
// left them, not from their start (a LISA run with an annealed tau restarted its schedule).
TEST_SUITE("layers.lisa_model") {
  TEST_CASE("LISA with Gumbel noise and an annealed temperature resumes bit-identically") {
    const SplitDataset data = synthetic_split(100, 40, SyntheticConfig{}.topics, 8, 16, 3);
    LISAConfig c;
    c.num_items = data.num_items;
    c.max_length = 12;
    c.dim = 8;
    c.codebooks = 2;
    c.codewords = 4;
    c.variant = LisaVariant::Mini;
    c.target_codebooks = 2;
    c.target_codewords = 8;
    c.selection = Selection::GumbelStraightThrough;
    c.tau_schedule = TemperatureSchedule::Kind::Linear;
    c.tau = 1.0;
    c.tau_end = 0.3;
    c.tau_steps = 20;
    c.seed = 5;
    TrainConfig tc;
    tc.epochs = 4;
    tc.batch_size = 32;
    tc.eval_every = 2;
    tc.eval_max_users = 30;
    tc.seed = 2;
    LISA straight(c);
    const TrainResult full = train_recommender(straight, data, tc);

    const std::string ckpt = attnlab::testing::scratch_path("lisa_resume.npz");
    LISA first(c);
    TrainConfig part = tc;
    part.epochs = 2;
    part.checkpoint = ckpt;
    train_recommender(first, data, part);
    LISA resumed(c);
    TrainConfig rest = tc;
    rest.checkpoint = ckpt;
    rest.resume = true;
    const TrainResult second = train_recommender(resumed, data, rest);
    REQUIRE(second.epochs.size() == 2);
    CHECK(second.epochs[0].loss == full.epochs[2].loss);
    CHECK(second.epochs[1].loss == full.epochs[3].loss);
    CHECK(resumed.pq->step() == straight.pq->step());
    CHECK(resumed.pq->temperature() == straight.pq->temperature());
    const auto a = straight.parameters(), b = resumed.parameters();
    for (std::size_t i = 0; i < a.size(); ++i)
      CHECK(attnlab::testing::bitwise_equal(a[i].value(), b[i].value()));
  }
}
