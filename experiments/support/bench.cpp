#include "experiments/support/bench.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/parallel.hpp"
#include "core/simd_dispatch.hpp"
#include "core/storage.hpp"
#include "core/vec.hpp"

namespace attnlab::bench {
namespace {
Timing summarize(const std::vector<double>& t) {
  return {*std::min_element(t.begin(), t.end()),
          median(t),
          *std::max_element(t.begin(), t.end()),
          static_cast<int>(t.size())};
}
}  // namespace

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

Timing measure(const std::function<void()>& fn, double budget, int min_reps, int max_reps) {
  using clock = std::chrono::steady_clock;
  fn();  // warm-up: page faults, pools, caches
  std::vector<double> t;
  const auto start = clock::now();
  while (static_cast<int>(t.size()) < max_reps) {
    const auto t0 = clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    if (static_cast<int>(t.size()) >= min_reps && elapsed >= budget)
      break;
  }
  return summarize(t);
}

Timing measure_reps(const std::function<void()>& fn, int reps, bool warmup) {
  using clock = std::chrono::steady_clock;
  if (reps < 1)
    throw cli::UsageError("--reps: expected at least 1 repetition, got " + std::to_string(reps));
  if (warmup)
    fn();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(clock::now() - t0).count());
  }
  return summarize(t);
}

Timing TimingPolicy::run(const std::function<void()>& fn, int min_reps) const {
  return reps > 0 ? measure_reps(fn, reps) : measure(fn, budget, min_reps);
}

void add_timing_options(cli::Parser& parser, double default_budget) {
  parser.options().add_options()("budget",
                                 cli::po::value<double>()->default_value(default_budget),
                                 "seconds per measurement, reported as the best run")(
      "reps",
      cli::po::value<int>(),
      "exactly N repetitions per measurement (after one warm-up), reported as the median: use "
      "this to compare two kernels (equal repetitions on both sides)");
}

TimingPolicy timing_policy(const cli::Parser& parser, bool quick, double quick_budget) {
  TimingPolicy p;
  p.budget = quick ? quick_budget : parser.get<double>("budget");
  if (!(p.budget > 0))
    throw cli::UsageError("--budget: expected a positive number of seconds");
  if (parser.has("reps")) {
    p.reps = parser.get<int>("reps");
    if (p.reps < 1)
      throw cli::UsageError("--reps: expected at least 1, got " + std::to_string(p.reps));
    if (quick)
      p.reps = std::min(p.reps, 2);
  }
  return p;
}

namespace {
// The register-resident FMA loop runs on the SIMD path the kernels use (core/vec_kernels.cpp).
double fma_loop_gflops(int64_t iters) {
  return vec::kernels().fma_gflops(iters);
}
}  // namespace

// The best of many short runs (~2 ms each): on a shared machine a run the scheduler interrupts
// only reads low, so the best short run finds the core's real rate where a few long runs did
// not (3 x 35 ms runs read 176 instead of 231 GFLOP/s under load).
double fma_peak_gflops(int threads, bool rough) {
  const int64_t iters = rough ? int64_t{1} << 12 : int64_t{1} << 20;
  const int runs = rough ? 2 : 40;
  auto best_rate = [=] {
    double best = 0;
    for (int run = 0; run < runs; ++run) best = std::max(best, fma_loop_gflops(iters));
    return best;
  };
  if (threads <= 1)
    return best_rate();
  // Cores do not share FMA units: the all-core peak is the sum of each core's rate, measured
  // concurrently (so that an all-core clock reduction shows).
  std::vector<double> per(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { per[t] = best_rate(); });
  for (auto& th : pool) th.join();
  double total = 0;
  for (double g : per) total += g;
  return total;
}

double stream_gbs(int64_t bytes, int threads, bool rough) {
  const int64_t n = std::max<int64_t>(1024, bytes / 8) / 1024 * 1024;  // two arrays of n floats
  std::vector<float> x(static_cast<std::size_t>(n), 1.0f), y(static_cast<std::size_t>(n), 0.0f);
  const int saved = num_threads();
  set_num_threads(threads);
  const auto axpy = vec::fns<float>().axpy;
  auto pass = [&] {
    parallel_for(0, n / 1024, 1, [&](int64_t c0, int64_t c1) {
      axpy(1e-7f, x.data() + c0 * 1024, y.data() + c0 * 1024, (c1 - c0) * 1024);
    });
  };
  pass();  // warm-up: pages faulted in, caches filled
  // At least 5 passes and 0.2 s (rough: 2 passes), the best pass.
  double best = 0, spent = 0;
  for (int run = 0; run < (rough ? 2 : 1000) && (run < 5 || spent < 0.2); ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spent += sec;
    best = std::max(best, 12.0 * static_cast<double>(n) / sec / 1e9);
  }
  set_num_threads(saved);
  return best;
}

int64_t peak_tensor_bytes(const std::function<void()>& fn) {
  const int64_t base = memory_stats().live_bytes;
  reset_peak_memory();
  fn();
  return memory_stats().peak_bytes - base;
}

int64_t process_peak_rss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream is(line.substr(6));
      int64_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

std::vector<Mode>& modes() {
  static std::vector<Mode> list;
  return list;
}

RegisterMode::RegisterMode(std::string name, std::string summary, ModeFn run) {
  modes().push_back({std::move(name), std::move(summary), std::move(run)});
}

std::string machine_summary() {
  std::string model = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  std::ostringstream os;
  os << model << ", " << std::thread::hardware_concurrency() << " hardware threads, "
     << "SIMD path " << simd_path_name(simd_path()) << " (" << vec::kernels().float_lanes
     << " float lanes" << (simd_dispatch_enabled() ? ", chosen at run time" : ", -march=native")
     << "), " << num_threads() << " kernel threads";
  return os.str();
}

}  // namespace attnlab::bench
