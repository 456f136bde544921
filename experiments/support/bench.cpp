#include "experiments/support/bench.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/parallel.hpp"
#include "core/simd.hpp"
#include "core/storage.hpp"

namespace attnlab::bench {

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
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2], static_cast<int>(t.size())};
}

namespace {
double fma_loop_gflops(int64_t iters) {
  using B = simd::Batch<float>;
  B acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = B(static_cast<float>(i));
  const B a(1.0000001f), b(0.9999999f);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = xsimd::fma(acc[i], a, b);
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += xsimd::hadd(acc[i]);
  volatile float keep = sink;  // the loop must not be optimised away
  (void)keep;
  return static_cast<double>(iters) * 12 * B::size * 2 / sec / 1e9;
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
     << xsimd::default_arch::name() << " (" << simd::width<float>() << " float lanes), "
     << num_threads() << " kernel threads";
  return os.str();
}

}  // namespace attnlab::bench
