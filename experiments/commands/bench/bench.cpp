// `attnlab bench <mode> [options]`: speed and memory measurements. Each mode is its own file
// (bench_gemm.cpp, bench_tape.cpp, ...) registered with bench::RegisterMode.
#include "experiments/support/bench.hpp"

#include <algorithm>
#include <iostream>

#include "experiments/support/cli.hpp"

namespace attnlab {
namespace {

int run_bench_command(int argc, char** argv) {
  auto& modes = bench::modes();
  std::sort(
      modes.begin(), modes.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::string names;
  for (const auto& m : modes) names += (names.empty() ? "" : ", ") + m.name;
  if (argc < 2)
    throw cli::UsageError("missing mode (one of: " + names + ")");
  const std::string mode = argv[1];
  if (mode == "--help" || mode == "-h") {
    const std::string& program = cli::program_name();
    std::cout << "usage: " << program << " bench <mode> [options]   (" << program
              << " bench <mode> --help)\n\nmodes:\n";
    for (const auto& m : modes) {
      std::cout << "  " << m.name << std::string(12 - std::min<size_t>(11, m.name.size()), ' ')
                << m.summary << "\n";
    }
    return 0;
  }
  for (const auto& m : modes) {
    if (m.name == mode)
      return m.run(argc - 1, argv + 1);
  }
  throw cli::UsageError("unknown mode '" + mode + "' (one of: " + names + ")");
}

const cli::Register bench_command("bench",
                                  "speed and memory benchmarks (bench --help lists the modes)",
                                  run_bench_command);

}  // namespace
}  // namespace attnlab
