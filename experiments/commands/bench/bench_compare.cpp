// `attnlab bench compare --against pytorch|numpy`: paired ratios against a baseline.
//
// For each case, attnlab's side (`attnlab bench case ...`) and the baseline's side
// (experiments/baselines/bench_case.py, the same workload written idiomatically in PyTorch or
// numpy) run as child processes in turn, A B A B ..., --pairs times, each with the same --reps
// repetitions after one warm-up and the same thread count (the child is also pinned to the first
// --threads CPUs). Each child prints one JSON line with its median; the ratio is computed pair
// by pair (baseline median / attnlab median) and reported as the median ratio and its spread.
// Memory is measured the same way on both sides: the peak resident set of the child process
// (wait4's ru_maxrss), interpreter and libraries included.
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "experiments/support/bench.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"

namespace attnlab {
namespace {

struct ChildResult {
  double median_ms = 0;
  double peak_rss_mb = 0;
  std::string kernel;  // the baseline's BLAS kernel, when it says
};

// The value of "key" in a flat JSON line (numbers and strings only).
std::string json_field(const std::string& line, const std::string& key) {
  const std::string pattern = "\"" + key + "\":";
  auto at = line.find(pattern);
  if (at == std::string::npos)
    return "";
  at += pattern.size();
  while (at < line.size() && line[at] == ' ') ++at;
  if (at < line.size() && line[at] == '"') {
    const auto end = line.find('"', at + 1);
    return line.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
  }
  const auto end = line.find_first_of(",}", at);
  return line.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// Runs argv as a child pinned to CPUs [0, threads), returns its last JSON line and peak RSS.
ChildResult run_child(const std::vector<std::string>& argv, int threads) {
  int fd[2];
  if (::pipe(fd) != 0)
    throw Error("bench compare: pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0)
    throw Error("bench compare: fork failed");
  if (pid == 0) {
    ::dup2(fd[1], 1);
    ::close(fd[0]);
    ::close(fd[1]);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < threads; ++c) CPU_SET(c, &set);
    ::sched_setaffinity(0, sizeof set, &set);  // best effort: fewer CPUs only pins less
    const std::string t = std::to_string(threads);
    ::setenv("OMP_NUM_THREADS", t.c_str(), 1);
    ::setenv("OPENBLAS_NUM_THREADS", t.c_str(), 1);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "bench compare: cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fd[1]);
  std::string out;
  char buf[4096];
  ssize_t got;
  while ((got = ::read(fd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(got));
  ::close(fd[0]);
  int status = 0;
  struct rusage usage;
  ::wait4(pid, &status, 0, &usage);
  std::string cmd;
  for (const std::string& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("bench compare: `" + cmd + "` failed (exit status " +
                std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  std::string line;
  for (std::size_t start = 0; start < out.size();) {
    const auto end = out.find('\n', start);
    const std::string l = out.substr(start, end == std::string::npos ? end : end - start);
    if (!l.empty() && l[0] == '{')
      line = l;
    start = end == std::string::npos ? out.size() : end + 1;
  }
  const std::string median = json_field(line, "median_ms");
  if (median.empty())
    throw Error("bench compare: `" + cmd + "` printed no JSON line with median_ms");
  ChildResult r;
  r.median_ms = std::stod(median);
  r.peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB
  r.kernel = json_field(line, "kernel");
  return r;
}

// The size flags both sides take for a case.
std::vector<std::string> case_flags(const std::string& name, const cli::Parser& p) {
  auto flag = [&](const char* f) {
    return std::vector<std::string>{std::string("--") + f, std::to_string(p.get<int64_t>(f))};
  };
  std::vector<std::string> out{"--case", name};
  std::vector<std::vector<std::string>> parts;
  if (name == "gemm")
    parts = {flag("n")};
  else if (name == "exact-causal")
    parts = {flag("length"), flag("head-dim")};
  else if (name == "favor-causal")
    parts = {flag("length"), flag("head-dim"), flag("features")};
  else if (name == "sasrec-epoch")
    parts = {flag("batches"), {"--data", p.get<std::string>("data")}};
  else
    throw cli::UsageError("--cases: unknown case '" + name +
                          "' (gemm, exact-causal, favor-causal, sasrec-epoch)");
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

int run_compare_bench(int argc, char** argv) {
  cli::Parser parser("bench compare", "--against pytorch|numpy [--cases a,b] [--pairs N]");
  parser.options().add_options()(
      "against", cli::po::value<std::string>()->default_value("pytorch"), "pytorch or numpy")(
      "cases",
      cli::po::value<std::string>()->default_value("gemm,exact-causal,favor-causal"),
      "gemm, exact-causal, favor-causal, sasrec-epoch (numpy: gemm and exact-causal)")(
      "pairs", cli::po::value<int>()->default_value(5), "A B alternations per case")(
      "reps", cli::po::value<int>()->default_value(5), "repetitions per child (median)")(
      "n", cli::po::value<int64_t>()->default_value(1024), "gemm: matrix size")(
      "length", cli::po::value<int64_t>()->default_value(4096), "attention: sequence length")(
      "head-dim", cli::po::value<int64_t>()->default_value(64), "attention: head width")(
      "features", cli::po::value<int64_t>()->default_value(256), "favor-causal: projections m")(
      "data", cli::po::value<std::string>()->default_value(""), "sasrec-epoch: SASRec file")(
      "batches",
      cli::po::value<int64_t>()->default_value(0),
      "sasrec-epoch: batches per repetition (0: an epoch)")(
      "python", cli::po::value<std::string>()->default_value("python3"), "the interpreter")(
      "baselines",
      cli::po::value<std::string>()->default_value(ATTNLAB_SOURCE_DIR "/experiments/baselines"),
      "the folder of bench_case.py");
  parser.unused_common("seed", "each case has its own inputs");
  parser.unused_common("dtype", "the cases run in float32");
  if (!parser.parse(argc, argv))
    return 0;
  const std::string against = parser.get<std::string>("against");
  if (against != "pytorch" && against != "numpy")
    throw cli::UsageError("--against: expected pytorch or numpy, got '" + against + "'");
  const int pairs = parser.get<int>("pairs"), reps = parser.get<int>("reps");
  if (pairs < 1 || reps < 1)
    throw cli::UsageError("--pairs and --reps must be at least 1");
  const int threads = parser.common().threads > 0 ? parser.common().threads : num_threads();
  char self[4096];
  const ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0)
    throw Error("bench compare: cannot find the attnlab executable (/proc/self/exe)");
  self[len] = '\0';

  std::cout << bench::machine_summary() << "\n"
            << "paired: attnlab and " << against << " alternate " << pairs << " times per case, "
            << reps << " repetitions each (median), " << threads << " thread(s), pinned; "
            << "ratio = " << against << " / attnlab per pair; memory = peak RSS of each child "
            << "process (wait4), on both sides\n\n";
  cli::Table per_pair({"case", "pair", "attnlab ms", against + " ms", "ratio"});
  cli::Table summary({"case",
                      "config",
                      "attnlab ms",
                      against + " ms",
                      "ratio (median)",
                      "ratio min",
                      "ratio max",
                      "attnlab peak RSS MiB",
                      against + " peak RSS MiB",
                      against + " BLAS kernel"});
  for (const std::string& name : cli::split_list(parser.get<std::string>("cases"), "--cases")) {
    const std::vector<std::string> flags = case_flags(name, parser);
    std::vector<std::string> ours{self, "bench", "case", "--threads", std::to_string(threads)};
    ours.insert(ours.end(), flags.begin(), flags.end());
    ours.insert(ours.end(), {"--reps", std::to_string(reps)});
    std::vector<std::string> theirs{parser.get<std::string>("python"),
                                    parser.get<std::string>("baselines") + "/bench_case.py",
                                    "--framework",
                                    against == "pytorch" ? "torch" : "numpy",
                                    "--threads",
                                    std::to_string(threads)};
    theirs.insert(theirs.end(), flags.begin(), flags.end());
    theirs.insert(theirs.end(), {"--reps", std::to_string(reps)});
    std::vector<double> a_ms, b_ms, ratios, a_rss, b_rss;
    std::string kernel;
    for (int pair = 0; pair < pairs; ++pair) {
      const ChildResult a = run_child(ours, threads);
      const ChildResult b = run_child(theirs, threads);
      a_ms.push_back(a.median_ms);
      b_ms.push_back(b.median_ms);
      ratios.push_back(b.median_ms / a.median_ms);
      a_rss.push_back(a.peak_rss_mb);
      b_rss.push_back(b.peak_rss_mb);
      kernel = b.kernel;
      per_pair.add_row({name,
                        pair + 1,
                        cli::Cell(a.median_ms, 2),
                        cli::Cell(b.median_ms, 2),
                        cli::Cell(ratios.back(), 2)});
      std::cerr << "." << std::flush;
    }
    std::string config;
    for (std::size_t i = 2; i + 1 < flags.size(); i += 2)
      config += (config.empty() ? "" : " ") + flags[i] + " " + flags[i + 1];
    summary.add_row({name,
                     config,
                     cli::Cell(bench::median(a_ms), 2),
                     cli::Cell(bench::median(b_ms), 2),
                     cli::Cell(bench::median(ratios), 2),
                     cli::Cell(*std::min_element(ratios.begin(), ratios.end()), 2),
                     cli::Cell(*std::max_element(ratios.begin(), ratios.end()), 2),
                     cli::Cell(bench::median(a_rss), 1),
                     cli::Cell(bench::median(b_rss), 1),
                     kernel.empty() ? std::string("-") : kernel});
  }
  std::cerr << "\n";
  per_pair.print(std::cout);
  std::cout << "\n";
  summary.print(std::cout);
  if (!parser.common().out.empty()) {
    per_pair.write(parser.common().out, "compare_pairs");
    summary.write(parser.common().out, "compare");
  }
  return 0;
}

const bench::RegisterMode compare_mode("compare",
                                       "paired ratios against PyTorch or numpy baselines (A B A "
                                       "B ..., equal repetitions, peak RSS on both sides)",
                                       run_compare_bench);

}  // namespace
}  // namespace attnlab
