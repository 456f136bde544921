// `attnlab bench model --stream`: one user's online next-item scoring after each new item, time
// per step against the history length (bench_model_stream.cpp).
#pragma once

#include <functional>

#include "experiments/support/cli.hpp"

namespace attnlab::bench {

// The options --stream adds to `bench model` (--window, --recompute-reps), and --clock.
void add_model_stream_options(cli::Parser& parser);
// --clock: true for cpu (process CPU time, the default), false for wall; UsageError otherwise.
bool cpu_clock_option(const cli::Parser& parser);
// The median process CPU time (all threads) of `reps` runs of fn after one warm-up, in seconds:
// on a shared machine the work a call did, without the time the scheduler gave to other
// processes (which stretches the wall-clock time of every call longer than a time slice).
double median_cpu_seconds(const std::function<void()>& fn, int reps);
// Runs the streaming study with the parsed `bench model` options; returns the exit code.
int run_model_stream_bench(const cli::Parser& parser);

}  // namespace attnlab::bench
