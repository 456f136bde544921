// Benchmark helpers shared by the `attnlab bench` modes: timing, the machine's FMA peak, peak
// tensor memory, and the registry of modes (one file per mode in experiments/).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace attnlab::bench {

struct Timing {
  double best = 0;    // seconds
  double median = 0;  // seconds
  int reps = 0;
};

// Runs fn once to warm up, then repeats it until `budget` seconds have passed (at least
// min_reps, at most max_reps times). Report best (noise only makes runs slower) and median.
Timing measure(const std::function<void()>& fn,
               double budget = 0.5,
               int min_reps = 3,
               int max_reps = 1000);

// FP32 FMA peak of `threads` cores in GFLOP/s, measured with a register-resident xsimd FMA loop
// (12 independent accumulators cover the FMA latency on every x86 core). FP64 peak is half.
// `rough`: two tiny runs instead of the best of 40 (the `--quick` modes of the test suite, where
// the figure is not read and the full probe takes a minute under the sanitizers).
double fma_peak_gflops(int threads, bool rough = false);

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
