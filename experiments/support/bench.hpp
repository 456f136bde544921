// Benchmark helpers shared by the `attnlab bench` modes: timing, the machine's FMA peak, peak
// tensor memory, and the registry of modes (one file per mode in experiments/).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "experiments/support/cli.hpp"

namespace attnlab::bench {

struct Timing {
  double best = 0;    // seconds (the fastest run)
  double median = 0;  // seconds
  double worst = 0;   // seconds (the slowest run)
  int reps = 0;
};

// Runs fn once to warm up, then repeats it until `budget` seconds have passed (at least
// min_reps, at most max_reps times). Report best (noise only makes runs slower) and median.
// A fast kernel gets many more tries than a slow one, so best-of favours the faster side of a
// ratio on a shared machine: compare two kernels with measure_reps (equal repetitions, median).
Timing measure(const std::function<void()>& fn,
               double budget = 0.5,
               int min_reps = 3,
               int max_reps = 1000);
// The median of a non-empty list (the mean of the two middle values for an even count).
double median(std::vector<double> values);

// Runs fn once to warm up (unless warmup is false), then exactly `reps` times.
Timing measure_reps(const std::function<void()>& fn, int reps, bool warmup = true);

// How a benchmark mode times its kernels: the budgeted best-of (the default) or, with
// `--reps N`, exactly N repetitions reported by their median. Every mode takes --budget and
// --reps through add_timing_options.
struct TimingPolicy {
  double budget = 0.5;  // seconds per measurement, best-of mode
  int reps = 0;         // > 0: equal repetitions, median
  Timing run(const std::function<void()>& fn, int min_reps = 3) const;
  // The time a table reports: the median with --reps, else the best run.
  double headline(const Timing& t) const { return reps > 0 ? t.median : t.best; }
  const char* headline_name() const { return reps > 0 ? "median" : "best"; }
};

// Adds --budget SECONDS and --reps N to a mode's options; timing_policy reads them back (quick:
// the test suite's smoke runs, a tiny budget and at most 2 repetitions).
void add_timing_options(cli::Parser& parser, double default_budget = 0.5);
TimingPolicy timing_policy(const cli::Parser& parser, bool quick, double quick_budget = 0.01);

// FP32 FMA peak of `threads` cores in GFLOP/s, measured with a register-resident xsimd FMA loop
// (12 independent accumulators cover the FMA latency on every x86 core). FP64 peak is half.
// `rough`: two tiny runs instead of the best of 40 (the `--quick` modes of the test suite, where
// the figure is not read and the full probe takes a minute under the sanitizers).
double fma_peak_gflops(int threads, bool rough = false);

// Memory bandwidth in GB/s for a working set of `bytes`: y += a x (vec::fns<float>().axpy, the
// running SIMD path) over two float arrays of bytes / 2 each, split across `threads` threads,
// counted as 12 bytes per element (two reads, one write: STREAM's convention, write-allocate
// traffic not counted); the best of several passes after a warm-up. A working set beyond the
// last-level cache measures DRAM; one that fits measures the cache that holds it, which is the
// bandwidth a kernel with that working set can hope for.
double stream_gbs(int64_t bytes, int threads, bool rough = false);

// Peak bytes of live tensors above the level at the start of fn (attnlab's allocator tracks
// every tensor; this excludes code, stacks and the allocator's own slack).
int64_t peak_tensor_bytes(const std::function<void()>& fn);
// The process's peak resident set size so far (VmHWM), in bytes; 0 if unavailable.
int64_t process_peak_rss();

// `attnlab bench <mode>`: modes register themselves in their own files.
using ModeFn = std::function<int(int argc, char** argv)>;
struct Mode {
  std::string name, summary;
  ModeFn run;
};
std::vector<Mode>& modes();
struct RegisterMode {
  RegisterMode(std::string name, std::string summary, ModeFn run);
};

std::string machine_summary();  // CPU model, cores, SIMD width: printed above every bench table

}  // namespace attnlab::bench
