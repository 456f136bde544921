#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "core/core.hpp"
#include "layers/recommender/sasrec.hpp"
#include "layers/recommender/seqrec_data.hpp"
#include "layers/recommender/seqrec_eval.hpp"
#include "layers/recommender/seqrec_trainer.hpp"
#include "tests/scratch_path.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::nn;
using namespace attnlab::rec;

namespace {

std::string scratch(const std::string& name) {
  return attnlab::testing::scratch_path("seqrec_" + name);
}

// A recommender whose scores are fixed per item (for hand-computed rankings).
class FixedScores : public SequenceRecommender {
 public:
  FixedScores(std::vector<float> item_scores, int64_t maxlen)
      : SequenceRecommender("FixedScores"), maxlen_(maxlen) {
    table_ = from_vector(item_scores, {static_cast<int64_t>(item_scores.size()), 1});
  }
  Var hidden(const Tensor& ids) override {
    return ag::constant(ones({ids.size(0), ids.size(1), 1}));
  }
  Var item_vectors(const Tensor& ids) override {
    return ag::constant(index_select(table_, 0, ids));
  }
  int64_t num_items() const override { return table_.size(0) - 1; }
  int64_t max_length() const override { return maxlen_; }

 private:
  Tensor table_;
  int64_t maxlen_;
};

SASRecConfig tiny_config(int64_t items) {
  SASRecConfig c;
  c.num_items = items;
  c.max_length = 16;
  c.dim = 16;
  c.blocks = 1;
  c.dropout = 0.1;
  c.seed = 3;
  return c;
}

SplitDataset tiny_synthetic() {
  SyntheticConfig sc;
  sc.users = 300;
  sc.items = 60;
  sc.topics = 4;
  sc.min_length = 12;
  sc.max_length = 24;
  sc.period = 4;
  sc.seed = 5;
  return leave_one_out(synthetic_sequences(sc));
}

}  // namespace

TEST_SUITE("layers.seqrec") {
  TEST_CASE("the SASRec-format loader reads users in id order and keeps line order") {
    const SequenceDataset d = parse_sasrec_text("2 7\n1 3\n1 1\n2 5\n1 9\n\n", "mem");
    CHECK(d.num_users() == 2);
    CHECK(d.num_items == 9);
    CHECK(d.sequences[0] == std::vector<int64_t>{3, 1, 9});
    CHECK(d.sequences[1] == std::vector<int64_t>{7, 5});
    CHECK(d.num_interactions() == 5);
  }

  TEST_CASE("malformed SASRec lines name the file and the line") {
    CHECK_THROWS_WITH_AS(parse_sasrec_text("1 2\n1 x\n", "f.txt"),
                         doctest::Contains("f.txt:2: item id 'x'"),
                         IOError);
    CHECK_THROWS_WITH_AS(parse_sasrec_text("1 2\n3\n", "f.txt"),
                         doctest::Contains("f.txt:2: expected 'user item'"),
                         IOError);
    CHECK_THROWS_WITH_AS(
        parse_sasrec_text("1 2 3\n", "f.txt"), doctest::Contains("f.txt:1:"), IOError);
    CHECK_THROWS_WITH_AS(parse_sasrec_text("0 2\n", "f.txt"),
                         doctest::Contains("user id '0' is not a positive"),
                         IOError);
    CHECK_THROWS_WITH_AS(parse_sasrec_text("1 2\n\n1 3\n", "f.txt"),
                         doctest::Contains("f.txt:2: blank line"),
                         IOError);
    CHECK_THROWS_WITH_AS(parse_sasrec_text("", "f.txt"), doctest::Contains("empty file"), IOError);
    CHECK_THROWS_WITH_AS(parse_sasrec_text("1 99999999999999999999\n", "f.txt"),
                         doctest::Contains("f.txt:1:"),
                         IOError);
    CHECK_THROWS_AS(load_sasrec_file("/nonexistent/ml.txt"), IOError);
  }

  TEST_CASE("the MovieLens ratings loader sorts by time and drops rare items") {
    // Item 30 has 1 rating: dropped with min_item_count 2. User 5's ratings arrive out of order.
    const std::string text =
        "5::10::4::300\n5::20::3::100\n7::20::5::50\n7::10::1::60\n5::30::2::200\n";
    const SequenceDataset d = parse_movielens_text(text, "ratings.dat", 2);
    CHECK(d.num_users() == 2);
    CHECK(d.num_items == 2);
    // User 5 (first seen) in time order: 20 (t=100), [30 dropped], 10 (t=300); items numbered by
    // first appearance after sorting: 20 -> 1, 10 -> 2.
    CHECK(d.sequences[0] == std::vector<int64_t>{1, 2});
    CHECK(d.sequences[1] == std::vector<int64_t>{1, 2});
    CHECK_THROWS_WITH_AS(parse_movielens_text("5::10::4\n", "r.dat"),
                         doctest::Contains("r.dat:1: expected"),
                         IOError);
    CHECK_THROWS_WITH_AS(parse_movielens_text("5::10::4::x\n", "r.dat"),
                         doctest::Contains("Timestamp 'x'"),
                         IOError);
    CHECK_THROWS_WITH_AS(parse_movielens_text("5::10::4::1\n", "r.dat", 5),
                         doctest::Contains("no item has 5"),
                         IOError);
  }

  TEST_CASE("MovieLens-1M (when present) matches its published statistics") {
    const std::string path = std::string(ATTNLAB_SOURCE_DIR) + "/../shared/data/ml-1m.txt";
    if (!std::ifstream(path).good()) {
      MESSAGE("skipped: " << path << " is absent");
      return;
    }
    const SequenceDataset d = load_sasrec_file(path);
    CHECK(d.num_users() == 6040);
    CHECK(d.num_items == 3416);
    CHECK(d.num_interactions() == 999611);
  }

  TEST_CASE("the synthetic generator is deterministic and has the structure it promises") {
    SyntheticConfig sc;
    sc.users = 50;
    sc.items = 100;
    const SequenceDataset a = synthetic_sequences(sc), b = synthetic_sequences(sc);
    CHECK(a.sequences == b.sequences);
    sc.seed = 2;
    CHECK(synthetic_sequences(sc).sequences != a.sequences);
    for (const auto& s : a.sequences) {
      CHECK(static_cast<int64_t>(s.size()) >= sc.min_length);
      CHECK(static_cast<int64_t>(s.size()) <= sc.max_length);
      for (int64_t item : s) CHECK((item >= 1 && item <= sc.items));
    }
    CHECK_THROWS_AS(synthetic_sequences(SyntheticConfig{10, 5, 20}), ValueError);
  }

  TEST_CASE("leave-one-out split and right alignment") {
    SequenceDataset d;
    d.num_items = 9;
    d.sequences = {{1, 2, 3, 4}, {5, 6}};
    const SplitDataset s = leave_one_out(d);
    CHECK(s.train[0] == std::vector<int64_t>{1, 2});
    CHECK(s.valid[0] == 3);
    CHECK(s.test[0] == 4);
    CHECK(s.train[1] == std::vector<int64_t>{5, 6});  // too short: training only
    CHECK(s.valid[1] == 0);
    int64_t row[4];
    right_align({7, 8, 9, 10, 11}, 4, row);
    CHECK(std::vector<int64_t>(row, row + 4) == std::vector<int64_t>{8, 9, 10, 11});
    right_align({7}, 4, row);
    CHECK(std::vector<int64_t>(row, row + 4) == std::vector<int64_t>{0, 0, 0, 7});
  }

  TEST_CASE("metrics against hand-computed rankings") {
    CHECK(ndcg_at(0, 10) == 1.0);
    CHECK(ndcg_at(2, 10) == doctest::Approx(0.5));
    CHECK(ndcg_at(10, 10) == 0.0);
    const float s[] = {0.5f, 0.9f, 0.1f, 0.5f, 0.7f};
    RankDetail detail;
    const int64_t rank = rank_of_positive(s, 5, RngKey{1, 2}, 0, &detail);
    CHECK(detail.higher == 2);  // 0.9 and 0.7 beat it
    CHECK(detail.ties == 1);    // the second 0.5 ties: it places 2nd or 3rd
    CHECK((rank == 2 || rank == 3));
    // Item i scores i: a positive p ranks by how many sampled negatives exceed p.
    SequenceDataset d;
    d.num_items = 20;
    d.sequences = {{1, 2, 3, 20}, {1, 2, 10, 5}};
    SplitDataset split = leave_one_out(d);
    std::vector<float> scores(21);
    for (int i = 0; i <= 20; ++i) scores[i] = static_cast<float>(i);
    FixedScores model(scores, 4);
    EvalOptions o;
    o.test = true;
    o.full_ranking = true;
    const RankingMetrics m = evaluate(model, split, o);
    CHECK(m.users == 2);
    // User 0: positive 20 is the best item: rank 0 both ways. User 1: positive 5; in full ranking
    // items 6..20 except the validation item 10 (excluded) and... 15 items above 5 minus 10 -> 14.
    CHECK(m.full_hr10 == doctest::Approx(0.5));
    CHECK(m.full_ndcg10 == doctest::Approx(0.5));
    // Sampled: user 0's positive ties only with drawn copies of itself (a few of the 100
    // draws); user 1's has about 80 of the 100 negatives (items 6..20) above it.
    CHECK(m.hr10 == 0.5);
  }

  TEST_CASE("a tiny SASRec beats the popularity baseline on synthetic data") {
    const SplitDataset data = tiny_synthetic();
    PopularityRecommender pop(data, 16);
    EvalOptions eo;
    eo.key = RngKey{9, 9};
    const RankingMetrics base = evaluate(pop, data, eo);
    SASRec model(tiny_config(data.num_items));
    TrainConfig tc;
    tc.epochs = 12;
    tc.batch_size = 32;
    tc.lr = 5e-3;
    tc.eval_every = 12;
    tc.seed = 4;
    const TrainResult r = train_recommender(model, data, tc);
    MESSAGE("popularity NDCG@10 " << base.ndcg10 << ", SASRec " << r.best_valid.ndcg10);
    CHECK(r.epochs.size() == 12);
    CHECK(r.epochs.back().loss < r.epochs.front().loss);
    CHECK(r.best_valid.ndcg10 > base.ndcg10 + 0.05);
    CHECK(r.test.hr10 > 0);
  }

  TEST_CASE("checkpoint and resume continue bit-identically") {
    const SplitDataset data = tiny_synthetic();
    TrainConfig tc;
    tc.epochs = 4;
    tc.batch_size = 64;
    tc.eval_every = 2;
    tc.seed = 8;
    SASRec straight(tiny_config(data.num_items));
    const TrainResult full = train_recommender(straight, data, tc);

    const std::string ckpt = scratch("ckpt.npz");
    SASRec first(tiny_config(data.num_items));
    TrainConfig part = tc;
    part.epochs = 2;
    part.checkpoint = ckpt;
    train_recommender(first, data, part);
    SASRec resumed(tiny_config(data.num_items));
    TrainConfig rest = tc;
    rest.checkpoint = ckpt;
    rest.resume = true;
    const TrainResult second = train_recommender(resumed, data, rest);
    REQUIRE(second.epochs.size() == 2);
    CHECK(second.epochs[0].loss == full.epochs[2].loss);
    CHECK(second.epochs[1].loss == full.epochs[3].loss);
    CHECK(second.test.ndcg10 == full.test.ndcg10);
    CHECK(second.test.tie_rate == full.test.tie_rate);
    CHECK(second.best_valid.ndcg10 == full.best_valid.ndcg10);
    CHECK(second.best_valid.tie_rate == full.best_valid.tie_rate);
    const auto a = straight.parameters(), b = resumed.parameters();
    for (std::size_t i = 0; i < a.size(); ++i)
      CHECK(testing::bitwise_equal(a[i].value(), b[i].value()));
    std::remove(ckpt.c_str());
    std::remove((ckpt + ".best.npz").c_str());
  }

  TEST_CASE("a resume under other training settings is refused - not run with the old lr") {
    // Adam restores its learning rate from the checkpoint: a resume with another lr ran on with
    // the old one, and a resume with another seed or batch size continued another trajectory.
    const SplitDataset data = tiny_synthetic();
    const std::string ckpt = scratch("ckpt_settings.npz");
    TrainConfig tc;
    tc.epochs = 2;
    tc.batch_size = 64;
    tc.eval_every = 2;
    tc.seed = 8;
    tc.checkpoint = ckpt;
    // What the caller built the model with; a NaN text must still equal itself on resume.
    tc.model_settings = {{"attention", "softmax-fused"}, {"dropout", "0.2"}, {"epsilon", "nan"}};
    SASRec first(tiny_config(data.num_items));
    train_recommender(first, data, tc);

    SASRec resumed(tiny_config(data.num_items));
    const auto before = resumed.parameters();
    std::vector<Tensor> initial;
    for (const auto& p : before) initial.push_back(p.value().clone());
    TrainConfig rest = tc;
    rest.resume = true;
    rest.epochs = 4;
    rest.lr = 2e-3;
    rest.seed = 9;
    const std::string refused = "cannot resume from '" + ckpt +
                                "': it was trained with other settings (lr 0.001 there, 0.002 "
                                "here, seed 8 there, 9 here)";
    CHECK_THROWS_WITH_AS(
        train_recommender(resumed, data, rest), doctest::Contains(refused.c_str()), ValueError);
    for (std::size_t i = 0; i < before.size(); ++i)  // refused before anything was restored
      CHECK(testing::bitwise_equal(before[i].value(), initial[i]));
    rest.lr = tc.lr;
    rest.seed = tc.seed;
    rest.batch_size = 32;
    CHECK_THROWS_WITH_AS(train_recommender(resumed, data, rest),
                         doctest::Contains("(batch_size 64 there, 32 here)"),
                         ValueError);
    rest.batch_size = tc.batch_size;
    rest.model_settings = {{"attention", "favor"}, {"dropout", "0.1"}, {"epsilon", "nan"}};
    CHECK_THROWS_WITH_AS(train_recommender(resumed, data, rest),
                         doctest::Contains("(model.attention differs, model.dropout 0.2 there, "
                                           "0.1 here)"),
                         ValueError);
    // What may change: more epochs, another validation interval and patience, full ranking.
    rest.model_settings = tc.model_settings;
    rest.eval_every = 1;
    rest.patience = 5;
    rest.full_ranking = true;
    const TrainResult more = train_recommender(resumed, data, rest);
    CHECK(more.epochs.size() == 2);
    std::remove(ckpt.c_str());
    std::remove((ckpt + ".best.npz").c_str());
  }

  TEST_CASE("full softmax loss trains too and bad configurations are refused") {
    const SplitDataset data = tiny_synthetic();
    SASRec model(tiny_config(data.num_items));
    TrainConfig tc;
    tc.epochs = 2;
    tc.loss = LossKind::CE;
    tc.eval_every = 1;
    const TrainResult r = train_recommender(model, data, tc);
    CHECK(r.epochs[1].loss < r.epochs[0].loss);
    tc.loss = static_cast<LossKind>(7);
    CHECK_THROWS_WITH_AS(train_recommender(model, data, tc),
                         doctest::Contains("unknown loss kind 7 (known: bce, ce)"),
                         ValueError);
    CHECK(enum_names(LossKind{}).parse("ce", "--loss") == LossKind::CE);
    CHECK_THROWS_WITH_AS(enum_names(LossKind{}).parse("hinge", "--loss"),
                         doctest::Contains("--loss: 'hinge' is unknown (known: bce, ce)"),
                         ValueError);
    tc.loss = LossKind::BCE;
    tc.resume = true;
    CHECK_THROWS_WITH_AS(train_recommender(model, data, tc),
                         doctest::Contains("resume needs a checkpoint"),
                         ValueError);
    // A checkpoint that cannot be written is refused before the first epoch, not at the first
    // validation (eval_every epochs of work later).
    tc.resume = false;
    tc.eval_every = 2;
    tc.checkpoint = "/nonexistent-attnlab-dir/ckpt.npz";
    int epochs_run = 0;
    TrainCallbacks count;
    count.on_epoch = [&](const EpochLog&) {
      ++epochs_run;
    };
    CHECK_THROWS_WITH_AS(train_recommender(model, data, tc, count),
                         doctest::Contains("checkpoint: cannot write '/nonexistent-attnlab-dir/"),
                         IOError);
    CHECK(epochs_run == 0);
    CHECK_THROWS_AS(SASRec(SASRecConfig{}), ValueError);
    CHECK_THROWS_AS(model.hidden(zeros({2, 40}, kInt64)), ShapeError);
  }
}
