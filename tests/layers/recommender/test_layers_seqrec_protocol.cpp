// The SASRec evaluation protocol on hand-made data, with a recommender whose scores the test sets:
// which candidates are scored, what the inputs hold, the metrics of fixed score vectors (ties,
// NaN and ±inf included), a user who rated every item, and a training loss that turns NaN.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <regex>
#include <set>
#include <sstream>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/recommender/sasrec.hpp"
#include "layers/recommender/seqrec_eval.hpp"
#include "layers/recommender/seqrec_trainer.hpp"
#include "tests/cli_test_helpers.hpp"
#include "tests/scratch_path.hpp"

using namespace attnlab;
using namespace attnlab::nn;
using namespace attnlab::rec;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::string scratch(const std::string& name) {
  return attnlab::testing::scratch_path("seqrec_protocol_" + name);
}

// Scores the test controls, and a record of what evaluate asked for. Sampled ranking (candidates
// [B, C]): column j of every user scores column_scores[j] when set, else its item's score.
// Full ranking (all items, [V]): item i scores item_scores[i].
class ScriptedRecommender : public SequenceRecommender {
 public:
  ScriptedRecommender(int64_t num_items, int64_t maxlen)
      : SequenceRecommender("ScriptedRecommender"),
        item_scores(num_items + 1, 0.0f),
        num_items_(num_items),
        maxlen_(maxlen) {}
  Var hidden(const Tensor& ids) override {
    inputs.push_back(ids.clone());
    return ag::constant(ones({ids.size(0), ids.size(1), 1}));
  }
  Var item_vectors(const Tensor& ids) override {
    const bool sampled = ids.dim() == 2;
    if (sampled)
      candidates.push_back(ids.clone());
    Tensor out = Tensor::empty({ids.numel(), 1}, kFloat32);
    const int64_t columns = sampled ? ids.size(1) : 1;
    for (int64_t i = 0; i < ids.numel(); ++i) {
      const int64_t item = ids.data<int64_t>()[i];
      const bool by_column = sampled && !column_scores.empty();
      out.data<float>()[i] = by_column ? column_scores[i % columns] : item_scores[item];
    }
    Shape shape = ids.shape();
    shape.push_back(1);
    return ag::constant(out.reshape(shape));
  }
  int64_t num_items() const override { return num_items_; }
  int64_t max_length() const override { return maxlen_; }

  std::vector<float> column_scores, item_scores;
  std::vector<Tensor> inputs, candidates;

 private:
  int64_t num_items_, maxlen_;
};

// A model whose loss is finite while its gradient is not: hidden = 1 + 0 sqrt(p) with p = 0 has
// the value 1 and the gradient 0 * inf = NaN with respect to p, so the first update makes p NaN.
class NaNGradientRecommender : public SequenceRecommender {
 public:
  NaNGradientRecommender(int64_t num_items, int64_t maxlen)
      : SequenceRecommender("NaNGradientRecommender"), num_items_(num_items), maxlen_(maxlen) {
    p_ = register_parameter("p", zeros({1}));
    table_ = rand({num_items + 1, 1}, RngKey{4, 4});
  }
  Var hidden(const Tensor& ids) override {
    const Var one = ag::constant(ones({ids.size(0), ids.size(1), 1}));
    return one + ag::sqrt(p_) * 0.0;
  }
  Var item_vectors(const Tensor& ids) override {
    Shape shape = ids.shape();
    shape.push_back(1);
    return ag::constant(index_select(table_, 0, ids.reshape({ids.numel()})).reshape(shape));
  }
  int64_t num_items() const override { return num_items_; }
  int64_t max_length() const override { return maxlen_; }

 private:
  Var p_;
  Tensor table_;
  int64_t num_items_, maxlen_;
};

// A model that trains normally but scores NaN in evaluation (eval mode): its loss stays finite.
class NaNInEvaluation : public SequenceRecommender {
 public:
  NaNInEvaluation(int64_t num_items, int64_t maxlen)
      : SequenceRecommender("NaNInEvaluation"), num_items_(num_items), maxlen_(maxlen) {
    table_ = register_parameter("table", rand({num_items + 1, 1}, RngKey{6, 6}));
  }
  Var hidden(const Tensor& ids) override {
    const double value = is_training() ? 1.0 : NAN;
    return ag::constant(full({ids.size(0), ids.size(1), 1}, value));
  }
  Var item_vectors(const Tensor& ids) override {
    Shape shape = ids.shape();
    shape.push_back(1);
    return ag::reshape(ag::index_select(table_, 0, ids.reshape({ids.numel()})), shape);
  }
  int64_t num_items() const override { return num_items_; }
  int64_t max_length() const override { return maxlen_; }

 private:
  Var table_;
  int64_t num_items_, maxlen_;
};

// User u trains on the 20 consecutive items after (7 u) mod 120, then validates on the next item
// and tests on the one after: 150 items, so 130 items are open to the negatives.
SplitDataset protocol_data(int64_t users) {
  SplitDataset d;
  d.num_items = 150;
  for (int64_t u = 0; u < users; ++u) {
    const int64_t base = (7 * u) % 120;
    std::vector<int64_t> train;
    for (int64_t k = 1; k <= 20; ++k) train.push_back(base + k);
    d.train.push_back(train);
    d.valid.push_back(base + 21);
    d.test.push_back(base + 22);
  }
  return d;
}

// A positional score vector: the positive (column 0) scores `positive`, the 100 negatives 0.1 but
// for the listed columns.
std::vector<float> columns(float positive, const std::vector<std::pair<int, float>>& changed) {
  std::vector<float> s(101, 0.1f);
  s[0] = positive;
  for (const auto& [column, value] : changed) s[column] = value;
  return s;
}

RankingMetrics evaluate_columns(const std::vector<float>& column_scores, int64_t users) {
  const SplitDataset data = protocol_data(users);
  ScriptedRecommender model(data.num_items, 32);
  model.column_scores = column_scores;
  EvalOptions o;
  o.key = RngKey{21, 4};
  return evaluate(model, data, o);
}

// Mean and standard error (over `users` users) of the metrics of a positive whose rank is uniform
// in [first, first + spread].
struct Expected {
  double hr, ndcg, hr_se, ndcg_se;
};
Expected uniform_rank(int64_t first, int64_t spread, int64_t users) {
  double hr = 0, ndcg = 0, hr2 = 0, ndcg2 = 0;
  for (int64_t r = first; r <= first + spread; ++r) {
    const double h = r < 10 ? 1.0 : 0.0, n = ndcg_at(r, 10);
    hr += h;
    ndcg += n;
    hr2 += h * h;
    ndcg2 += n * n;
  }
  const double k = static_cast<double>(spread + 1);
  hr /= k, ndcg /= k, hr2 /= k, ndcg2 /= k;
  const double n = static_cast<double>(users);
  return {hr, ndcg, std::sqrt((hr2 - hr * hr) / n), std::sqrt((ndcg2 - ndcg * ndcg) / n)};
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_SUITE("layers.seqrec_protocol") {
  TEST_CASE("rank_of_positive counts higher and non-finite candidates and breaks ties at random") {
    const RngKey key{7, 3};
    struct Case {
      std::string what;
      std::vector<float> scores;
      int64_t rank, higher;
      bool non_finite, positive_non_finite;
    };
    const std::vector<Case> cases = {
        {"two above", {0.5f, 0.9f, 0.1f, 0.7f, 0.2f}, 2, 2, false, false},
        {"alone", {0.3f}, 0, 0, false, false},
        {"NaN, -inf and +inf count above", {1.0f, kNaN, -kInf, kInf, 0.1f}, 3, 3, true, false},
        {"a NaN positive ranks last", {kNaN, 0.1f, 0.2f}, 2, 2, true, true},
        {"a +inf positive ranks last", {kInf, 0.1f}, 1, 1, true, true},
        {"a -inf positive ranks last", {-kInf, 0.1f, kNaN}, 2, 2, true, true},
    };
    for (const Case& c : cases) {
      CAPTURE(c.what);
      RankDetail d;
      const int64_t count = static_cast<int64_t>(c.scores.size());
      CHECK(rank_of_positive(c.scores.data(), count, key, 0, &d) == c.rank);
      CHECK(d.higher == c.higher);
      CHECK(d.ties == 0);
      CHECK(d.non_finite == c.non_finite);
      CHECK(d.positive_non_finite == c.positive_non_finite);
    }
    // One candidate above and two tied: the rank is uniform in {1, 2, 3}, a function of (key,
    // index). Over 3000 indices each place comes up a third of the time (within 4 standard
    // errors: a false failure has probability below 1e-3).
    const float tied[] = {0.5f, 0.5f, 0.9f, 0.5f};
    RankDetail d;
    rank_of_positive(tied, 4, key, 0, &d);
    CHECK(d.higher == 1);
    CHECK(d.ties == 2);
    const int n = 3000;
    std::vector<int> places(4, 0);
    bool another_key_differs = false;
    for (int i = 0; i < n; ++i) {
      const int64_t rank = rank_of_positive(tied, 4, key, i);
      REQUIRE((rank >= 1 && rank <= 3));
      ++places[rank];
      CHECK(rank_of_positive(tied, 4, key, i) == rank);  // reproducible
      another_key_differs |= rank_of_positive(tied, 4, RngKey{8, 3}, i) != rank;
    }
    const double se = std::sqrt((1.0 / 3) * (2.0 / 3) / n);
    for (int place = 1; place <= 3; ++place)
      CHECK(std::fabs(places[place] / static_cast<double>(n) - 1.0 / 3) <= 4 * se);
    CHECK(another_key_differs);
    CHECK_THROWS_WITH_AS(
        rank_of_positive(tied, 0, key, 0), doctest::Contains("rank_of_positive"), ValueError);
  }

  TEST_CASE(
      "sampled ranking scores the positive and 100 negatives from outside the training items") {
    const SplitDataset data = protocol_data(40);
    for (const bool test_split : {false, true}) {
      CAPTURE(test_split);
      ScriptedRecommender model(data.num_items, 32);
      EvalOptions o;
      o.test = test_split;
      o.key = RngKey{3, 1};
      CHECK(evaluate(model, data, o).users == 40);
      REQUIRE(model.candidates.size() == 1);
      REQUIRE(model.inputs.size() == 1);
      const Tensor& cand = model.candidates[0];
      const Tensor& input = model.inputs[0];
      REQUIRE(cand.shape() == Shape{40, 101});
      bool drew_a_duplicate = false, drew_the_validation_item = false;
      for (int64_t u = 0; u < 40; ++u) {
        const int64_t* row = cand.data<int64_t>() + u * 101;
        CHECK(row[0] == (test_split ? data.test[u] : data.valid[u]));
        const std::set<int64_t> train(data.train[u].begin(), data.train[u].end());
        std::set<int64_t> seen;
        for (int64_t j = 1; j < 101; ++j) {
          CHECK((row[j] >= 1 && row[j] <= data.num_items));
          CHECK(train.count(row[j]) == 0);
          drew_a_duplicate |= !seen.insert(row[j]).second;
          drew_the_validation_item |= row[j] == data.valid[u];
        }
        // The input: the training items (then the validation item for the test), right-aligned.
        std::vector<int64_t> expected(32, 0);
        std::vector<int64_t> seq = data.train[u];
        if (test_split)
          seq.push_back(data.valid[u]);
        std::copy(seq.begin(), seq.end(), expected.end() - seq.size());
        const int64_t* in = input.data<int64_t>() + u * 32;
        CHECK(std::vector<int64_t>(in, in + 32) == expected);
        const bool has_valid = std::find(in, in + 32, data.valid[u]) != in + 32;
        CHECK(has_valid == test_split);
      }
      // Only the training items are excluded: draws repeat, and the validation item (not a
      // training item) is a possible negative in both splits.
      CHECK(drew_a_duplicate);
      CHECK(drew_the_validation_item);
    }
  }

  TEST_CASE("sampled HR@10 and NDCG@10 of fixed score vectors equal the hand-computed values") {
    struct Case {
      std::string what;
      std::vector<float> scores;
      double hr, ndcg;
      bool non_finite = false;
    };
    const double rank1 = 1 / std::log2(3.0), rank3 = 1 / std::log2(5.0);
    const std::vector<Case> cases = {
        {"positive first", columns(0.5f, {}), 1, 1},
        {"three negatives above", columns(0.5f, {{1, 0.9f}, {50, 0.9f}, {100, 0.9f}}), 1, rank3},
        {"ten negatives above",
         columns(0.5f,
                 {{1, 0.9f},
                  {2, 0.9f},
                  {3, 0.9f},
                  {4, 0.9f},
                  {5, 0.9f},
                  {6, 0.9f},
                  {7, 0.9f},
                  {8, 0.9f},
                  {9, 0.9f},
                  {10, 0.9f}}),
         0,
         0},
        {"a NaN negative counts above", columns(1.0f, {{7, kNaN}}), 1, rank1, true},
        {"NaN, -inf and +inf negatives count above",
         columns(1.0f, {{7, kNaN}, {8, -kInf}, {9, kInf}}),
         1,
         rank3,
         true},
        {"a NaN positive is never a hit", columns(kNaN, {}), 0, 0, true},
        {"a +inf positive is never a hit", columns(kInf, {}), 0, 0, true},
        {"a -inf positive is never a hit", columns(-kInf, {}), 0, 0, true},
    };
    for (const Case& c : cases) {
      CAPTURE(c.what);
      const RankingMetrics m = evaluate_columns(c.scores, 40);
      CHECK(m.users == 40);
      CHECK(m.hr10 == doctest::Approx(c.hr));
      CHECK(m.ndcg10 == doctest::Approx(c.ndcg));
      CHECK(m.non_finite_users == (c.non_finite ? 40 : 0));
      CHECK(m.tie_rate == 0);
      CHECK(m.full_tie_rate == -1);  // no full ranking asked for
    }
  }

  TEST_CASE("a positive tied with negatives takes a uniformly random place among them") {
    // 2000 users: the means lie within 4 standard errors of the expectation (a false failure
    // has probability below 1e-4).
    const int64_t users = 2000;
    struct Case {
      std::string what;
      std::vector<float> scores;
      int64_t above, ties;
    };
    std::vector<std::pair<int, float>> nine_above_one_tie;
    for (int j = 1; j <= 9; ++j) nine_above_one_tie.push_back({j, 0.9f});
    nine_above_one_tie.push_back({10, 0.5f});
    const std::vector<Case> cases = {
        {"every negative ties", std::vector<float>(101, 0.5f), 0, 100},
        {"nine above and one tie", columns(0.5f, nine_above_one_tie), 9, 1},
    };
    for (const Case& c : cases) {
      CAPTURE(c.what);
      const RankingMetrics m = evaluate_columns(c.scores, users);
      const Expected e = uniform_rank(c.above, c.ties, users);
      CHECK(std::fabs(m.hr10 - e.hr) <= 4 * e.hr_se);
      CHECK(std::fabs(m.ndcg10 - e.ndcg) <= 4 * e.ndcg_se);
      CHECK(m.tie_rate == 1);
      CHECK(m.non_finite_users == 0);
      // Exactly the ranks of the documented stream: user u draws index 2u of tie_break_key.
      double hr = 0, ndcg = 0;
      for (int64_t u = 0; u < users; ++u) {
        const int64_t rank =
            rank_of_positive(c.scores.data(), 101, tie_break_key(RngKey{21, 4}), 2 * u);
        CHECK((rank >= c.above && rank <= c.above + c.ties));
        hr += rank < 10 ? 1 : 0;
        ndcg += ndcg_at(rank, 10);
      }
      CHECK(m.hr10 == hr / users);
      CHECK(m.ndcg10 == ndcg / users);
    }
  }

  TEST_CASE("full ranking of fixed item scores with NaN and ties equals the hand-computed values") {
    // Every user: train {1, 2}, validation 3, test 20. The test's full ranking excludes 1, 2, 3.
    const int64_t users = 600;
    SplitDataset data;
    data.num_items = 20;
    data.train.assign(users, {1, 2});
    data.valid.assign(users, 3);
    data.test.assign(users, 20);
    ScriptedRecommender model(20, 8);
    EvalOptions o;
    o.test = true;
    o.full_ranking = true;
    o.key = RngKey{5, 5};
    auto run = [&](std::vector<std::pair<int, float>> changed) {
      for (int i = 0; i <= 20; ++i) model.item_scores[i] = static_cast<float>(i);
      for (const auto& [item, value] : changed) model.item_scores[item] = value;
      return evaluate(model, data, o);
    };
    // The positive scores highest; the excluded items 1..3 cannot count even when above it.
    RankingMetrics m = run({{1, 50.0f}, {2, kNaN}, {3, kInf}});
    CHECK(m.full_hr10 == 1);
    CHECK(m.full_ndcg10 == 1);
    // A NaN or -inf item counts above the positive.
    m = run({{7, kNaN}, {8, -kInf}});
    CHECK(m.full_hr10 == 1);
    CHECK(m.full_ndcg10 == doctest::Approx(1 / std::log2(4.0)));
    CHECK(m.non_finite_users == users);  // every user's full ranking holds items 7 and 8
    CHECK(m.full_tie_rate == 0);
    // A NaN positive is never a hit.
    m = run({{20, kNaN}});
    CHECK(m.full_hr10 == 0);
    CHECK(m.full_ndcg10 == 0);
    CHECK(m.hr10 == 0);
    CHECK(m.non_finite_users == users);
    // Five items tie with the positive: its rank is uniform in [0, 5].
    m = run({{15, 20.0f}, {16, 20.0f}, {17, 20.0f}, {18, 20.0f}, {19, 20.0f}});
    const Expected e = uniform_rank(0, 5, users);
    CHECK(m.full_hr10 == 1);
    CHECK(std::fabs(m.full_ndcg10 - e.ndcg) <= 4 * e.ndcg_se);
    CHECK(m.full_tie_rate == 1);
    CHECK(m.non_finite_users == 0);
    // Exactly the ranks of the documented stream: user u's full ranking draws index 2u + 1; the
    // candidates are the positive and items 4..19 (scores 4..14, then 20 five times).
    std::vector<float> full = {20.0f};
    for (int i = 4; i <= 19; ++i) full.push_back(i >= 15 ? 20.0f : static_cast<float>(i));
    double ndcg = 0;
    for (int64_t u = 0; u < users; ++u)
      ndcg += ndcg_at(rank_of_positive(full.data(), 17, tie_break_key(o.key), 2 * u + 1), 10);
    CHECK(m.full_ndcg10 == ndcg / users);
  }

  TEST_CASE("evaluate refuses a user who rated every item before scoring anyone") {
    SplitDataset data = protocol_data(3);
    data.train[1].clear();
    for (int64_t i = 1; i <= data.num_items; ++i) data.train[1].push_back(i);
    ScriptedRecommender model(data.num_items, 32);
    for (const bool test_split : {false, true}) {
      EvalOptions o;
      o.test = test_split;
      CHECK_THROWS_WITH_AS(evaluate(model, data, o),
                           doctest::Contains("evaluate: user 1 rated all 150 items in training"),
                           ValueError);
    }
    CHECK(model.inputs.empty());  // refused before any work
  }

  TEST_CASE(
      "a non-finite training loss stops training and leaves the checkpoint and log as they were") {
    SyntheticConfig sc;
    sc.users = 80;
    sc.items = 40;
    sc.min_length = 8;
    sc.max_length = 14;
    sc.seed = 2;
    const SplitDataset data = leave_one_out(synthetic_sequences(sc));
    SASRecConfig mc;
    mc.num_items = data.num_items;
    mc.max_length = 12;
    mc.dim = 8;
    mc.blocks = 1;
    SASRec model(mc);
    TrainConfig tc;
    tc.epochs = 3;
    tc.batch_size = 32;
    tc.eval_every = 1;
    tc.checkpoint = scratch("nan.ckpt.npz");
    const std::string best = tc.checkpoint + ".best.npz";
    std::string checkpoint_bytes, best_bytes;
    std::vector<int64_t> reported;  // the epochs a log would have written
    TrainCallbacks callbacks;
    callbacks.on_epoch = [&](const EpochLog& e) {
      reported.push_back(e.epoch);
    };
    // After the first epoch's evaluation and checkpoint, the parameters turn NaN.
    callbacks.after_epoch = [&](const EpochLog& e) {
      if (e.epoch != 1)
        return;
      checkpoint_bytes = file_bytes(tc.checkpoint);
      best_bytes = file_bytes(best);
      for (const Var& p : model.parameters()) p.value().fill(NAN);
    };
    CHECK_THROWS_WITH_AS(
        train_recommender(model, data, tc, callbacks),
        doctest::Contains("train_recommender: the training loss is NaN at epoch 2, batch 1 of 3"),
        ValueError);
    REQUIRE(!checkpoint_bytes.empty());
    CHECK(file_bytes(tc.checkpoint) == checkpoint_bytes);
    CHECK(file_bytes(best) == best_bytes);
    CHECK(reported == std::vector<int64_t>{1});
    for (const std::string& f : {tc.checkpoint, best}) std::remove(f.c_str());
  }

  TEST_CASE("an update that makes a parameter non-finite stops training before any evaluation") {
    const SplitDataset data = protocol_data(20);
    NaNGradientRecommender model(data.num_items, 32);
    TrainConfig tc;
    tc.epochs = 2;
    tc.batch_size = 64;  // one batch per epoch: the next loss comes after the evaluation
    tc.eval_every = 1;
    tc.checkpoint = scratch("nan_update.ckpt.npz");
    TrainCallbacks callbacks;
    int64_t reported = 0;
    callbacks.on_epoch = [&](const EpochLog&) {
      ++reported;
    };
    CHECK_THROWS_WITH_AS(train_recommender(model, data, tc, callbacks),
                         doctest::Contains("train_recommender: the update of epoch 1, batch 1 of 1 "
                                           "made parameter 'p' NaN or infinite"),
                         ValueError);
    // Neither a checkpoint nor a best model of the NaN parameters, no log line.
    CHECK_FALSE(std::ifstream(tc.checkpoint).good());
    CHECK_FALSE(std::ifstream(tc.checkpoint + ".best.npz").good());
    CHECK(reported == 0);
    for (const std::string& f : {tc.checkpoint, tc.checkpoint + ".best.npz"})
      std::remove(f.c_str());
  }

  TEST_CASE("an evaluation with non-finite scores is never kept as the best model") {
    const SplitDataset data = protocol_data(20);
    NaNInEvaluation model(data.num_items, 32);
    TrainConfig tc;
    tc.epochs = 2;
    tc.eval_every = 1;
    tc.checkpoint = scratch("nan_eval.ckpt.npz");
    const TrainResult r = train_recommender(model, data, tc);
    REQUIRE(r.epochs.size() == 2);
    CHECK(r.epochs[0].valid.non_finite_users == 20);
    CHECK(r.epochs[0].valid.ndcg10 == 0);
    CHECK(r.best_epoch == 0);  // no evaluation qualified
    CHECK_FALSE(std::ifstream(tc.checkpoint + ".best.npz").good());
    CHECK(r.test.non_finite_users == 20);
    std::remove(tc.checkpoint.c_str());
    std::remove((tc.checkpoint + ".best.npz").c_str());
  }

  TEST_CASE("attnlab train stops on a non-finite loss with one line and a non-zero exit") {
    const std::string log = scratch("cli_nan.jsonl");
    const attnlab_test::CliRun r = attnlab_test::run_cli(
        "train --synthetic-users 40 --synthetic-items 30 --synthetic-max-length 20 --maxlen 16 "
        "--dim 8 --blocks 1 --epochs 3 --eval-every 1 --batch 16 --lr 1e30 --log " +
        log);
    CAPTURE(r.out);
    CHECK(r.status == 1);
    CHECK(r.out.find("attnlab train: error: train_recommender: the training loss is ") !=
          std::string::npos);
    CHECK(r.out.find(" at epoch ") != std::string::npos);
    std::remove(log.c_str());
  }

  TEST_CASE("attnlab train --log writes one line per epoch in the log format") {
    // The format the trainer wrote before the CLI took the log over (cli::epoch_log_line): fixed
    // decimals per field, the validation fields only on evaluated epochs.
    const std::string log = scratch("cli_format.jsonl");
    const attnlab_test::CliRun r = attnlab_test::run_cli(
        "train --synthetic-users 40 --synthetic-items 30 --synthetic-max-length 20 --maxlen 16 "
        "--dim 8 --blocks 1 --epochs 3 --eval-every 2 --batch 16 --threads 1 --log " +
        log);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    std::istringstream lines(attnlab_test::read_text(log));
    const std::string head = R"(\{"epoch": (\d+), "loss": \d+\.\d{6}, "seconds": \d+\.\d{3}, )"
                             R"("sequences_per_second": \d+\.\d)";
    const std::string valid =
        R"(, "valid_hr10": \d\.\d{6}, "valid_ndcg10": \d\.\d{6}, "valid_tie_rate": \d\.\d{6}, )"
        R"("valid_non_finite_users": 0)";
    const std::regex plain(head + "\\}"), evaluated(head + valid + "\\}");
    std::vector<std::string> got;
    for (std::string line; std::getline(lines, line);) got.push_back(line);
    REQUIRE(got.size() == 3);
    CHECK(std::regex_match(got[0], plain));
    CHECK(std::regex_match(got[1], evaluated));  // eval_every 2
    CHECK(std::regex_match(got[2], evaluated));  // the last epoch
    CHECK(got[2].rfind("{\"epoch\": 3, ", 0) == 0);
    std::remove(log.c_str());
  }

  TEST_CASE("attnlab train prints and logs the tie rate of every evaluation") {
    // One codebook of two codewords: LISA-Base scores against two distinct vectors, so nearly
    // every positive ties with negatives.
    const std::string log = scratch("cli_ties.jsonl");
    const attnlab_test::CliRun r = attnlab_test::run_cli(
        "train --synthetic-users 40 --synthetic-items 30 --synthetic-max-length 20 --maxlen 16 "
        "--dim 8 --epochs 2 --eval-every 1 --batch 16 --attention lisa-base --codebooks 1x2 "
        "--full-ranking --log " +
        log);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("epoch 1: loss ") != std::string::npos);
    CHECK(r.out.find(", ties ") != std::string::npos);
    CHECK(r.out.find("valid ties  test ties  full ties") != std::string::npos);
    const std::string lines = attnlab_test::read_text(log);
    CHECK(lines.find("\"valid_tie_rate\": ") != std::string::npos);
    CHECK(lines.find("\"valid_non_finite_users\": 0") != std::string::npos);
    std::remove(log.c_str());
  }
}
