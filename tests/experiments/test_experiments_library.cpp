// train, sweep and bench attention as library functions (attnlab::commands): options in, results
// out, nothing printed, bad options refused with the flag's name, as the subcommands do.
#include <doctest/doctest.h>
#include <unistd.h>

#include <iostream>
#include <sstream>
#include <string>

#include "experiments/commands/bench/bench_attention.hpp"
#include "experiments/commands/sweep/sweep.hpp"
#include "experiments/commands/train/train.hpp"
#include "tests/scratch_path.hpp"

namespace {

using namespace attnlab;

// Captures std::cout while alive: the library functions must print nothing there.
class CaptureStdout {
 public:
  CaptureStdout() : previous_(std::cout.rdbuf(text_.rdbuf())) {}
  ~CaptureStdout() { std::cout.rdbuf(previous_); }
  CaptureStdout(const CaptureStdout&) = delete;
  CaptureStdout& operator=(const CaptureStdout&) = delete;
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::streambuf* previous_;
};

commands::TrainOptions tiny_training() {
  commands::TrainOptions o;
  o.synthetic.users = 40;
  o.synthetic.items = 30;
  o.synthetic.min_length = 5;
  o.synthetic.max_length = 12;
  o.model.max_length = 12;
  o.model.dim = 8;
  o.model.blocks = 1;
  o.training.epochs = 2;
  o.training.eval_every = 1;
  o.training.batch_size = 16;
  return o;
}

}  // namespace

TEST_SUITE("experiments.library") {
  TEST_CASE("run_train: options in - the report and every epoch out - nothing on stdout") {
    commands::TrainOptions o = tiny_training();
    int epochs_seen = 0;
    std::string started;
    o.on_start = [&](const commands::TrainSetup& s) {
      started = s.model_description;
    };
    o.callbacks.after_epoch = [&](const rec::EpochLog&) {
      ++epochs_seen;
    };
    CaptureStdout out;
    const commands::TrainReport r = commands::run_train(o);
    CHECK(out.text().empty());
    CHECK(epochs_seen == 2);
    REQUIRE(r.result.epochs.size() == 2);
    CHECK(r.result.best_epoch >= 1);
    CHECK(r.result.test.users > 0);
    CHECK(r.result.test.ndcg10 >= 0);
    CHECK(r.result.test.ndcg10 <= 1);
    REQUIRE(r.model != nullptr);
    CHECK(r.setup.parameters == r.model->parameter_count());
    CHECK(started == r.setup.model_description);
    CHECK(r.setup.data_summary.find("30 items") != std::string::npos);
  }

  TEST_CASE("run_train: an unknown kind is a ValueError naming it") {
    commands::TrainOptions o = tiny_training();
    o.model.kind = "no-such-kind";
    CHECK_THROWS_WITH_AS(commands::run_train(o), doctest::Contains("no-such-kind"), ValueError);
  }

  TEST_CASE("run_bench_attention: one row per configuration - the crossover of the linear kind") {
    commands::AttentionBenchOptions o;
    o.kinds = {"favor"};  // softmax-fused is added for the crossover table
    o.lengths = {16, 32};
    o.head_dims = {8};
    o.features = {8};
    o.thread_counts = {1};
    o.timing.reps = 1;
    o.quick = true;
    CaptureStdout out;
    const commands::AttentionBenchReport r = commands::run_bench_attention(o);
    CHECK(out.text().empty());
    CHECK(r.table.rows() == 4);  // (favor, softmax-fused) x (16, 32)
    REQUIRE(r.crossover.rows() == 1);
    CHECK(r.crossover.row(0)[0].text == "favor");
  }

  TEST_CASE("run_bench_attention: bad options are UsageErrors naming the flag") {
    commands::AttentionBenchOptions o;
    o.masks = {"diagonal"};
    CHECK_THROWS_WITH_AS(
        commands::run_bench_attention(o), doctest::Contains("--mask"), cli::UsageError);
    o = {};
    o.kinds = {"no-such-kind"};
    CHECK_THROWS_WITH_AS(
        commands::run_bench_attention(o), doctest::Contains("no-such-kind"), cli::UsageError);
    o = {};
    o.lengths = {0};
    CHECK_THROWS_WITH_AS(
        commands::run_bench_attention(o), doctest::Contains("--lengths"), cli::UsageError);
  }

  TEST_CASE("run_sweep: runs the given program's subcommand - returns the merged table") {
    commands::SweepOptions o;
    o.exe = ATTNLAB_CLI_PATH;
    o.grid = "dim=8;seed=1,2";
    o.args =
        "--synthetic-users 40 --synthetic-items 30 --synthetic-max-length 12 --maxlen 12 "
        "--blocks 1 --epochs 1 --eval-every 1 --batch 16";
    o.dir = attnlab::testing::scratch_path("library_sweep");
    o.threads = 1;
    CaptureStdout out;
    const commands::SweepReport r = commands::run_sweep(o);
    CHECK(out.text().empty());
    CHECK(r.configurations == 2);
    CHECK(r.finished == 2);
    CHECK(r.failed == 0);
    REQUIRE(r.table.rows() == 1);  // the seeds of dim=8 merged
    CHECK(r.table.columns()[0] == "dim");
    o.jobs = 0;
    CHECK_THROWS_WITH_AS(commands::run_sweep(o), doctest::Contains("--jobs"), cli::UsageError);
  }
}
