// `attnlab bench tape`: the engine's per-op overhead, measured on tiny (scalar) tensors where the
// arithmetic is negligible: y = y * a + b repeated N times, forward then backward then freeing
// the graph. Reported per recorded op (2 per multiply-add).
#include <algorithm>
#include <chrono>
#include <iostream>

#include "autograd/autograd.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"

namespace attnlab {
namespace {

struct TapeTimes {
  double forward, backward, release;  // microseconds per op
};

// One run: `chains` independent graphs of `length` multiply-adds each.
TapeTimes run_chains(int64_t chains, int64_t length) {
  using clock = std::chrono::steady_clock;
  double fwd = 0, bwd = 0, rel = 0;
  for (int64_t c = 0; c < chains; ++c) {
    ag::Var x = ag::param(scalar_tensor(0.5));
    ag::Var a = ag::param(scalar_tensor(0.999)), b = ag::param(scalar_tensor(0.001));
    const auto t0 = clock::now();
    ag::Var y = x;
    for (int64_t i = 0; i < length; ++i) y = y * a + b;
    const auto t1 = clock::now();
    y.backward();
    const auto t2 = clock::now();
    y = ag::Var();
    const auto t3 = clock::now();
    fwd += std::chrono::duration<double, std::micro>(t1 - t0).count();
    bwd += std::chrono::duration<double, std::micro>(t2 - t1).count();
    rel += std::chrono::duration<double, std::micro>(t3 - t2).count();
  }
  const double ops = 2.0 * static_cast<double>(chains * length);
  return {fwd / ops, bwd / ops, rel / ops};
}

int run_tape_bench(int argc, char** argv) {
  cli::Parser parser("bench tape", "[--ops N] [--reps R] [--quick]");
  parser.options().add_options()("ops",
                                 cli::po::value<int64_t>()->default_value(20000),
                                 "scalar multiply-adds per measurement (2 ops each)")(
      "reps",
      cli::po::value<int>()->default_value(10),
      "repetitions (the best and the median total are reported)")("quick",
                                                                  "a short run for the test suite");
  parser.unused_common("seed", "its graph does not depend on one");
  parser.unused_common("dtype", "its graph is float32");
  if (!parser.parse(argc, argv))
    return 0;
  const int64_t n = parser.has("quick") ? 2000 : parser.get<int64_t>("ops");
  const int reps = parser.has("quick") ? 2 : parser.get<int>("reps");
  if (n <= 0 || reps <= 0)
    throw cli::UsageError("--ops and --reps must be positive");
  std::cout << bench::machine_summary() << "\n"
            << n << " scalar multiply-adds (" << 2 * n << " recorded ops), forward + backward + "
            << "freeing the graph; best of " << reps << " runs (and the median total), "
            << "microseconds per op\n\n";
  cli::Table table({"graph",
                    "ops",
                    "forward us/op",
                    "backward us/op",
                    "free us/op",
                    "total us/op",
                    "median total us/op"});
  struct Layout {
    const char* name;
    int64_t chains;
  };
  for (Layout layout : {Layout{"one chain", 1}, Layout{"10 chains", 10}}) {
    const int64_t length = n / layout.chains;
    TapeTimes best{1e9, 1e9, 1e9};
    double best_total = 1e9;
    std::vector<double> totals;
    run_chains(layout.chains, length);  // warm-up (allocator pools)
    for (int r = 0; r < reps; ++r) {
      const TapeTimes t = run_chains(layout.chains, length);
      totals.push_back(t.forward + t.backward + t.release);
      if (t.forward + t.backward + t.release < best_total) {
        best = t;
        best_total = t.forward + t.backward + t.release;
      }
    }
    table.add_row({std::string(layout.name) + " of " + std::to_string(length),
                   2 * n,
                   cli::Cell(best.forward, 3),
                   cli::Cell(best.backward, 3),
                   cli::Cell(best.release, 3),
                   cli::Cell(best_total, 3),
                   cli::Cell(bench::median(totals), 3)});
  }
  table.print(std::cout);
  if (!parser.common().out.empty())
    table.write(parser.common().out, "tape");
  return 0;
}

const bench::RegisterMode tape_mode("tape",
                                    "autograd overhead per op on scalar tensors",
                                    run_tape_bench);

}  // namespace
}  // namespace attnlab
