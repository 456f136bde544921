// The README's bad-input table, one test per row that the other test files do not already cover
// (the table names those). Every bad input gets a clear error naming the op, the shapes or the
// value, and what was expected: never a crash, a hang or a silently wrong result.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/nn/basic.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/recommender/lisa_model.hpp"
#include "layers/recommender/sasrec.hpp"
#include "layers/recommender/seqrec_data.hpp"
#include "layers/recommender/seqrec_trainer.hpp"

using namespace attnlab;
using ag::Var;
using doctest::Contains;

TEST_SUITE("bad_input") {
  TEST_CASE("broadcast shape mismatch names the op and both shapes") {
    CHECK_THROWS_WITH_AS(ones({2, 3}) + ones({4}), Contains("[2, 3]"), ShapeError);
    CHECK_THROWS_WITH_AS(ag::add(Var(ones({2, 3})), Var(ones({4}))), Contains("[4]"), ShapeError);
  }

  TEST_CASE("matmul with mismatched inner dimensions names both shapes") {
    CHECK_THROWS_WITH_AS(matmul(ones({2, 3}), ones({4, 5})), Contains("matmul"), ShapeError);
    CHECK_THROWS_WITH_AS(
        ag::matmul(Var(ones({2, 3})), Var(ones({4, 5}))), Contains("[4, 5]"), ShapeError);
  }

  TEST_CASE("wrong dtypes are refused with the op name") {
    CHECK_THROWS_AS(exp(zeros({3}, kInt64)), Error);
    CHECK_THROWS_WITH_AS(ones({3}) + ones({3}, kFloat64), Contains("float64"), Error);
  }

  TEST_CASE("NaN inputs propagate without anomaly mode and are caught by it") {
    const Tensor x = from_vector(std::vector<double>{1.0, NAN, 2.0}, {3}, kFloat64);
    Var v(x, true);
    Var y = ag::sum(ag::exp(v));
    CHECK(std::isnan(y.item()));  // IEEE semantics: NaN in, NaN out (documented)
    ag::AnomalyGuard anomaly;
    Var w(x, true);
    CHECK_THROWS_WITH_AS(ag::exp(w), Contains("exp"), Error);
  }

  TEST_CASE("attention with mismatched q k v shapes names the op and the shapes") {
    const Var q(randn({1, 1, 4, 8}, RngKey{1, 0})), k(randn({1, 1, 5, 8}, RngKey{1, 1}));
    const Var v(randn({1, 1, 4, 8}, RngKey{1, 2}));
    for (const auto& info : nn::attention_kinds()) {
      CAPTURE(info.name);
      nn::KernelContext ctx;
      ctx.head_dim = 8;
      auto kernel = info.make_default(ctx);
      CHECK_THROWS_WITH_AS(kernel->attend(q, k, v, {}), Contains("[1, 1, 5, 8]"), ShapeError);
    }
  }

  TEST_CASE("out-of-range item ids are refused by SASRec and LISA") {
    rec::SASRecConfig sc;
    sc.num_items = 10;
    sc.max_length = 4;
    sc.dim = 8;
    sc.blocks = 1;
    rec::SASRec sasrec(sc);
    rec::LISAConfig lc;
    lc.num_items = 10;
    lc.max_length = 4;
    lc.dim = 8;
    lc.codebooks = 2;
    lc.codewords = 4;
    rec::LISA lisa(lc);
    for (int64_t bad : {11, -1}) {
      CAPTURE(bad);
      const Tensor ids = from_vector(std::vector<int64_t>{0, 3, bad, 2}, {1, 4});
      CHECK_THROWS_AS(sasrec.hidden(ids), Error);
      CHECK_THROWS_AS(lisa.hidden(ids), Error);
      CHECK_THROWS_AS(sasrec.item_vectors(ids), Error);
    }
  }

  TEST_CASE("empty sequences: all-padding rows give finite zeros and empty data is refused") {
    rec::SASRecConfig sc;
    sc.num_items = 10;
    sc.max_length = 4;
    sc.dim = 8;
    sc.blocks = 1;
    rec::SASRec model(sc);
    model.eval();
    const Var h = model.hidden(zeros({2, 4}, kInt64));  // two users with no items at all
    const Tensor hv = h.value();
    for (int64_t i = 0; i < hv.numel(); ++i) CHECK(std::isfinite(hv.data<float>()[i]));
    CHECK_THROWS_WITH_AS(rec::parse_sasrec_text("", "empty.txt"), Contains("empty"), IOError);
    rec::SplitDataset none;
    none.num_items = 10;
    rec::TrainConfig tc;
    tc.epochs = 1;
    CHECK_THROWS_AS(rec::train_recommender(model, none, tc), Error);
  }
}
