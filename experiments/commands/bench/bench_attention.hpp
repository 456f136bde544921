// `attnlab bench attention` as a library function (attnlab::commands): the time and peak tensor
// memory of attention kernels against sequence length, forward alone and forward + backward, and
// for kinds with random features the crossover length at which they beat softmax-fused. The
// subcommand parses its flags into AttentionBenchOptions and prints the report; a program can
// call run_bench_attention directly (nothing is printed unless `log` is set).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/table.hpp"

namespace attnlab::commands {

struct AttentionBenchOptions {
  std::vector<std::string> kinds{"softmax-fused"};  // attention kinds (nn::attention_kinds())
  std::vector<std::string> masks{"causal"};         // "causal" and / or "none"
  std::vector<int64_t> lengths{256, 512, 1024, 2048, 4096, 8192, 16384};
  std::vector<int64_t> head_dims{64};
  std::vector<int64_t> features{256};  // m, for the kinds with random projections
  std::vector<int64_t> thread_counts;  // empty: 1 and all cores
  int64_t heads = 1, batch = 1;
  int64_t max_reference_length = 16384;  // kinds with capabilities.quadratic_memory: skipped above
  int64_t max_exact_length = 65536;      // kinds with capabilities.quadratic_time: skipped above
  bool crossover = true;  // add softmax-fused for the crossover table when a linear kind runs
  double decay = 0;       // exact kinds: the distance bias -decay * |i - j|
  // Per kind, its own options as (name, text) pairs over its defaults (e.g. {"favor",
  // {{"feature-norm", "sqrt-d"}}}); the features m come from `features`.
  using KindOptions = std::map<std::string, std::vector<std::pair<std::string, std::string>>>;
  KindOptions kind_options;
  bench::TimingPolicy timing;
  DType dtype = kFloat32;
  uint64_t seed = 0;
  bool quick = false;           // a rough FMA peak (the test suite's smoke runs)
  std::ostream* log = nullptr;  // a dot per measurement while running; null: silent
};

struct AttentionBenchReport {
  // One row per (threads, mask, head_dim, kind, m, L): times, peak MiB, GFLOP/s, % of peak.
  cli::Table table{{}};
  // Per linear configuration: the smallest L where its forward + backward beats softmax-fused.
  cli::Table crossover{{}};
};

// Checks the options (cli::UsageError naming the flag), then measures every configuration.
AttentionBenchReport run_bench_attention(const AttentionBenchOptions& options);

// Writes the tables to `dir` (attention.csv / .jsonl, attention_crossover.csv / .jsonl) and the
// log-log plots of time and memory against L.
void write_bench_attention(const std::string& dir,
                           const AttentionBenchOptions& options,
                           const AttentionBenchReport& report);

}  // namespace attnlab::commands
