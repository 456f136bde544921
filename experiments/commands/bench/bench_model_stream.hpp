// `attnlab bench model --stream`: one user's online next-item scoring after each new item, time
// per step against the history length (bench_model_stream.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"
#include "layers/recommender/recommender.hpp"

namespace attnlab::bench {

// The options --stream adds to `bench model` (--window, --recompute-reps), and --clock.
void add_model_stream_options(cli::Parser& parser);
// --clock: true for cpu (process CPU time, the default), false for wall; UsageError otherwise.
bool cpu_clock_option(const cli::Parser& parser);
// The median process CPU time (all threads) of `reps` runs of fn after one warm-up, in seconds:
// on a shared machine the work a call did, without the time the scheduler gave to other
// processes (which stretches the wall-clock time of every call longer than a time slice).
double median_cpu_seconds(const std::function<void()>& fn, int reps);
// The model of kind `kind` both studies time: `items` items, positions for `max_length`, width
// `dim`; FAVOR+ with m = 128 features, LISA with `codebooks`, cosFormer with the horizon
// max_length (the only ones of these options the kind declares are set).
std::shared_ptr<rec::SequenceRecommender> make_bench_model(const std::string& kind,
                                                           int64_t items,
                                                           int64_t max_length,
                                                           int64_t dim,
                                                           const std::string& codebooks,
                                                           uint64_t seed);
// Log-log plots of the table written as <dir>/<data>.csv, one line per kind: for each
// {stem, column}, `column` against `x`, titled "<subject>: <column> against <against>".
void plot_by_kind(const cli::Table& table,
                  const std::string& dir,
                  const std::string& data,
                  const std::string& x,
                  const std::string& subject,
                  const std::string& against,
                  const std::vector<std::pair<std::string, std::string>>& columns);
// Runs the streaming study with the parsed `bench model` options; returns the exit code.
int run_model_stream_bench(const cli::Parser& parser);

}  // namespace attnlab::bench
