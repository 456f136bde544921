// `attnlab bench model --stream`: one user's next-item scoring after each new item, the serving
// case of a sequential recommender. For each model kind one stream pushes a synthetic history
// item by item (SASRecStream: exact attention's key/value cache, FAVOR+'s and linear attention's
// running state; LISA's LisaStream histogram) and, after every push, scores all items against
// the new hidden state. For each history length t the table gives
//   stream ms:     the median time of the pushes (and scoring) at t - window + 1 .. t;
//   recompute ms:  the median time of what a deployment without a stream does at t: the model's
//                  hidden() on the whole prefix (positions 0..t-1), its last row, the same scores;
//   state bytes:   what the stream keeps per user after t items (per-user state only: LISA's
//                  tables, shared by every user, are not counted).
// Exact attention's cache grows as O(t D) and so does its step; the others stay constant.
#include "experiments/commands/bench/bench_model_stream.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/kind_flags.hpp"
#include "experiments/support/models.hpp"
#include "experiments/support/plot.hpp"
#include "experiments/support/table.hpp"
#include "layers/recommender/lisa_model.hpp"
#include "layers/recommender/model_registry.hpp"
#include "layers/recommender/sasrec.hpp"

namespace attnlab::bench {
namespace {

const char* const kDefaultStreamKinds = "softmax-fused,favor,linear-elu,lisa-base,lisa-soft";

struct StreamStudy {
  std::vector<std::string> kinds;
  std::vector<int64_t> lengths;
  int64_t dim = 64, items = 2000, window = 32, recompute_reps = 5;
  bool cpu_clock = true;  // process CPU time (else wall-clock time)
  std::string codebooks = "8x16";
  uint64_t seed = 0;
};

// One user's stream behind one interface: push an item, get its hidden row [D].
struct UserStream {
  std::function<Tensor(int64_t)> push;
  std::function<int64_t()> state_bytes;
};

StreamStudy parse_stream_study(const cli::Parser& p) {
  StreamStudy st;
  const bool quick = p.has("quick");
  const std::string kinds =
      p.given("kinds") ? p.get<std::string>("kinds") : std::string(kDefaultStreamKinds);
  st.kinds = cli::split_list(kinds, "--kinds");
  for (const std::string& k : st.kinds) {
    if (rec::find_model_kind(k) == nullptr)
      throw cli::UsageError("--kinds: unknown model kind '" + k +
                            "' (known: " + rec::model_kind_names() + ")");
  }
  // bench model's flags that the streaming study does not read: refused, not ignored.
  for (const char* flag : {"batch", "max-reference-length", "budget", "reps"}) {
    if (p.given(flag)) {
      throw cli::UsageError(std::string("--") + flag +
                            ": not used by bench model --stream (one user; a step is the median "
                            "of --window pushes, a recomputation of --recompute-reps runs)");
    }
  }
  st.lengths = cli::parse_int_list(quick ? "8,16" : p.get<std::string>("lengths"), "--lengths");
  st.dim = quick ? 8 : p.get<int64_t>("dim");
  st.items = quick ? 50 : p.get<int64_t>("items");
  st.codebooks = quick ? "2x4" : p.get<std::string>("codebooks");
  cli::parse_codebooks(st.codebooks, "--codebooks");
  st.window = quick ? 4 : p.get<int64_t>("window");
  st.recompute_reps = quick ? 2 : p.get<int64_t>("recompute-reps");
  st.cpu_clock = cpu_clock_option(p);
  if (st.window < 1 || st.recompute_reps < 1)
    throw cli::UsageError("--window and --recompute-reps must be >= 1");
  for (int64_t l : st.lengths) {
    if (l < st.window)
      throw cli::UsageError("--lengths: every length must be >= --window (" +
                            std::to_string(st.window) + ")");
  }
  if (st.dim < 1 || st.items < 2)
    throw cli::UsageError("--dim must be >= 1 and --items >= 2");
  st.seed = p.common().seed;
  return st;
}

std::shared_ptr<rec::SequenceRecommender> make_stream_model(const StreamStudy& st,
                                                            const std::string& kind) {
  auto model = make_bench_model(kind,
                                st.items,
                                *std::max_element(st.lengths.begin(), st.lengths.end()),
                                st.dim,
                                st.codebooks,
                                st.seed);
  model->eval();
  return model;
}

// The model's streaming form; a UsageError naming the kind when it has none.
UserStream begin_user_stream(rec::SequenceRecommender& model, const std::string& kind) {
  try {
    if (auto* sasrec = dynamic_cast<rec::SASRec*>(&model)) {
      auto s = std::make_shared<rec::SASRecStream>(sasrec->begin_stream());
      return {[s](int64_t item) { return s->push(item); },
              [s] {
                return s->state_bytes();
              }};
    }
    if (auto* lisa = dynamic_cast<rec::LISA*>(&model)) {
      auto s = std::make_shared<nn::LisaStream>(lisa->attention_tables());
      return {[s, lisa](int64_t item) { return lisa->stream_step(*s, item, s->length()); },
              [s] {
                return static_cast<int64_t>(s->histogram().nbytes());
              }};
    }
  } catch (const ValueError& e) {
    throw cli::UsageError("--stream: kind '" + kind + "': " + e.what());
  }
  throw cli::UsageError("--stream: kind '" + kind + "' has no streaming form");
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double seconds_of(const std::function<void()>& fn, bool cpu_clock) {
  if (cpu_clock) {
    const double t0 = process_cpu_seconds();
    fn();
    return process_cpu_seconds() - t0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct StreamPoint {
  double stream_ms = 0, recompute_ms = 0;
  int64_t state_bytes = 0;
};

// One pass over the history: every push is timed, the windows ending at each length are kept;
// the recomputation is timed at the last recompute_reps positions of each window.
std::map<int64_t, StreamPoint> measure_kind(const StreamStudy& st, const std::string& kind) {
  auto model = make_stream_model(st, kind);
  ag::NoGradGuard no_grad;
  const Tensor catalogue =
      model->item_vectors(arange(1.0, static_cast<double>(st.items + 1), 1.0, kInt64)).value();
  const int64_t longest = model->max_length();
  const Tensor history = randint({1, longest}, 1, st.items + 1, RngKey{st.seed, 5});
  auto score = [&](const Tensor& h) {  // [items] scores of the next item
    return matmul(catalogue, h.reshape({st.dim, 1}));
  };
  UserStream user = begin_user_stream(*model, kind);
  std::map<int64_t, StreamPoint> points;
  std::vector<double> window;
  for (int64_t t = 1; t <= longest; ++t) {
    const int64_t item = history.at<int64_t>({0, t - 1});
    const double s = seconds_of([&] { score(user.push(item)); }, st.cpu_clock);
    for (int64_t l : st.lengths) {
      if (t > l - st.window && t <= l)
        window.push_back(s);
    }
    if (std::find(st.lengths.begin(), st.lengths.end(), t) == st.lengths.end())
      continue;
    StreamPoint& pt = points[t];
    pt.stream_ms = median(window) * 1e3;
    window.clear();
    pt.state_bytes = user.state_bytes();
    std::vector<double> recompute;
    for (int64_t r = 0; r < st.recompute_reps; ++r) {
      const int64_t u = t - r;  // the prefix lengths at the end of the window
      const Tensor prefix = slice(history, 1, 0, u);
      recompute.push_back(seconds_of(
          [&] {
            const Tensor h = model->hidden(prefix).value();
            score(slice(h, 1, u - 1, u));
          },
          st.cpu_clock));
    }
    pt.recompute_ms = median(recompute) * 1e3;
  }
  return points;
}

void write_stream_outputs(const std::string& dir, const cli::Table& table) {
  table.write(dir, "model_stream");
  plot_by_kind(table,
               dir,
               "model_stream",
               "t",
               "one user's next-item scoring",
               "history length",
               {{"model_stream_step", "stream step ms"},
                {"model_stream_recompute", "recompute ms"},
                {"model_stream_state", "state bytes"}});
}

}  // namespace

void add_model_stream_options(cli::Parser& parser) {
  parser.options().add_options()(
      "stream",
      "the streaming study: one user's next-item scoring after each new item, time per step "
      "against history length (default kinds softmax-fused, favor, linear-elu, lisa-base, "
      "lisa-soft)")("window",
                    cli::po::value<int64_t>()->default_value(32),
                    "--stream: steps per length whose median is reported")(
      "recompute-reps",
      cli::po::value<int64_t>()->default_value(5),
      "--stream: recomputations on the prefix per length (median)")(
      "clock",
      cli::po::value<std::string>()->default_value("cpu"),
      "cpu (process CPU time, robust on a shared machine: bench model the median of --reps "
      "runs, 3 by default; --stream a step as the median of --window pushes) or wall "
      "(wall-clock time; bench model: --budget and --reps as the other bench modes)");
}

bool cpu_clock_option(const cli::Parser& p) {
  const std::string clock = p.get<std::string>("clock");
  if (clock != "cpu" && clock != "wall")
    throw cli::UsageError("--clock: 'cpu' or 'wall', got '" + clock + "'");
  return clock == "cpu";
}

double median_cpu_seconds(const std::function<void()>& fn, int reps) {
  fn();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) t.push_back(seconds_of(fn, true));
  return median(t);
}

int run_model_stream_bench(const cli::Parser& parser) {
  const StreamStudy st = parse_stream_study(parser);
  for (const std::string& kind : st.kinds) {  // refuse kinds without a stream before timing
    StreamStudy tiny = st;
    tiny.lengths = {st.window};
    auto model = make_stream_model(tiny, kind);
    begin_user_stream(*model, kind);
  }
  std::cout << machine_summary() << "\n"
            << "one user, width " << st.dim << ", one head, " << st.items
            << " items scored after every push, SASRec kinds 2 blocks, LISA " << st.codebooks
            << ", FAVOR+ m = 128; stream ms: median of the " << st.window
            << " pushes ending at t; recompute ms: median of " << st.recompute_reps
            << " runs of hidden() on the prefix; "
            << (st.cpu_clock ? "process CPU time" : "wall-clock time") << "\n\n";
  cli::Table table({"kind", "t", "stream step ms", "recompute ms", "speedup", "state bytes"});
  for (const std::string& kind : st.kinds) {
    for (const auto& [t, pt] : measure_kind(st, kind)) {
      table.add_row({kind,
                     t,
                     cli::Cell(pt.stream_ms, 3),
                     cli::Cell(pt.recompute_ms, 2),
                     cli::Cell(pt.recompute_ms / std::max(pt.stream_ms, 1e-9), 1),
                     pt.state_bytes});
    }
    std::cerr << "." << std::flush;
  }
  std::cerr << "\n";
  table.print(std::cout);
  if (!parser.common().out.empty())
    write_stream_outputs(parser.common().out, table);
  return 0;
}

std::shared_ptr<rec::SequenceRecommender> make_bench_model(const std::string& kind,
                                                           int64_t items,
                                                           int64_t max_length,
                                                           int64_t dim,
                                                           const std::string& codebooks,
                                                           uint64_t seed) {
  cli::ModelOptions mo;
  mo.kind = kind;
  mo.num_items = items;
  mo.max_length = max_length;
  mo.dim = dim;
  mo.seed = seed;
  mo.kind_options = cli::declared_option_values(
      rec::model_kind(kind).options,
      kind,
      {{"features", "128"}, {"codebooks", codebooks}, {"horizon", std::to_string(max_length)}});
  return cli::make_model(mo);
}

void plot_by_kind(const cli::Table& table,
                  const std::string& dir,
                  const std::string& data,
                  const std::string& x,
                  const std::string& subject,
                  const std::string& against,
                  const std::vector<std::pair<std::string, std::string>>& columns) {
  for (const auto& [stem, column] : columns) {
    cli::PlotSpec spec;
    spec.title = subject + ": " + column + " against " + against;
    spec.x = x;
    spec.y = column;
    spec.group = {"kind"};
    spec.log_x = spec.log_y = true;
    spec.data = data;
    cli::plot(table, dir, stem, spec);
  }
}

}  // namespace attnlab::bench
