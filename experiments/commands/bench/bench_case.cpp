// `attnlab bench case`: one named workload, timed with equal repetitions, printed as one JSON
// line. It is attnlab's side of `attnlab bench compare`, which runs it as a child process
// alternately with a baseline script that prints the same line (experiments/baselines/), so
// that both sides are timed, repeated and measured (peak RSS of the child) the same way.
//
//   attnlab bench case --case exact-causal --length 4096 --head-dim 64 --reps 5 --threads 1
//
// Cases (forward + backward through autograd, float32, batch 1, one head):
//   gemm            C = A B, n x n
//   exact-causal    softmax-fused attention with a causal mask, L x d
//   favor-causal    FAVOR+ (positive orthogonal features, fused causal prefix sums), L, m, d
//   sasrec-epoch    SASRec training on a SASRec-format file (2 blocks, width 50, length 200,
//                   batch 128, BCE with one negative, Adam): with --batches N, the median of N
//                   single batches; with --batches 0, of --reps whole epochs
#include <cstdio>
#include <iostream>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/kind_flags.hpp"
#include "experiments/support/models.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/optim/optim.hpp"
#include "layers/recommender/seqrec_trainer.hpp"

namespace attnlab {
namespace {

struct CaseConfig {
  int64_t n = 1024, length = 4096, head_dim = 64, features = 256, batches = 0;
  std::string data;
  uint64_t seed = 0;
};

// One repetition of an attention case: forward and backward of `kind` on random q, k, v.
std::function<void()> attention_case(const std::string& kind, const CaseConfig& c) {
  nn::KernelContext ctx;
  ctx.seed = c.seed;
  ctx.head_dim = c.head_dim;
  const nn::AttentionKind& info = nn::attention_kind(kind);
  auto kernel = info.make(
      cli::declared_option_values(info.options, kind, {{"features", std::to_string(c.features)}}),
      ctx);
  if (auto favor = std::dynamic_pointer_cast<nn::FavorKernel>(kernel))
    favor->keep_trace = false;
  const Shape s{1, 1, c.length, c.head_dim};
  Tensor q = randn(s, RngKey{c.seed, 1}), k = randn(s, RngKey{c.seed, 2}),
         v = randn(s, RngKey{c.seed, 3}), g = randn(s, RngKey{c.seed, 4});
  nn::AttentionMask mask;
  mask.causal = true;
  return [=] {
    ag::Var vq = ag::param(q), vk = ag::param(k), vv = ag::param(v);
    kernel->attend(vq, vk, vv, mask).backward(g);
  };
}

// The SASRec case: training steps over a fixed permutation of the users, exactly as
// `attnlab train` runs them. step() runs the next batch.
struct SasrecCase {
  std::shared_ptr<rec::SplitDataset> data;
  std::shared_ptr<rec::SequenceRecommender> model;
  std::shared_ptr<optim::Adam> opt;
  std::vector<int64_t> users;
  int64_t per_batch = 128, epoch_batches = 0, next = 0;
  uint64_t seed = 0;

  explicit SasrecCase(const CaseConfig& c) : seed(c.seed) {
    rec::SyntheticConfig unused;
    data = std::make_shared<rec::SplitDataset>(
        rec::leave_one_out(cli::load_sequences(c.data, unused)));
    cli::ModelOptions mo;
    mo.num_items = data->num_items;
    mo.seed = c.seed;
    model = cli::make_model(mo);
    opt = std::make_shared<optim::Adam>(model->named_parameters(), 1e-3, 0.9, 0.98);
    for (int64_t u = 0; u < static_cast<int64_t>(data->train.size()); ++u) {
      if (data->train[u].size() >= 2)
        users.push_back(u);
    }
    epoch_batches = (static_cast<int64_t>(users.size()) + per_batch - 1) / per_batch;
    model->train();
  }
  void step() {
    const int64_t first = (next % epoch_batches) * per_batch;
    const std::vector<int64_t> chunk(
        users.begin() + first, users.begin() + std::min<int64_t>(first + per_batch, users.size()));
    const rec::TrainBatch batch = rec::make_batch(
        *data, chunk, model->max_length(), RngKey{seed, static_cast<uint64_t>(100 + next)});
    ++next;
    opt->zero_grad();
    ag::Var loss = rec::recommendation_loss(*model, batch, rec::LossKind::BCE);
    loss.backward();
    opt->step();
  }
};

// --batches N: N batches after one warm-up batch, each timed (the median is per batch, as the
// PyTorch baseline's --batches reports); --batches 0: --reps whole epochs after one warm-up batch.
bench::Timing time_sasrec(const CaseConfig& c, int reps) {
  auto sasrec = std::make_shared<SasrecCase>(c);
  if (c.batches > 0)
    return bench::measure_reps([sasrec] { sasrec->step(); }, static_cast<int>(c.batches));
  sasrec->step();  // warm-up: one batch, not a whole epoch
  return bench::measure_reps(
      [sasrec] {
        for (int64_t b = 0; b < sasrec->epoch_batches; ++b) sasrec->step();
      },
      reps,
      /*warmup=*/false);
}

std::string config_text(const std::string& name, const CaseConfig& c) {
  if (name == "gemm")
    return "n=" + std::to_string(c.n);
  if (name == "exact-causal")
    return "L=" + std::to_string(c.length) + ",d=" + std::to_string(c.head_dim);
  if (name == "favor-causal")
    return "L=" + std::to_string(c.length) + ",m=" + std::to_string(c.features) +
           ",d=" + std::to_string(c.head_dim);
  return c.batches > 0 ? "batches=" + std::to_string(c.batches) + " (per batch)" : "epoch";
}

int run_case_bench(int argc, char** argv) {
  cli::Parser parser("bench case", "--case NAME [--reps N] [sizes]");
  parser.options().add_options()("case",
                                 cli::po::value<std::string>()->default_value(""),
                                 "gemm, exact-causal, favor-causal or sasrec-epoch")(
      "n", cli::po::value<int64_t>()->default_value(1024), "gemm: matrix size")(
      "length", cli::po::value<int64_t>()->default_value(4096), "attention: sequence length L")(
      "head-dim", cli::po::value<int64_t>()->default_value(64), "attention: head width d")(
      "features", cli::po::value<int64_t>()->default_value(256), "favor-causal: projections m")(
      "data", cli::po::value<std::string>()->default_value(""), "sasrec-epoch: a SASRec file")(
      "batches",
      cli::po::value<int64_t>()->default_value(0),
      "sasrec-epoch: time N single batches (0: time whole epochs)")(
      "reps", cli::po::value<int>()->default_value(5), "timed repetitions after one warm-up");
  parser.unused_common("dtype", "its workloads run in float32");
  parser.unused_common("out", "it prints one JSON line");
  if (!parser.parse(argc, argv))
    return 0;
  CaseConfig c;
  c.n = parser.get<int64_t>("n");
  c.length = parser.get<int64_t>("length");
  c.head_dim = parser.get<int64_t>("head-dim");
  c.features = parser.get<int64_t>("features");
  c.batches = parser.get<int64_t>("batches");
  c.data = parser.get<std::string>("data");
  c.seed = parser.common().seed;
  if (c.n < 1 || c.length < 1 || c.head_dim < 1 || c.features < 1 || c.batches < 0)
    throw cli::UsageError("--n, --length, --head-dim and --features must be positive");
  const std::string name = parser.get<std::string>("case");
  const int reps = parser.get<int>("reps");
  std::function<void()> fn;
  bench::Timing t;
  if (name == "gemm") {
    Tensor a = rand({c.n, c.n}, RngKey{1, 1}), b = rand({c.n, c.n}, RngKey{1, 2});
    fn = [a, b] {
      Tensor out = matmul(a, b);
    };
  } else if (name == "exact-causal") {
    fn = attention_case("softmax-fused", c);
  } else if (name == "favor-causal") {
    fn = attention_case("favor", c);
  } else if (name == "sasrec-epoch") {
    if (c.data.empty())
      throw cli::UsageError("--case sasrec-epoch needs --data FILE (SASRec format)");
  } else {
    throw cli::UsageError(
        "--case: expected gemm, exact-causal, favor-causal or sasrec-epoch, got '" + name + "'");
  }
  t = fn ? bench::measure_reps(fn, reps) : time_sasrec(c, reps);
  std::printf(
      "{\"side\": \"attnlab\", \"case\": \"%s\", \"config\": \"%s\", \"median_ms\": %.4f, "
      "\"min_ms\": %.4f, \"max_ms\": %.4f, \"reps\": %d, \"threads\": %d, "
      "\"peak_rss_mb\": %.1f}\n",
      name.c_str(),
      config_text(name, c).c_str(),
      t.median * 1e3,
      t.best * 1e3,
      t.worst * 1e3,
      t.reps,
      num_threads(),
      static_cast<double>(bench::process_peak_rss()) / 1048576.0);
  return 0;
}

const bench::RegisterMode case_mode("case",
                                    "one workload with equal repetitions, as a JSON line "
                                    "(attnlab's side of bench compare)",
                                    run_case_bench);

}  // namespace
}  // namespace attnlab
