// `attnlab bench model`: whole recommenders against sequence length. For each model kind and
// length L it times one training step (forward, BCE loss with one negative per position,
// backward, Adam step) and one inference pass (the hidden state of a batch and the scores of the
// last position against 101 candidates, without a graph), on synthetic item sequences, and
// measures the peak tensor memory of each the same way for every kind (live tensor bytes above
// the level before the call: activations, saved tensors, gradients, optimizer scratch).
// Times are process CPU time by default (--clock cpu, the median of --reps runs after a warm-up):
// on a shared machine the wall-clock time of a call longer than a scheduler time slice grows with
// the number of competing processes; --clock wall times as the other bench modes do.
//
// The LISA paper's efficiency claim is about whole models at long sequences; this is that
// claim's measurement here. A crossover table gives, for every approximate kind, the smallest
// measured L at which its training step is faster than exact attention (the fused kernel, and the
// materialised reference where it was measured).
#include <iostream>
#include <map>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/commands/bench/bench_model_stream.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/kind_flags.hpp"
#include "experiments/support/models.hpp"
#include "experiments/support/plot.hpp"
#include "experiments/support/table.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/optim/optim.hpp"
#include "layers/recommender/seqrec_trainer.hpp"

namespace attnlab {
namespace {

struct Study {
  std::vector<std::string> kinds;
  std::vector<int64_t> lengths;
  int64_t batch = 4, dim = 64, items = 2000, max_reference_length = 4096;
  std::string codebooks = "8x16";
  bench::TimingPolicy timing;
  uint64_t seed = 0;
  bool quick = false;
  bool cpu_clock = true;  // --clock cpu: median process CPU time (bench_model_stream.hpp)
};

struct Measured {
  double train_ms = 0, infer_ms = 0;
  int64_t train_bytes = 0, infer_bytes = 0;
};

void add_options(cli::Parser& parser) {
  parser.options().add_options()(
      "kinds",
      cli::po::value<std::string>()->default_value(
          "softmax-fused,softmax-reference,favor,lisa-soft,lisa-base,lisa-mini"),
      "model kinds: any attention kind (SASRec with it) or lisa-base, lisa-soft, lisa-mini")(
      "lengths",
      cli::po::value<std::string>()->default_value("200,512,1024,2048,4096,8192"),
      "sequence lengths L")("batch", cli::po::value<int64_t>()->default_value(4), "sequences")(
      "dim", cli::po::value<int64_t>()->default_value(64), "model width D")(
      "items", cli::po::value<int64_t>()->default_value(2000), "catalogue size")(
      "codebooks", cli::po::value<std::string>()->default_value("8x16"), "LISA: B x W")(
      "max-reference-length",
      cli::po::value<int64_t>()->default_value(4096),
      "skip kinds that materialise the L x L weights above this L (softmax-reference; "
      "capabilities.quadratic_memory)")("quick", "tiny sizes for the test suite");
  bench::add_timing_options(parser, 1.0);
  bench::add_model_stream_options(parser);
}

Study parse_study(const cli::Parser& p) {
  Study st;
  st.quick = p.has("quick");
  st.kinds = cli::split_list(p.get<std::string>("kinds"), "--kinds");
  for (const std::string& k : st.kinds) {
    if (rec::find_model_kind(k) == nullptr)
      throw cli::UsageError("--kinds: unknown model kind '" + k +
                            "' (known: " + rec::model_kind_names() + ")");
  }
  st.lengths = cli::parse_int_list(st.quick ? "16,32" : p.get<std::string>("lengths"), "--lengths");
  st.batch = st.quick ? 2 : p.get<int64_t>("batch");
  st.dim = st.quick ? 8 : p.get<int64_t>("dim");
  st.items = st.quick ? 50 : p.get<int64_t>("items");
  st.codebooks = st.quick ? "2x4" : p.get<std::string>("codebooks");
  cli::parse_codebooks(st.codebooks, "--codebooks");
  st.max_reference_length = p.get<int64_t>("max-reference-length");
  for (int64_t l : st.lengths) {
    if (l < 2)
      throw cli::UsageError("--lengths: lengths must be >= 2");
  }
  if (st.batch < 1 || st.dim < 1 || st.items < 2)
    throw cli::UsageError("--batch and --dim must be >= 1 and --items >= 2");
  st.timing = bench::timing_policy(p, st.quick);
  st.cpu_clock = bench::cpu_clock_option(p);
  st.seed = p.common().seed;
  return st;
}

std::shared_ptr<rec::SequenceRecommender> make(const Study& st,
                                               const std::string& kind,
                                               int64_t l) {
  return bench::make_bench_model(kind, st.items, l, st.dim, st.codebooks, st.seed);
}

// A batch of full-length synthetic sequences: every position is a real item, so every kind
// attends over the whole length L.
rec::TrainBatch synthetic_batch(const Study& st, int64_t l) {
  const Shape s{st.batch, l};
  return {randint(s, 1, st.items + 1, RngKey{st.seed, 1}),
          randint(s, 1, st.items + 1, RngKey{st.seed, 2}),
          randint(s, 1, st.items + 1, RngKey{st.seed, 3})};
}

Measured measure_one(const Study& st, const std::string& kind, int64_t l) {
  auto model = make(st, kind, l);
  optim::Adam opt(model->named_parameters(), 1e-3, 0.9, 0.98);
  const rec::TrainBatch batch = synthetic_batch(st, l);
  const Tensor candidates = randint({st.batch, 101}, 1, st.items + 1, RngKey{st.seed, 4});
  auto train_step = [&] {
    model->train();
    opt.zero_grad();
    ag::Var loss = rec::recommendation_loss(*model, batch, rec::LossKind::BCE);
    loss.backward();
    opt.step();
  };
  auto inference = [&] {
    ag::NoGradGuard no_grad;
    model->eval();
    ag::Var h = model->hidden(batch.input);
    ag::Var last = ag::squeeze(ag::slice(h, 1, l - 1, l), 1);
    ag::Var s = model->scores(last, candidates);
  };
  Measured m;
  auto ms = [&](const std::function<void()>& fn) {
    if (st.cpu_clock)
      return bench::median_cpu_seconds(fn, st.timing.reps > 0 ? st.timing.reps : 3) * 1e3;
    return st.timing.headline(st.timing.run(fn, 1)) * 1e3;
  };
  m.train_ms = ms(train_step);
  m.infer_ms = ms(inference);
  m.train_bytes = bench::peak_tensor_bytes(train_step);
  m.infer_bytes = bench::peak_tensor_bytes(inference);
  return m;
}

using Results = std::map<std::string, std::map<int64_t, Measured>>;

// A SASRec kind whose attention keeps the L x L weights (softmax-reference, or a user's kind that
// declares capabilities.quadratic_memory); model kinds (LISA) are linear in L.
bool materialises_weights(const std::string& kind) {
  const nn::AttentionKind* attention = nn::find_attention_kind(kind);
  return attention && attention->capabilities.quadratic_memory;
}

Results measure_all(const Study& st, cli::Table& table) {
  Results results;
  for (const std::string& kind : st.kinds) {
    for (int64_t l : st.lengths) {
      if (materialises_weights(kind) && l > st.max_reference_length)
        continue;
      const Measured m = measure_one(st, kind, l);
      results[kind][l] = m;
      table.add_row({kind,
                     l,
                     cli::Cell(m.train_ms, 2),
                     cli::Cell(m.infer_ms, 2),
                     cli::Cell(m.train_bytes / 1048576.0, 1),
                     cli::Cell(m.infer_bytes / 1048576.0, 1)});
      std::cerr << "." << std::flush;
    }
  }
  std::cerr << "\n";
  return results;
}

// For every approximate kind: the smallest L at which its training step beats `exact`'s.
cli::Table crossover_table(const Results& results, const std::string& exact) {
  cli::Table cross({"kind",
                    "against",
                    "crossover L (train step)",
                    "crossover L (inference)",
                    "largest common L",
                    "train speedup there",
                    "train memory ratio there"});
  const auto ex = results.find(exact);
  if (ex == results.end())
    return cross;
  const std::string exact_family = rec::model_kind(exact).family;
  for (const auto& [kind, by_l] : results) {
    if (rec::model_kind(kind).family == exact_family)  // the exact kinds among themselves
      continue;
    int64_t train_cross = -1, infer_cross = -1, largest = -1;
    for (const auto& [l, m] : by_l) {
      const auto e = ex->second.find(l);
      if (e == ex->second.end())
        continue;
      largest = l;
      if (train_cross < 0 && m.train_ms < e->second.train_ms)
        train_cross = l;
      if (infer_cross < 0 && m.infer_ms < e->second.infer_ms)
        infer_cross = l;
    }
    if (largest < 0)
      continue;
    const Measured &a = by_l.at(largest), &e = ex->second.at(largest);
    auto cell = [&](int64_t c) {
      return c > 0 ? cli::Cell(c) : cli::Cell("> " + std::to_string(largest));
    };
    cross.add_row({kind,
                   exact,
                   cell(train_cross),
                   cell(infer_cross),
                   largest,
                   cli::Cell(e.train_ms / a.train_ms, 2),
                   cli::Cell(static_cast<double>(a.train_bytes) /
                                 static_cast<double>(std::max<int64_t>(1, e.train_bytes)),
                             2)});
  }
  return cross;
}

void write_outputs(const std::string& dir, const cli::Table& table, const cli::Table& cross) {
  table.write(dir, "model");
  cross.write(dir, "model_crossover");
  bench::plot_by_kind(table,
                      dir,
                      "model",
                      "L",
                      "whole model",
                      "L",
                      {{"model_train_time", "train step ms"},
                       {"model_inference_time", "inference ms"},
                       {"model_train_memory", "train peak MiB"}});
}

// parse -> measure -> report.
int run_model_bench(int argc, char** argv) {
  cli::Parser parser("bench model", "[--kinds a,b] [--lengths 200,...] [options]");
  add_options(parser);
  parser.unused_common("dtype", "its models run in float32");
  if (!parser.parse(argc, argv))
    return 0;
  if (parser.has("stream"))
    return bench::run_model_stream_bench(parser);
  for (const char* flag : {"window", "recompute-reps"}) {
    if (parser.given(flag))
      throw cli::UsageError(std::string("--") + flag + ": only for bench model --stream");
  }
  const Study st = parse_study(parser);
  std::cout << bench::machine_summary() << "\n"
            << "batch " << st.batch << " full-length sequences, width " << st.dim << ", one head, "
            << st.items << " items, SASRec kinds 2 blocks, LISA " << st.codebooks
            << ", FAVOR+ m = 128; times: "
            << (st.cpu_clock
                    ? "process CPU time, median of " +
                          std::to_string(st.timing.reps > 0 ? st.timing.reps : 3) + " run(s)"
                    : std::string("the ") + st.timing.headline_name() + " wall-clock run")
            << "\n\n";
  cli::Table table(
      {"kind", "L", "train step ms", "inference ms", "train peak MiB", "inference peak MiB"});
  const Results results = measure_all(st, table);
  table.print(std::cout);
  cli::Table cross = crossover_table(results, "softmax-fused");
  const cli::Table cross_ref = crossover_table(results, "softmax-reference");
  for (std::size_t r = 0; r < cross_ref.rows(); ++r) cross.add_row(cross_ref.row(r));
  if (cross.rows() > 0) {
    std::cout << "\nCrossover: the smallest measured L at which each approximation is faster "
                 "than exact attention (\"> L\": not within the lengths measured):\n";
    cross.print(std::cout);
  }
  if (!parser.common().out.empty())
    write_outputs(parser.common().out, table, cross);
  return 0;
}

const bench::RegisterMode model_mode("model",
                                     "whole recommenders against sequence length: training step, "
                                     "inference, peak memory, crossovers",
                                     run_model_bench);

}  // namespace
}  // namespace attnlab
