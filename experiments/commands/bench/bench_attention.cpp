// `attnlab bench attention`: time and peak tensor memory of attention kernels against sequence
// length, forward alone and forward + backward, for 1 and all threads.
//
// Memory is the peak of live tensor bytes above the level before the call (attnlab's allocator
// counts every tensor): it includes the output, the gradients of q, k and v, everything saved for
// backward and all scratch tensors, but not q, k, v themselves.
//
// FAVOR+ kinds (favor, favor-iid, favor-hyp, favor-trig, favor-relu, linear-elu) are swept over
// --features (m, the random projections), and a crossover table reports, for every FAVOR+
// configuration, the smallest L of the sweep at which its forward + backward beats softmax-fused
// (measured alongside, up to --max-exact-length) with the same head_dim, mask and threads.
#include "experiments/commands/bench/bench_attention.hpp"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <tuple>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/commands/bench/bench_lisa.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/kind_flags.hpp"
#include "experiments/support/kinds_table.hpp"
#include "experiments/support/plot.hpp"
#include "experiments/support/table.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/favor/favor_attention.hpp"

namespace attnlab {
namespace {

// Each chosen kind's options given as flags (the kinds' own, from the registry), checked.
using KindSettings = commands::AttentionBenchOptions::KindOptions;

// The kind's options: its defaults, the flags given for it, and m random features for the kinds
// that have them (m = 0: the kind's own).
OptionValues kind_options(const KindSettings& settings, const nn::AttentionKind& k, int64_t m) {
  std::vector<std::pair<std::string, std::string>> given;
  const auto it = settings.find(k.name);
  if (it != settings.end())
    given = it->second;
  if (m > 0 && k.capabilities.random_features)
    given.emplace_back("features", std::to_string(m));
  return cli::kind_option_values(k.options, k.name, given);
}

// The baseline of the crossover table, and of what counts as exact: its family's kinds.
const char* const kExactBaseline = "softmax-fused";

bool is_exact(const std::string& kind) {
  return nn::attention_kind(kind).family == nn::attention_kind(kExactBaseline).family;
}

// The kind's cost model (nn::AttentionKind::cost) for one configuration, forward + backward.
double kernel_flops(const KindSettings& settings,
                    const std::string& kind,
                    int64_t bh,
                    int64_t l,
                    int64_t d,
                    int64_t m,
                    bool causal) {
  const nn::AttentionKind& k = nn::attention_kind(kind);
  if (!k.cost)
    return 0.0;
  nn::AttentionShape shape;
  shape.batch_heads = bh;
  shape.lq = shape.lk = l;
  shape.d = shape.dv = d;
  shape.causal = causal;
  return k.cost(shape, kind_options(settings, k, m)).total_flops();
}

struct Measured {
  double fwd = 0, both = 0;
  int64_t bytes = 0;
};

// (kind, m, head_dim, mask, threads) -> L -> measurement
using Config = std::tuple<std::string, int64_t, int64_t, std::string, int64_t>;

// `--kind lisa...`: LISA is not a q/k/v kernel (its keys and values are codeword projections),
// so its study lives in bench_lisa.cpp, which also measures the exact kernels beside it. Any
// --kind value naming one of its kinds goes there.
bool asks_for_lisa(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::string prefix = "--kind=";
    std::string value;
    if (a == "--kind" && i + 1 < argc)
      value = argv[i + 1];
    else if (a.compare(0, prefix.size(), prefix) == 0)
      value = a.substr(prefix.size());
    else
      continue;
    std::vector<std::string> kinds;
    try {
      kinds = cli::split_list(value, "--kind");
    } catch (const cli::UsageError&) {
      return false;  // checked_kinds reports it
    }
    for (const auto& k : kinds)
      if (is_bench_lisa_kind(k))
        return true;
  }
  return false;
}

// What to measure: parsed and validated flags (with softmax-fused added for the crossover).
using Study = commands::AttentionBenchOptions;

cli::KindFlags add_options(cli::Parser& parser) {
  std::string kinds_default;
  for (const auto& k : nn::attention_kinds()) {
    if (is_exact(k.name))
      kinds_default += (kinds_default.empty() ? "" : ",") + k.name;
  }
  parser.options().add_options()("kind",
                                 cli::po::value<std::string>()->default_value(kinds_default),
                                 "attention kinds (comma-separated; see --list)")(
      "list", "list the attention kinds and exit")(
      "lengths",
      cli::po::value<std::string>()->default_value("256,512,1024,2048,4096,8192,16384"),
      "sequence lengths")(
      "head-dim", cli::po::value<std::string>()->default_value("64"), "head dimensions (list)")(
      "features",
      cli::po::value<std::string>()->default_value("256"),
      "FAVOR+ random projections m (list, e.g. 64,128,256)")(
      "heads", cli::po::value<int64_t>()->default_value(1), "heads")(
      "batch", cli::po::value<int64_t>()->default_value(1), "batch size")(
      "thread-counts",
      cli::po::value<std::string>()->default_value(""),
      "thread counts to run (default: 1 and all)")(
      "mask",
      cli::po::value<std::string>()->default_value("causal"),
      "causal, none, or both as a list (causal,none)")(
      "max-reference-length",
      cli::po::value<int64_t>()->default_value(16384),
      "skip kinds that materialise the L x L weights (softmax-reference; capabilities."
      "quadratic_memory) above this length")(
      "max-exact-length",
      cli::po::value<int64_t>()->default_value(65536),
      "skip every O(L^2)-time kind (softmax-fused; capabilities.quadratic_time) above this "
      "length")("no-crossover", "do not add softmax-fused for the crossover table")(
      "decay",
      cli::po::value<double>()->default_value(0.0),
      "exact kinds: distance bias -decay * |i - j| on the logits (ALiBi-style; LISA's decay)")(
      "quick", "tiny sizes for the test suite");
  bench::add_timing_options(parser);
  // The kinds' own options (--feature-norm, --impl, ...); --features is the study's list above.
  return cli::KindFlags::for_attention(parser, {"features"});
}

// Each kind-option flag given goes to the chosen kinds that declare it; a flag none of them
// declares is an error (it would measure nothing).
KindSettings kind_settings(const cli::Parser& parser,
                           const cli::KindFlags& flags,
                           const std::vector<std::string>& kinds) {
  KindSettings settings;
  for (const std::string& name : flags.names()) {
    if (!parser.given(name))
      continue;
    bool used = false;
    for (const std::string& kind : kinds) {
      if (nn::attention_kind(kind).options.find(name) == nullptr)
        continue;
      settings[kind].emplace_back(name, parser.get<std::string>(name));
      used = true;
    }
    if (!used)
      throw cli::UsageError("--" + name + ": no kind of --kind " + parser.get<std::string>("kind") +
                            " has this option");
  }
  for (const auto& [kind, given] : settings)  // bad values now, not after the first runs
    cli::kind_option_values(nn::attention_kind(kind).options, kind, given);
  return settings;
}

// The kinds to run: known kinds only; softmax-fused added for the crossover table.
std::vector<std::string> checked_kinds(const Study& st) {
  std::vector<std::string> kinds = st.kinds;
  if (kinds.empty())
    throw cli::UsageError("--kind: empty list");
  bool any_favor = false, has_exact = false;
  for (const std::string& k : kinds) {
    const nn::AttentionKind* kind = nn::find_attention_kind(k);
    if (kind == nullptr) {
      throw cli::UsageError("--kind: unknown attention kind '" + k +
                            "' (known: " + nn::attention_kind_names() + ")");
    }
    if (st.decay > 0 && !kind->capabilities.distance_decay)
      throw cli::UsageError("--decay: attention kind '" + k + "' takes no distance decay");
    any_favor = any_favor || !is_exact(k);
    has_exact = has_exact || k == kExactBaseline;
  }
  if (any_favor && !has_exact && st.crossover)
    kinds.push_back(kExactBaseline);
  return kinds;
}

// The options' values, checked; the kinds with softmax-fused for the crossover.
Study checked(Study st) {
  if (!(st.decay >= 0))
    throw cli::UsageError("--decay: expected a number >= 0");
  st.kinds = checked_kinds(st);
  auto positive = [](const std::vector<int64_t>& values, const std::string& flag) {
    if (values.empty())
      throw cli::UsageError(flag + ": empty list");
    for (int64_t v : values) {
      if (v <= 0)
        throw cli::UsageError(flag + ": values must be positive, got " + std::to_string(v));
    }
  };
  positive(st.lengths, "--lengths");
  positive(st.head_dims, "--head-dim");
  positive(st.features, "--features");
  if (st.heads <= 0 || st.batch <= 0)
    throw cli::UsageError("--heads and --batch must be positive");
  if (st.masks.empty())
    throw cli::UsageError("--mask: empty list");
  for (const std::string& m : st.masks) {
    if (m != "causal" && m != "none")
      throw cli::UsageError("--mask: expected causal or none, got '" + m + "'");
  }
  if (st.thread_counts.empty()) {
    const int all = num_threads();
    st.thread_counts = all > 1 ? std::vector<int64_t>{1, all} : std::vector<int64_t>{1};
  }
  positive(st.thread_counts, "--thread-counts");
  for (const auto& [kind, given] : st.kind_options) {  // bad values now, not after the first runs
    if (std::find(st.kinds.begin(), st.kinds.end(), kind) == st.kinds.end())
      throw cli::UsageError("kind options for '" + kind + "', which is not one of the kinds");
    cli::kind_option_values(nn::attention_kind(kind).options, kind, given);
  }
  return st;
}

// The flags as options, checked (run_bench_attention checks them again, for its other callers).
Study parse_study(const cli::Parser& parser, const cli::KindFlags& flags) {
  Study st;
  st.quick = parser.has("quick");
  st.decay = parser.get<double>("decay");
  st.kinds = cli::split_list(parser.get<std::string>("kind"), "--kind");
  st.crossover = !parser.has("no-crossover");
  st.lengths =
      cli::parse_int_list(st.quick ? "32,64" : parser.get<std::string>("lengths"), "--lengths");
  st.head_dims = cli::parse_int_list(parser.get<std::string>("head-dim"), "--head-dim");
  st.features =
      cli::parse_int_list(st.quick ? "16" : parser.get<std::string>("features"), "--features");
  st.heads = parser.get<int64_t>("heads");
  st.batch = parser.get<int64_t>("batch");
  st.masks = cli::split_list(parser.get<std::string>("mask"), "--mask");
  if (!parser.get<std::string>("thread-counts").empty())
    st.thread_counts =
        cli::parse_int_list(parser.get<std::string>("thread-counts"), "--thread-counts");
  st.max_reference_length = parser.get<int64_t>("max-reference-length");
  st.max_exact_length = parser.get<int64_t>("max-exact-length");
  st.timing = bench::timing_policy(parser, st.quick);
  st.dtype = parser.common().dtype;
  st.seed = parser.common().seed;
  st = checked(st);
  st.kind_options = kind_settings(parser, flags, st.kinds);
  return st;
}

std::shared_ptr<nn::AttentionKernel> make_kernel(const Study& st,
                                                 const std::string& kind,
                                                 int64_t d,
                                                 int64_t m) {
  nn::KernelContext ctx;
  ctx.seed = st.seed;
  ctx.head_dim = d;
  const nn::AttentionKind& k = nn::attention_kind(kind);
  auto kernel = k.make(kind_options(st.kind_options, k, m), ctx);
  kernel->to(st.dtype);
  if (auto favor = std::dynamic_pointer_cast<nn::FavorKernel>(kernel))
    favor->keep_trace = false;  // a user's training run would not keep it either
  return kernel;
}

// By what the kind declares (softmax-reference materialises its weights, softmax-fused is O(L^2)
// in time only), so that a user's quadratic kind is skipped like the built-in ones.
bool skipped(const Study& st, const std::string& kind, int64_t l) {
  const nn::KindCapabilities& c = nn::attention_kind(kind).capabilities;
  return (c.quadratic_memory && l > st.max_reference_length) ||
         (c.quadratic_time && l > st.max_exact_length);
}

// Times forward alone and forward + backward of one kernel at one length.
Measured measure_one(const Study& st,
                     nn::AttentionKernel& kernel,
                     const nn::AttentionMask& mask,
                     const Shape& s) {
  Tensor q = randn(s, RngKey{st.seed, 1}, st.dtype), k = randn(s, RngKey{st.seed, 2}, st.dtype);
  Tensor v = randn(s, RngKey{st.seed, 3}, st.dtype), g = randn(s, RngKey{st.seed, 4}, st.dtype);
  const bench::Timing fwd = st.timing.run(
      [&] {
        ag::NoGradGuard no_grad;
        ag::Var out = kernel.attend(ag::constant(q), ag::constant(k), ag::constant(v), mask);
      },
      1);
  auto fwd_bwd = [&] {
    ag::Var vq = ag::param(q), vk = ag::param(k), vv = ag::param(v);
    kernel.attend(vq, vk, vv, mask).backward(g);
  };
  const bench::Timing both = st.timing.run(fwd_bwd, 1);
  return {st.timing.headline(fwd), st.timing.headline(both), bench::peak_tensor_bytes(fwd_bwd)};
}

cli::Table results_table(const Study& st) {
  const std::string stat = std::string(" (") + st.timing.headline_name() + ")";
  return cli::Table({"kind",
                     "m",
                     "head_dim",
                     "mask",
                     "L",
                     "threads",
                     "fwd ms" + stat,
                     "fwd+bwd ms" + stat,
                     "peak MiB",
                     "fwd+bwd GFLOP/s",
                     "% of peak"});
}

// Every (threads, mask, head_dim, kind, m, L) of the study: one table row each.
std::map<Config, std::map<int64_t, Measured>> measure_all(const Study& st, cli::Table& table) {
  std::vector<double> peak(num_threads() + 1, 0.0);
  for (int64_t t : st.thread_counts) {
    if (t < static_cast<int64_t>(peak.size()))
      peak[t] = bench::fma_peak_gflops(static_cast<int>(t), st.quick);
  }
  std::map<Config, std::map<int64_t, Measured>> results;
  for (int64_t threads : st.thread_counts) {
    set_num_threads(static_cast<int>(threads));
    for (const std::string& mask_name : st.masks) {
      nn::AttentionMask mask;
      mask.causal = mask_name == "causal";
      mask.decay = st.decay;
      for (int64_t d : st.head_dims) {
        for (const std::string& kind : st.kinds) {
          const bool features = nn::attention_kind(kind).capabilities.random_features;
          for (int64_t m : features ? st.features : std::vector<int64_t>{0}) {
            auto kernel = make_kernel(st, kind, d, m);
            for (int64_t l : st.lengths) {
              if (skipped(st, kind, l))
                continue;
              const Measured r = measure_one(st, *kernel, mask, {st.batch, st.heads, l, d});
              results[{kind, m, d, mask_name, threads}][l] = r;
              const double flops =
                  kernel_flops(st.kind_options, kind, st.batch * st.heads, l, d, m, mask.causal);
              const double gflops = flops / r.both / 1e9;
              const double pk = threads < static_cast<int64_t>(peak.size())
                                    ? peak[threads] * (st.dtype == kFloat64 ? 0.5 : 1.0)
                                    : 0.0;
              table.add_row(
                  {kind,
                   m > 0 ? cli::Cell(m) : cli::Cell("-"),
                   d,
                   mask_name,
                   l,
                   threads,
                   cli::Cell(r.fwd * 1e3, 2),
                   cli::Cell(r.both * 1e3, 2),
                   cli::Cell(r.bytes / 1048576.0, 1),
                   // No cost model (optional for a kind): no rate, not a rate of 0.
                   flops > 0 ? cli::Cell(gflops, 1) : cli::Cell("-"),
                   flops > 0 && pk > 0 ? cli::Cell(100 * gflops / pk, 1) : cli::Cell("-")});
              if (st.log != nullptr)
                *st.log << "." << std::flush;
            }
          }
        }
      }
    }
  }
  if (st.log != nullptr)
    *st.log << "\n";
  set_num_threads(static_cast<int>(peak.size()) - 1);
  return results;
}

// Per FAVOR+ configuration, the smallest L where its fwd+bwd beats softmax-fused.
cli::Table crossover_table(const std::map<Config, std::map<int64_t, Measured>>& results) {
  cli::Table cross({"kind",
                    "m",
                    "head_dim",
                    "mask",
                    "threads",
                    "crossover L",
                    "at L",
                    "softmax-fused ms",
                    "favor ms",
                    "speedup",
                    "peak MiB ratio"});
  for (const auto& [config, by_l] : results) {
    const auto& [kind, m, d, mask_name, threads] = config;
    if (is_exact(kind))
      continue;
    const auto exact_it = results.find(Config{kExactBaseline, 0, d, mask_name, threads});
    if (exact_it == results.end())
      continue;
    const auto& exact = exact_it->second;
    int64_t crossover = -1, largest = -1;
    for (const auto& [l, r] : by_l) {
      const auto e = exact.find(l);
      if (e == exact.end())
        continue;
      largest = l;
      if (crossover < 0 && r.both < e->second.both)
        crossover = l;
    }
    if (largest < 0)
      continue;
    const Measured &f = by_l.at(largest), &e = exact.at(largest);
    cross.add_row({kind,
                   m > 0 ? cli::Cell(m) : cli::Cell("-"),
                   d,
                   mask_name,
                   threads,
                   crossover > 0 ? cli::Cell(crossover) : cli::Cell("> " + std::to_string(largest)),
                   largest,
                   cli::Cell(e.both * 1e3, 2),
                   cli::Cell(f.both * 1e3, 2),
                   cli::Cell(e.both / f.both, 2),
                   cli::Cell(static_cast<double>(f.bytes) / std::max<int64_t>(1, e.bytes), 2)});
  }
  return cross;
}

// parse -> measure -> report.
int run_attention_bench(int argc, char** argv) {
  if (asks_for_lisa(argc, argv))
    return run_bench_lisa(argc, argv);
  cli::Parser parser("bench attention", "[--kind a,b] [--lengths 256,...] [options]");
  const cli::KindFlags kind_flags = add_options(parser);
  if (!parser.parse(argc, argv))
    return 0;
  if (parser.has("list")) {
    cli::kinds_table().print(std::cout);
    return 0;
  }
  Study st = parse_study(parser, kind_flags);  // bad flags fail before anything is printed
  st.log = &std::cerr;
  std::cout << bench::machine_summary() << "\n"
            << "batch " << st.batch << ", heads " << st.heads << ", " << dtype_name(st.dtype)
            << "\n\n";
  const commands::AttentionBenchReport r = commands::run_bench_attention(st);
  r.table.print(std::cout);
  std::cout << "\nTimes: the " << st.timing.headline_name()
            << " run. peak MiB: live tensor bytes above the inputs during forward + backward.\n"
               "GFLOP/s: exact kinds count 4 L^2 d (forward) + 10 L^2 d (backward) per head, "
               "halved when causal; FAVOR+ kinds 12 L m d (the two projections, forward + "
               "backward) + 12 L F d (the prefix sums or the bidirectional products, F features "
               "= m or 2m) per head.\n";
  if (r.crossover.rows() > 0) {
    std::cout << "\nCrossover against softmax-fused (forward + backward; \"at L\": the largest L "
                 "both were measured at):\n";
    r.crossover.print(std::cout);
  }
  if (!parser.common().out.empty())
    commands::write_bench_attention(parser.common().out, st, r);
  return 0;
}

const bench::RegisterMode attention_mode("attention",
                                         "attention kernels: time and memory against length",
                                         run_attention_bench);

}  // namespace

commands::AttentionBenchReport commands::run_bench_attention(const AttentionBenchOptions& options) {
  const Study st = checked(options);
  AttentionBenchReport report;
  report.table = results_table(st);
  const auto results = measure_all(st, report.table);
  report.crossover = crossover_table(results);
  return report;
}

void commands::write_bench_attention(const std::string& dir,
                                     const AttentionBenchOptions& options,
                                     const AttentionBenchReport& report) {
  const std::string time_column =
      std::string("fwd+bwd ms (") + options.timing.headline_name() + ")";
  report.table.write(dir, "attention");
  // Log-log plots of time and memory against L, one line per configuration.
  for (const auto& [stem, column] :
       {std::pair<std::string, std::string>{"attention_time", time_column},
        {"attention_memory", "peak MiB"}}) {
    cli::PlotSpec spec;
    spec.title = "attention forward + backward: " + column + " against L";
    spec.x = "L";
    spec.y = column;
    spec.group = {"kind", "m", "head_dim", "mask", "threads"};
    spec.log_x = spec.log_y = true;
    spec.data = "attention";
    cli::plot(report.table, dir, stem, spec);
  }
  if (report.crossover.rows() > 0)
    report.crossover.write(dir, "attention_crossover");
}

}  // namespace attnlab
