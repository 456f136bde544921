// `attnlab bench gemm`: matrix-multiply throughput against the machine's measured FMA peak, for
// 1 thread and all threads, plus element-wise exp and row softmax bandwidth.
#include <iostream>

#include "core/core.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/plot.hpp"
#include "experiments/support/table.hpp"

namespace attnlab {
namespace {

int run_gemm_bench(int argc, char** argv) {
  cli::Parser parser("bench gemm", "[--sizes 64,128,...] [--quick]");
  parser.options().add_options()(
      "sizes",
      cli::po::value<std::string>()->default_value("64,128,256,512,1024,2048"),
      "square matrix sizes")("quick", "small sizes and short timings (the test suite's smoke run)");
  bench::add_timing_options(parser);
  parser.unused_common("seed", "its matrices do not depend on one");
  if (!parser.parse(argc, argv))
    return 0;
  const bool quick = parser.has("quick");
  std::vector<int64_t> sizes =
      cli::parse_int_list(quick ? "32,64" : parser.get<std::string>("sizes"), "--sizes");
  for (int64_t n : sizes) {
    if (n <= 0)
      throw cli::UsageError("--sizes: sizes must be positive, got " + std::to_string(n));
  }
  const DType dt = parser.common().dtype;
  const bench::TimingPolicy timing = bench::timing_policy(parser, quick, 0.02);
  const int all = num_threads();
  std::cout << bench::machine_summary() << "\n";
  const double peak1 = bench::fma_peak_gflops(1, quick);
  const double peak_all = bench::fma_peak_gflops(all, quick);
  const double scale = dt == kFloat64 ? 0.5 : 1.0;  // FP64 peak is half the FP32 peak
  std::cout << "measured FMA peak (" << dtype_name(dt) << "): " << peak1 * scale
            << " GFLOP/s on 1 core, " << peak_all * scale << " GFLOP/s on " << all
            << (quick ? " (rough: --quick probes briefly)" : "") << "\n\n";

  // Times in microseconds: best and median; the GFLOP/s use the best run (noise only makes runs
  // slower), or the median with --reps. 1 thread and all threads (just 1 when --threads 1).
  const std::vector<int> thread_counts = all == 1 ? std::vector<int>{1} : std::vector<int>{1, all};
  cli::Table table({"n",
                    "threads",
                    "dtype",
                    "best us",
                    "median us",
                    "reps",
                    std::string("GFLOP/s (") + timing.headline_name() + ")",
                    "% of peak"});
  for (int threads : thread_counts) {
    set_num_threads(threads);
    for (int64_t n : sizes) {
      Tensor a = rand({n, n}, RngKey{1, 1}, dt), b = rand({n, n}, RngKey{1, 2}, dt);
      const bench::Timing t = timing.run([&] { Tensor c = matmul(a, b); });
      const double gflops = 2.0 * n * n * n / timing.headline(t) / 1e9;
      const double peak = (threads == 1 ? peak1 : peak_all) * scale;
      table.add_row({n,
                     threads,
                     dtype_name(dt),
                     cli::Cell(t.best * 1e6, 1),
                     cli::Cell(t.median * 1e6, 1),
                     t.reps,
                     cli::Cell(gflops, 1),
                     cli::Cell(100.0 * gflops / peak, 1)});
    }
  }
  set_num_threads(all);
  table.print(std::cout);

  // Memory-bound kernels: bytes read + written per second.
  const std::string us = std::string(timing.headline_name()) + " us";
  cli::Table bw({"kernel", "elements", "threads", us, "GB/s"});
  const int64_t n = quick ? (1 << 16) : (1 << 24), row = 1024;
  for (int threads : thread_counts) {
    set_num_threads(threads);
    Tensor x = rand({n / row, row}, RngKey{2, 1}, dt, -5, 5);
    const double bytes = 2.0 * static_cast<double>(x.nbytes());
    const double te = timing.headline(timing.run([&] { Tensor y = exp(x); }));
    const double ts = timing.headline(timing.run([&] { Tensor y = softmax(x); }));
    bw.add_row({"exp", n, threads, cli::Cell(te * 1e6, 1), cli::Cell(bytes / te / 1e9, 1)});
    bw.add_row({"softmax (rows of 1024)",
                n,
                threads,
                cli::Cell(ts * 1e6, 1),
                cli::Cell(bytes / ts / 1e9, 1)});
  }
  set_num_threads(all);
  std::cout << "\n";
  bw.print(std::cout);
  if (!parser.common().out.empty()) {
    table.write(parser.common().out, "gemm");
    bw.write(parser.common().out, "bandwidth");
    cli::PlotSpec spec;
    spec.title = "GEMM throughput (" + std::string(dtype_name(dt)) + ")";
    spec.x = "n";
    spec.y = std::string("GFLOP/s (") + timing.headline_name() + ")";
    spec.group = {"threads"};
    spec.log_x = true;
    cli::plot(table, parser.common().out, "gemm", spec);
  }
  return 0;
}

const bench::RegisterMode gemm_mode("gemm",
                                    "GEMM GFLOP/s vs the FMA peak; exp/softmax GB/s",
                                    run_gemm_bench);

}  // namespace
}  // namespace attnlab
