// Determinism (issue 11): the same seed gives bit-identical losses and metrics at 1 and 2
// threads, for a short SASRec training with the fused softmax kernel and with FAVOR+ (the kernels
// split their work over the pool; every output element is computed by one task in a fixed order).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/core.hpp"
#include "layers/recommender/sasrec.hpp"
#include "layers/recommender/seqrec_trainer.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;

namespace {

struct Run {
  std::vector<double> losses;
  std::vector<rec::RankingMetrics> valid;
  rec::TrainResult result;
  NamedTensors state;
};

Run train(const std::string& attention, int threads) {
  testing::ThreadCountGuard guard(threads);
  rec::SyntheticConfig sc;
  sc.users = 48;
  sc.items = 50;
  sc.min_length = 8;
  sc.max_length = 30;
  sc.seed = 21;
  const rec::SplitDataset data = rec::leave_one_out(rec::synthetic_sequences(sc));
  rec::SASRecConfig mc;
  mc.num_items = data.num_items;
  mc.max_length = 24;
  mc.dim = 16;
  mc.blocks = 2;
  mc.heads = 2;
  mc.dropout = 0.2;
  mc.attention = attention;
  mc.seed = 4;
  rec::SASRec model(mc);
  rec::TrainConfig tc;
  tc.epochs = 2;
  tc.batch_size = 24;
  tc.lr = 5e-3;
  tc.eval_every = 1;
  tc.eval_negatives = 30;
  tc.full_ranking = true;
  tc.seed = 8;
  Run r;
  r.result = rec::train_recommender(model, data, tc, [&](const rec::EpochLog& e) {
    r.losses.push_back(e.loss);
    r.valid.push_back(e.valid);
  });
  for (auto& [n, t] : model.state_dict()) r.state.emplace_back(n, t.clone());
  return r;
}

void check_metrics(const rec::RankingMetrics& a, const rec::RankingMetrics& b) {
  CHECK(a.hr10 == b.hr10);
  CHECK(a.ndcg10 == b.ndcg10);
  CHECK(a.full_hr10 == b.full_hr10);
  CHECK(a.full_ndcg10 == b.full_ndcg10);
  CHECK(a.users == b.users);
}

}  // namespace


TEST_SUITE("reliability.determinism") {
  TEST_CASE("training is bit-identical at 1 and 2 threads: softmax-fused and favor") {
    for (const std::string attention : {"softmax-fused", "favor"}) {
      CAPTURE(attention);
      const Run one = train(attention, 1), two = train(attention, 2);
      REQUIRE(one.losses.size() == 2);
      REQUIRE(two.losses.size() == 2);
      for (std::size_t e = 0; e < one.losses.size(); ++e) {
        CAPTURE(e);
        CHECK(one.losses[e] == two.losses[e]);  // exact: not approximately
        check_metrics(one.valid[e], two.valid[e]);
      }
      CHECK(one.result.best_epoch == two.result.best_epoch);
      check_metrics(one.result.test, two.result.test);
      REQUIRE(one.state.size() == two.state.size());
      for (std::size_t i = 0; i < one.state.size(); ++i) {
        CAPTURE(one.state[i].first);
        CHECK(testing::bitwise_equal(one.state[i].second, two.state[i].second));
      }
    }
  }
}
