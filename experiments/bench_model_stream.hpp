// `attnlab bench model --stream`: one user's online next-item scoring after each new item, time
// per step against the history length (bench_model_stream.cpp).
#pragma once

#include "experiments/support/cli.hpp"

namespace attnlab::bench {

// The options --stream adds to `bench model` (--window, --recompute-reps).
void add_model_stream_options(cli::Parser& parser);
// Runs the streaming study with the parsed `bench model` options; returns the exit code.
int run_model_stream_bench(const cli::Parser& parser);

}  // namespace attnlab::bench
