// `attnlab demo`, the main job: trains the same small sequential recommender with exact softmax
// attention, FAVOR+ and LISA on the built-in synthetic data (or any dataset `train` reads) and
// prints one comparison table: ranking quality (HR@10, NDCG@10 on the held-out last items, 100
// sampled negatives, SASRec protocol), time per epoch and peak tensor memory of training.
// A popularity ranking is the sanity floor every model must beat.
#include <algorithm>
#include <iostream>

#include "core/core.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/kind_flags.hpp"
#include "experiments/support/models.hpp"
#include "experiments/support/table.hpp"
#include "experiments/support/train_report.hpp"
#include "layers/recommender/seqrec_trainer.hpp"

namespace attnlab {
namespace {

// --features and --codebooks for the kinds that declare them (the FAVOR+ and LISA kinds).
OptionValues kind_options(const cli::Parser& p, const std::string& kind) {
  return cli::declared_option_values(rec::model_kind(kind).options,
                                     kind,
                                     {{"features", std::to_string(p.get<int64_t>("features"))},
                                      {"codebooks", p.get<std::string>("codebooks")}});
}

int run_demo(int argc, char** argv) {
  cli::Parser p("demo", "[--kinds LIST] [--epochs N] [--data synthetic|FILE] [options]");
  p.options().add_options()(
      "kinds",
      cli::po::value<std::string>()->default_value("softmax-fused,favor,lisa-base,lisa-mini"),
      "model kinds to compare (attnlab train --help lists them; lisa-soft "
      "needs far more than 10 epochs to leave the popularity level)")(
      "epochs", cli::po::value<int64_t>()->default_value(10), "training epochs per model")(
      "data",
      cli::po::value<std::string>()->default_value("synthetic"),
      "'synthetic' or a dataset file (as for attnlab train)")(
      "synthetic-users", cli::po::value<int64_t>()->default_value(2000), "synthetic: users")(
      "synthetic-items", cli::po::value<int64_t>()->default_value(1000), "synthetic: items")(
      "maxlen", cli::po::value<int64_t>()->default_value(120), "input length (last items)")(
      "dim", cli::po::value<int64_t>()->default_value(64), "hidden size")(
      "features", cli::po::value<int64_t>()->default_value(64), "FAVOR+: random projections m")(
      "codebooks",
      cli::po::value<std::string>()->default_value("8x16"),
      "LISA: B x W of the sequence quantizer")(
      "batch", cli::po::value<int64_t>()->default_value(128), "users per batch");
  if (!p.parse(argc, argv))
    return 0;
  if (p.common().threads > 0)
    set_num_threads(p.common().threads);
  const std::vector<std::string> kinds = cli::split_list(p.get<std::string>("kinds"), "--kinds");
  for (const auto& k : kinds) {
    if (rec::find_model_kind(k) == nullptr)
      throw cli::UsageError("--kinds: unknown model kind '" + k +
                            "' (known: " + rec::model_kind_names() + ")");
  }
  for (const char* flag :
       {"epochs", "synthetic-users", "synthetic-items", "maxlen", "dim", "features", "batch"}) {
    if (p.get<int64_t>(flag) < 1)
      throw cli::UsageError(std::string("--") + flag + ": must be >= 1");
  }
  cli::parse_codebooks(p.get<std::string>("codebooks"), "--codebooks");  // checked up front

  rec::SyntheticConfig sc;
  sc.users = p.get<int64_t>("synthetic-users");
  sc.items = p.get<int64_t>("synthetic-items");
  sc.seed = p.common().seed + 1;
  const rec::SequenceDataset data = cli::load_sequences(p.get<std::string>("data"), sc);
  const rec::SplitDataset split = rec::leave_one_out(data);
  const int64_t epochs = p.get<int64_t>("epochs");
  std::cout << "attnlab demo: exact softmax attention, FAVOR+ and LISA in the same recommender\n"
            << "data: " << data.summary() << "\n"
            << epochs << " epochs each, " << num_threads()
            << " threads; metrics on the held-out last item of every user (100 sampled "
               "negatives)\n\n";

  cli::Table table(
      {"model", "parameters", "test HR@10", "test NDCG@10", "s/epoch", "peak MiB", "final loss"});
  {  // The floor: rank by training popularity.
    rec::PopularityRecommender pop(split, p.get<int64_t>("maxlen"));
    rec::EvalOptions eo;
    eo.test = true;
    eo.key = rec::evaluation_key(p.common().seed, -1);  // the negatives the trainer's test uses
    const rec::RankingMetrics m = rec::evaluate(pop, split, eo);
    table.add_row({"popularity", 0, cli::Cell(m.hr10, 4), cli::Cell(m.ndcg10, 4), "-", "-", "-"});
  }
  for (const std::string& kind : kinds) {
    cli::ModelOptions mo;
    mo.kind = kind;
    mo.num_items = data.num_items;
    mo.max_length = p.get<int64_t>("maxlen");
    mo.dim = p.get<int64_t>("dim");
    mo.kind_options = kind_options(p, kind);
    mo.seed = p.common().seed;
    const auto model = cli::make_model(mo);
    model->to(p.common().dtype);
    rec::TrainConfig tc;
    tc.epochs = epochs;
    tc.batch_size = p.get<int64_t>("batch");
    tc.eval_every = epochs;  // one validation, at the end
    tc.seed = p.common().seed;
    std::cerr << kind << ": " << model->describe() << "\n";
    const int64_t before = memory_stats().live_bytes;
    reset_peak_memory();
    // The peak of training alone: read after each epoch that ran no evaluation (evaluation
    // scores 101 candidates for 256 users at once and would dominate small models).
    int64_t train_peak = 0;
    cli::TrainingReport report("", false, /*progress_bar=*/true);
    rec::TrainCallbacks callbacks = report.callbacks();
    callbacks.after_epoch = [&](const rec::EpochLog& e) {
      if (!e.evaluated)
        train_peak = std::max(train_peak, memory_stats().peak_bytes - before);
    };
    const rec::TrainResult r = rec::train_recommender(*model, split, tc, callbacks);
    if (train_peak == 0)  // one epoch only: the peak includes its evaluation
      train_peak = memory_stats().peak_bytes - before;
    const double peak_mib = static_cast<double>(train_peak) / 1048576.0;
    table.add_row({kind,
                   model->parameter_count(),
                   cli::Cell(r.test.hr10, 4),
                   cli::Cell(r.test.ndcg10, 4),
                   cli::Cell(r.mean_epoch_seconds, 2),
                   cli::Cell(peak_mib, 1),
                   cli::Cell(r.epochs.empty() ? 0.0 : r.epochs.back().loss, 4)});
  }
  table.print(std::cout);
  std::cout << "\npeak MiB: the high-water mark of live tensor bytes during training epochs "
               "(attnlab's allocator counts every tensor), above what was live before; evaluation "
               "not included.\n";
  if (!p.common().out.empty()) {
    table.write(p.common().out, "demo");
    std::cout << "wrote " << p.common().out << "/demo.csv, .jsonl\n";
  }
  return 0;
}

const cli::Register demo_command("demo",
                                 "the main job: exact vs FAVOR+ vs LISA attention in a "
                                 "recommender, one table",
                                 run_demo);

}  // namespace
}  // namespace attnlab
