// The shadow-gradient mode: exact attention in place of the approximation at every n-th step,
// compared, and put back so that the trained model is unchanged.
#include <doctest/doctest.h>

#include <cmath>

#include "core/core.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/recommender/gradient_shadow.hpp"
#include "layers/recommender/lisa_model.hpp"
#include "layers/recommender/sasrec.hpp"
#include "layers/recommender/seqrec_data.hpp"
#include "layers/recommender/seqrec_trainer.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::nn;
using namespace attnlab::rec;

namespace {

SplitDataset small_data() {
  SyntheticConfig sc;
  sc.users = 120;
  sc.items = 50;
  sc.topics = 4;
  sc.min_length = 10;
  sc.max_length = 20;
  sc.period = 4;
  sc.seed = 9;
  return leave_one_out(synthetic_sequences(sc));
}

// Two blocks (layer 2 sees layer 1's output), dropout everywhere, and a kernel with state that
// forward changes: FAVOR+ redrawing its features at every training call (buffers and generator).
SASRecConfig small_config(int64_t items, const std::string& kind) {
  SASRecConfig c;
  c.num_items = items;
  c.max_length = 12;
  c.dim = 16;
  c.blocks = 2;
  c.heads = 2;
  c.dropout = 0.2;
  c.seed = 4;
  c.attention = kind;
  if (kind == "favor") {
    c.kernel = [](const KernelContext& ctx) {
      return make_attention_kernel("favor", ctx, {{"features", "8"}, {"redraw", "every-call"}});
    };
  }
  return c;
}

TrainConfig small_training() {
  TrainConfig t;
  t.epochs = 2;
  t.batch_size = 32;
  t.eval_every = 2;
  t.eval_max_users = 40;
  t.seed = 6;
  return t;
}

struct Trained {
  NamedTensors state;
  TrainResult result;
  std::vector<ShadowRecord> records;
  CodewordUsage usage;           // LISA only
  int64_t temperature_step = 0;  // LISA only
};

// Trains `model` on small_data() with the shadow every 2 steps (or without it).
Trained train_model(SequenceRecommender& model, bool shadow, const std::string& exact) {
  const SplitDataset data = small_data();
  Trained t;
  if (!shadow) {
    t.result = train_recommender(model, data, small_training());
  } else {
    ShadowOptions so;
    so.exact = exact;
    so.every = 2;
    GradientShadow g(model, so);
    t.result = train_recommender(model, data, small_training(), g.install({}));
    t.records = g.records();
  }
  t.state = model.state_dict();
  return t;
}

Trained train(const std::string& kind, bool shadow, const std::string& exact = "softmax-fused") {
  SASRec model(small_config(small_data().num_items, kind));
  return train_model(model, shadow, exact);
}

// LISA-Mini with everything a forward advances: Gumbel noise, dropout, an annealed temperature
// and codeword usage.
LISAConfig lisa_config(int64_t items) {
  LISAConfig c;
  c.num_items = items;
  c.max_length = 12;
  c.dim = 8;
  c.codebooks = 2;
  c.codewords = 4;
  c.variant = LisaVariant::Mini;
  c.target_codebooks = 2;
  c.target_codewords = 8;
  c.dropout = 0.2;
  c.selection = Selection::GumbelStraightThrough;
  c.tau_schedule = TemperatureSchedule::Kind::Linear;
  c.tau = 1.0;
  c.tau_end = 0.5;
  c.tau_steps = 5;
  c.seed = 8;
  return c;
}

Trained train_lisa(bool shadow) {
  LISA model(lisa_config(small_data().num_items));
  Trained t = train_model(model, shadow, "softmax-fused");
  t.usage = model.codeword_usage();
  t.temperature_step = model.pq->step();
  return t;
}

bool same_state(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !attnlab::testing::bitwise_equal(a[i].second, b[i].second))
      return false;
  }
  return true;
}

// Trains `model` for one epoch (4 steps; with `shadow`, steps 2 and 4 are shadow steps) and
// returns what capture() reads right after the last step (the evaluation that follows runs
// forwards too, which replace the traces).
template <class Capture>
auto after_last_step(SequenceRecommender& model, bool shadow, Capture capture) {
  TrainConfig one_epoch = small_training();
  one_epoch.epochs = 1;
  ShadowOptions so;
  so.every = 2;
  GradientShadow g(model, so);
  decltype(capture()) captured;
  TrainCallbacks callbacks;
  callbacks.on_batch = [&](const BatchReport& b) {
    if (b.batch == b.batches)
      captured = capture();
  };
  train_recommender(model, small_data(), one_epoch, shadow ? g.install(callbacks) : callbacks);
  CHECK(g.records().size() == (shadow ? 2u : 0u));
  return captured;
}

}  // namespace

TEST_SUITE("layers.gradient_shadow") {
  TEST_CASE("agreement: cosine and relative error of concatenated tensors") {
    const Tensor a = from_vector(std::vector<float>{1, 0}, {2}),
                 e = from_vector(std::vector<float>{0, 2}, {2}), z = zeros({2}, kFloat32);
    const Agreement orthogonal = agreement("x", {a}, {e});
    CHECK(orthogonal.cosine == 0.0);
    CHECK(orthogonal.relative_error == doctest::Approx(std::sqrt(5.0) / 2.0));
    CHECK(orthogonal.approx_norm == 1.0);
    CHECK(orthogonal.exact_norm == 2.0);
    const Agreement two = agreement("x", {a, e}, {a, e});
    CHECK(two.cosine == doctest::Approx(1.0));
    CHECK(two.relative_error == 0.0);
    CHECK(agreement("x", {z}, {z}).cosine == 1.0);
    CHECK(agreement("x", {z}, {z}).relative_error == 0.0);
    CHECK(std::isinf(agreement("x", {a}, {z}).relative_error));
    CHECK_THROWS_AS(agreement("x", {a}, {a, e}), ValueError);
    CHECK_THROWS_WITH_AS(agreement("x", {a}, {zeros({3}, kFloat32)}),
                         doctest::Contains("agreement 'x': tensor 0 is [2]"),
                         ShapeError);
  }

  TEST_CASE("a model trained with the shadow is bit-identical to one trained without") {
    for (const std::string kind : {"favor", "softmax-fused"}) {
      CAPTURE(kind);
      const Trained plain = train(kind, false), shadowed = train(kind, true);
      CHECK(same_state(plain.state, shadowed.state));
      REQUIRE(plain.result.epochs.size() == shadowed.result.epochs.size());
      for (std::size_t e = 0; e < plain.result.epochs.size(); ++e)
        CHECK(plain.result.epochs[e].loss == shadowed.result.epochs[e].loss);
      CHECK(plain.result.test.ndcg10 == shadowed.result.test.ndcg10);
      // 2 epochs of ceil(119 / 32) = 4 batches: steps 2, 4, 6, 8.
      CHECK(shadowed.records.size() == 4);
    }
  }

  TEST_CASE("a kernel's trace after a shadow step is the training step's with its gradients") {
    // FAVOR+ keeps the trace of its last call, and with trace_gradients the gradients the
    // training backward sent through it. The shadow's replay of the step must not replace it
    // (it did: the trace after a shadow step held the replay's tensors, without gradients).
    auto last_trace = [](bool shadow) {
      SASRec model(small_config(small_data().num_items, "favor"));
      Module* m = &model;
      for (const std::string name : {"blocks", "1", "attn", "kernel"}) {
        for (const auto& [child_name, child] : m->named_children())
          if (child_name == name)
            m = child.get();
      }
      auto& kernel = dynamic_cast<FavorKernel&>(*m);
      kernel.trace_gradients = true;
      return after_last_step(model, shadow, [&] { return kernel.last_trace(); });
    };
    const FavorTrace plain = last_trace(false), shadowed = last_trace(true);
    for (auto member : {&FavorTrace::q_features, &FavorTrace::k_features, &FavorTrace::numerator}) {
      REQUIRE((plain.*member).grad().defined());
      REQUIRE((shadowed.*member).grad().defined());
      CHECK(attnlab::testing::bitwise_equal((plain.*member).value(), (shadowed.*member).value()));
      CHECK(attnlab::testing::bitwise_equal((plain.*member).grad(), (shadowed.*member).grad()));
    }
  }

  TEST_CASE("LISA's trace after a shadow step is the training step's") {
    // The exact mode's replay reset LISA's trace before nn::FreezeTracesGuard.
    auto last_trace = [](bool shadow) {
      LISA model(lisa_config(small_data().num_items));
      return after_last_step(model, shadow, [&] { return model.last_trace(); });
    };
    const LisaTrace plain = last_trace(false), shadowed = last_trace(true);
    REQUIRE(plain.histograms.defined());
    REQUIRE(shadowed.histograms.defined());
    CHECK(attnlab::testing::bitwise_equal(plain.histograms.value(), shadowed.histograms.value()));
    CHECK(attnlab::testing::bitwise_equal(plain.tables.value(), shadowed.tables.value()));
  }

  TEST_CASE("LISA with the shadow (its exact attention mode) trains bit-identically") {
    const Trained plain = train_lisa(false), shadowed = train_lisa(true);
    CHECK(same_state(plain.state, shadowed.state));
    REQUIRE(plain.result.epochs.size() == shadowed.result.epochs.size());
    for (std::size_t e = 0; e < plain.result.epochs.size(); ++e)
      CHECK(plain.result.epochs[e].loss == shadowed.result.epochs[e].loss);
    CHECK(plain.temperature_step == shadowed.temperature_step);
    CHECK(attnlab::testing::bitwise_equal(plain.usage.counts, shadowed.usage.counts));
    REQUIRE(shadowed.records.size() == 4);
    for (const ShadowRecord& r : shadowed.records) {
      REQUIRE(r.attention.size() == 1);
      CHECK(r.attention[0].name == "attention");
      CHECK(r.attention[0].relative_error > 0);  // 2 x 4 codewords are not the items
      CHECK(std::isfinite(r.all.cosine));
      CHECK(r.loss != r.exact_loss);
    }
  }

  TEST_CASE("the exact kernel as its own shadow agrees exactly: the same masks are replayed") {
    // softmax-fused with attention-weight dropout against itself: only if every dropout mask
    // (inputs, attention weights, residuals) is drawn again from the same generator states are
    // the two gradients and outputs identical.
    const Trained t = train("softmax-fused", true);
    REQUIRE(!t.records.empty());
    for (const ShadowRecord& r : t.records) {
      CHECK(r.loss == r.exact_loss);
      CHECK(r.all.relative_error == 0.0);
      for (const Agreement& a : r.attention) CHECK(a.relative_error == 0.0);
      for (const Agreement& a : r.attention_local) CHECK(a.relative_error == 0.0);
    }
  }

  TEST_CASE("FAVOR+ against exact attention: every layer - module and parameter compared") {
    const Trained t = train("favor", true);
    REQUIRE(t.records.size() == 4);
    const ShadowRecord& r = t.records.front();
    CHECK(r.step == 2);
    CHECK(r.epoch == 1);
    CHECK(r.batch == 2);
    CHECK(std::isfinite(r.exact_loss));
    CHECK(r.loss != r.exact_loss);  // 8 random features are not exact attention
    CHECK(r.all.relative_error > 0);
    CHECK(r.all.cosine < 1.0);
    CHECK(r.all.cosine > 0.0);  // the same model: the gradients point roughly the same way
    REQUIRE(r.attention.size() == 2);
    CHECK(r.attention[0].name == "blocks.0.attn");
    CHECK(r.attention[1].name == "blocks.1.attn");
    CHECK(r.attention[0].relative_error > 0);
    // The first layer sees the same inputs in both models: local and end to end agree; the
    // second sees the first's exact output in the exact model.
    REQUIRE(r.attention_local.size() == 2);
    CHECK(r.attention_local[0].relative_error == doctest::Approx(r.attention[0].relative_error));
    CHECK(r.attention_local[1].relative_error != r.attention[1].relative_error);
    CHECK(r.attention_local[1].relative_error > 0);
    std::vector<std::string> layers;
    for (const Agreement& a : r.layers) layers.push_back(a.name);
    CHECK(layers ==
          std::vector<std::string>{
              "item_embedding", "position_embedding", "blocks.0", "blocks.1", "final_norm"});
    SASRec model(small_config(small_data().num_items, "favor"));
    CHECK(r.parameters.size() == model.named_parameters().size());
    for (const Agreement& a : r.modules) {
      CAPTURE(a.name);
      CHECK(std::isfinite(a.cosine));
      CHECK(a.exact_norm >= 0);
    }
  }

  TEST_CASE("a shadow step that throws still puts back the step's gradients and state") {
    // A user's counterpart whose replay of the approximation fails once it has put the state of
    // before the step back (FAVOR+'s redraw counter and the dropout generator are then behind).
    struct Failing : ExactCounterpart {
      SequenceRecommender* model;
      std::vector<std::string> attention_layers() const override { return {}; }
      void run(bool exact,
               const SequenceRecommender::StepState& before,
               const std::function<void()>& fn,
               AttentionOutputs&) override {
        model->restore_step_state(before);
        if (!exact)
          throw ValueError("replay failed");
        fn();
      }
    };
    const SplitDataset data = small_data();
    SASRec model(small_config(data.num_items, "favor"));
    auto failing = std::make_unique<Failing>();
    failing->model = &model;
    ShadowOptions so;
    so.every = 1;
    GradientShadow g(model, so, std::move(failing));
    std::vector<int64_t> users(16);
    for (int64_t u = 0; u < 16; ++u) users[u] = u;
    const TrainBatch batch = make_batch(data, users, 12, RngKey{1, 2});
    TrainStep step;
    step.step = 1;
    step.data = &batch;
    step.before = model.capture_step_state();
    recommendation_loss(model, batch, LossKind::BCE).backward();
    std::vector<Tensor> grads;
    for (const Var& p : model.parameters()) grads.push_back(p.grad().clone());
    const auto after = model.capture_step_state();
    CHECK_THROWS_WITH_AS(g.observe(model, step), "replay failed", ValueError);
    const std::vector<Var> params = model.parameters();
    for (std::size_t i = 0; i < params.size(); ++i)
      CHECK(attnlab::testing::bitwise_equal(params[i].grad(), grads[i]));
    const auto now = model.capture_step_state();
    CHECK(same_state(now->forward.buffers, after->forward.buffers));
    REQUIRE(now->forward.generators.size() == after->forward.generators.size());
    for (std::size_t i = 0; i < now->forward.generators.size(); ++i)
      CHECK(now->forward.generators[i].stream == after->forward.generators[i].stream);
  }

  TEST_CASE("shadow: bad options and models without a counterpart are refused") {
    const SplitDataset data = small_data();
    SASRec model(small_config(data.num_items, "favor"));
    ShadowOptions every0;
    every0.every = 0;
    CHECK_THROWS_WITH_AS(
        GradientShadow(model, every0), doctest::Contains("every must be >= 1"), ValueError);
    ShadowOptions unknown;
    unknown.exact = "no-such-kind";
    CHECK_THROWS_WITH_AS(
        GradientShadow(model, unknown), doctest::Contains("'no-such-kind' is unknown"), ValueError);
    PopularityRecommender popularity(data, 12);
    CHECK_THROWS_WITH_AS(GradientShadow(popularity, ShadowOptions{}),
                         doctest::Contains("has no exact counterpart"),
                         ValueError);
  }

  TEST_CASE("set_grad and restore_forward_state check what they put back") {
    Var p = ag::param(zeros({2, 3}, kFloat32));
    CHECK_THROWS_WITH_AS(p.set_grad(zeros({3, 2}, kFloat32)),
                         doctest::Contains("set_grad: the gradient has shape [3, 2]"),
                         ShapeError);
    CHECK_THROWS_AS(p.set_grad(zeros({2, 3}, kFloat64)), DTypeError);
    p.set_grad(ones({2, 3}, kFloat32));
    CHECK(p.grad().flat(5) == 1.0);
    SASRec model(small_config(50, "favor"));
    const ForwardState s = capture_forward_state(model);
    CHECK(restore_forward_state(model, s) ==
          static_cast<int64_t>(s.buffers.size() + s.generators.size()));
    ForwardState wrong = s;
    wrong.buffers.front().second = zeros({1}, kFloat32);
    CHECK_THROWS_WITH_AS(restore_forward_state(model, wrong),
                         doctest::Contains("restore_forward_state: buffer '"),
                         ShapeError);
  }
}
