// `attnlab sweep`: a grid of `attnlab train` (or any other subcommand's) configurations, each run
// as an independent process writing its own result file, then one table of results with the mean
// and spread over seeds.
//
//   attnlab sweep --command train --grid "attention=softmax-fused,favor;seed=1,2,3"
//                 --args "--epochs 20 --data synthetic" --dir sweeps/attn
//
// Every configuration's flags are checked first (the command's --validate-only), so a bad grid
// value fails the sweep at once, naming the configuration, instead of inside a run.
// Resumable: configuration k writes <dir>/runs/<k>/result.csv (train and approx write it to
// --out, atomically, at their end; one row or several, see collect()); a
// configuration whose result exists is skipped, so an interrupted sweep is simply started again;
// with --checkpoints an unfinished train run also continues from its last validation.
// --emit-jobs writes <dir>/jobs.txt (one command per line, for GNU parallel) and <dir>/slurm.sh
// (a job array), see sweep_jobs.cpp; --collect merges whatever results exist.
#include "experiments/commands/sweep/sweep.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <tuple>

#include "core/file_io.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"

namespace attnlab::sweep {
namespace {

// "a=1,2;b=x,y" -> axes in order. Keys are subcommand flags without the leading "--".
std::vector<Axis> parse_grid(const std::string& grid) {
  std::vector<Axis> axes;
  std::stringstream ss(grid);
  std::string part;
  while (std::getline(ss, part, ';')) {
    if (part.find_first_not_of(' ') == std::string::npos)
      continue;
    const auto eq = part.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw cli::UsageError("--grid: expected key=v1,v2;key2=..., got '" + part + "'");
    }
    Axis a{part.substr(0, eq),
           cli::split_list(part.substr(eq + 1), "--grid " + part.substr(0, eq))};
    for (char c : a.key) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
        throw cli::UsageError("--grid: bad key '" + a.key + "'");
      }
    }
    axes.push_back(a);
  }
  if (axes.empty())
    throw cli::UsageError("--grid: empty grid");
  return axes;
}

// All combinations, the last axis varying fastest.
std::vector<std::vector<std::string>> combinations(const std::vector<Axis>& axes) {
  std::vector<std::vector<std::string>> out{{}};
  for (const Axis& a : axes) {
    std::vector<std::vector<std::string>> next;
    for (const auto& prefix : out) {
      for (const auto& v : a.values) {
        auto c = prefix;
        c.push_back(v);
        next.push_back(c);
      }
    }
    out = next;
  }
  return out;
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, n) : std::string("attnlab");
}

// The job files name the directory from wherever they run: absolute, without "." or "..".
std::string absolute_directory(const std::string& dir) {
  std::string path = std::filesystem::absolute(dir).lexically_normal().string();
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

bool exists(const std::string& path) {
  return std::ifstream(path).good();
}

// Parses a one-row-or-more CSV written by cli::Table (no quoted commas in our numeric results).
std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

bool is_number(const std::string& s, double& v) {
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

// The finished configurations' results, merged: the table (also written to `out`, or to the
// sweep's directory) and how many configurations had a result.
std::pair<cli::Table, std::size_t> collect(const Sweep& sweep, const std::string& out) {
  const std::vector<Axis>& axes = sweep.axes;
  const auto& combos = sweep.configurations;
  const std::string& dir = sweep.dir;
  // Group key: every axis but "seed"; numeric result columns are averaged within a group.
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < axes.size(); ++i) {
    if (axes[i].key != "seed")
      keep.push_back(i);
  }
  // A result column named as a grid key (train's "attention") repeats the key's value: shown once.
  auto is_grid_key = [&](const std::string& name) {
    return std::any_of(axes.begin(), axes.end(), [&](const Axis& a) { return a.key == name; });
  };
  // A run's result.csv may hold several rows (approx: one per map x features x m x scale): row r
  // of every seed is the same configuration, so the group key is (axes but seed, r), and the
  // row's text cells (map names, ...) are shown as labels.
  std::vector<std::string> header;
  std::vector<std::size_t> label_columns;
  std::map<std::vector<std::string>, std::map<std::string, std::vector<double>>> stats;
  std::map<std::vector<std::string>, std::vector<std::string>> labels;
  std::vector<std::vector<std::string>> order;
  int found = 0;
  for (std::size_t k = 0; k < combos.size(); ++k) {
    const std::string path = sweep.run_dir(k) + "/result.csv";
    if (!exists(path))
      continue;
    const auto rows = read_csv(path);
    if (rows.size() < 2)
      continue;
    ++found;
    if (header.empty()) {
      header = rows[0];
      double v;
      for (std::size_t c = 0; c < header.size() && c < rows[1].size(); ++c) {
        // "-" is a metric the run did not measure (train's full ranking), not a label.
        if (!is_number(rows[1][c], v) && rows[1][c] != "-" && !is_grid_key(header[c]))
          label_columns.push_back(c);
      }
    }
    for (std::size_t r = 1; r < rows.size(); ++r) {
      std::vector<std::string> key;
      for (std::size_t i : keep) key.push_back(combos[k][i]);
      key.push_back(std::to_string(r));
      if (!stats.count(key)) {
        order.push_back(key);
        for (std::size_t c : label_columns)
          labels[key].push_back(c < rows[r].size() ? rows[r][c] : "");
      }
      auto& s = stats[key];
      for (std::size_t c = 0; c < rows[0].size() && c < rows[r].size(); ++c) {
        double v;
        if (is_number(rows[r][c], v))
          s[rows[0][c]].push_back(v);
      }
    }
  }
  if (found == 0)
    throw Error("sweep: no finished configuration in " + dir + "/runs");
  std::vector<std::string> columns;
  for (std::size_t i : keep) columns.push_back(axes[i].key);
  for (std::size_t c : label_columns) columns.push_back(header[c]);
  columns.push_back("runs");
  std::vector<std::string> metrics;
  for (const auto& h : header) {
    if (stats.begin()->second.count(h) && !is_grid_key(h))
      metrics.push_back(h);
  }
  for (const auto& m : metrics) {
    columns.push_back(m + " mean");
    columns.push_back(m + " std");
  }
  cli::Table table(columns);
  for (const auto& key : order) {
    std::vector<cli::Cell> row(key.begin(), key.end() - 1);  // the row number is not shown
    for (const auto& l : labels[key]) row.push_back(l);
    const auto& s = stats[key];
    row.push_back(static_cast<int64_t>(s.begin()->second.size()));
    for (const auto& m : metrics) {
      const auto it = s.find(m);
      if (it == s.end()) {
        row.push_back("-");
        row.push_back("-");
        continue;
      }
      double mean = 0, var = 0;
      for (double v : it->second) mean += v;
      mean /= static_cast<double>(it->second.size());
      for (double v : it->second) var += (v - mean) * (v - mean);
      const double sd =
          it->second.size() > 1 ? std::sqrt(var / static_cast<double>(it->second.size() - 1)) : 0.0;
      // Errors and MSEs span decades: small values keep their digits in scientific notation.
      const bool small = mean != 0 && std::fabs(mean) < 1e-2;
      row.push_back(small ? cli::Cell::sci(mean, 3) : cli::Cell(mean, 4));
      row.push_back(small ? cli::Cell::sci(sd, 3) : cli::Cell(sd, 4));
    }
    table.add_row(row);
  }
  table.write(out.empty() ? dir : out, "sweep");
  return {table, static_cast<std::size_t>(found)};
}

// The configuration list, so that --collect later needs only --dir and --grid. runs/<k> belongs
// to configuration k of the grid that made it: resuming (or collecting) with another grid in the
// same directory would take other configurations' results for these.
void write_manifest(const Sweep& sweep, const std::string& given_dir) {
  std::ostringstream manifest;
  for (std::size_t k = 0; k < sweep.configurations.size(); ++k) {
    manifest << k;
    for (std::size_t i = 0; i < sweep.axes.size(); ++i)
      manifest << "\t" << sweep.axes[i].key << "=" << sweep.configurations[k][i];
    manifest << "\n";
  }
  const std::string path = sweep.dir + "/configurations.tsv";
  if (exists(path) && read_file(path) != manifest.str()) {
    throw cli::UsageError("--dir: " + given_dir +
                          " holds a sweep of another grid (see its configurations.tsv): use the "
                          "same --grid to resume or collect, or a new --dir");
  }
  write_file_atomic(path, manifest.str());
}

// Whether any configuration has left a result or a checkpoint.
bool has_run_output(const Sweep& sweep) {
  for (std::size_t k = 0; k < sweep.configurations.size(); ++k) {
    if (exists(sweep.run_dir(k) + "/result.csv") || exists(sweep.run_dir(k) + "/checkpoint.npz"))
      return true;
  }
  return false;
}

// The command and the arguments common to every run (`args` as given: the sweep's own --threads
// changes no result), recorded in arguments.txt. Once a run has left a result or a checkpoint,
// other arguments are refused: the finished runs would be skipped, the checkpointed ones
// continued, and --collect would merge results made under two settings into one mean.
// Whitespace is not significant. A directory without the record (a sweep made before it was
// kept) adopts the arguments given.
void check_arguments(const Sweep& sweep, const std::string& args, const std::string& given_dir) {
  std::istringstream words(args);
  std::string record = sweep.command + "\t", word;
  for (bool first = true; words >> word; first = false) record += (first ? "" : " ") + word;
  record += "\n";
  const std::string path = sweep.dir + "/arguments.txt";
  if (exists(path) && read_file(path) != record && has_run_output(sweep)) {
    throw cli::UsageError("--args: " + given_dir +
                          " holds a sweep run with other arguments (see its arguments.txt): use "
                          "the same --command and --args to resume, or a new --dir");
  }
  write_file_atomic(path, record);
}

// Runs the configurations without a result, `jobs` at a time; returns how many failed. Progress
// lines go to `log` unless it is null.
int run_locally(const Sweep& sweep, int jobs, std::ostream* log) {
  std::ostringstream discard;
  std::ostream& progress = log != nullptr ? *log : discard;
  int failed = 0, skipped = 0, ran = 0;
  std::vector<std::pair<pid_t, std::size_t>> running;
  auto reap = [&](bool block) {
    for (auto it = running.begin(); it != running.end();) {
      int status = 0;
      const pid_t r = ::waitpid(it->first, &status, block ? 0 : WNOHANG);
      if (r == it->first) {
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        progress << "configuration " << it->second << (ok ? " finished" : " FAILED") << std::endl;
        failed += ok ? 0 : 1;
        it = running.erase(it);
        block = false;
      } else {
        ++it;
      }
    }
  };
  for (std::size_t k = 0; k < sweep.configurations.size(); ++k) {
    const std::string run_dir = sweep.run_dir(k);
    if (exists(run_dir + "/result.csv")) {
      ++skipped;
      continue;
    }
    while (static_cast<int>(running.size()) >= jobs) reap(true);
    cli::make_directories(run_dir);
    const std::string cmd =
        sweep.command_line(k) + " > " + shell_quote(run_dir + "/output.txt") + " 2>&1";
    const pid_t pid = ::fork();
    if (pid < 0)
      throw Error("sweep: fork failed");
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    progress << "configuration " << k << " started: " << cmd << std::endl;
    running.emplace_back(pid, k);
    ++ran;
  }
  while (!running.empty()) reap(true);
  progress << ran << " run, " << skipped << " already finished, " << failed << " failed"
           << std::endl;
  return failed;
}

int sweep_command_main(int argc, char** argv) {
  cli::Parser p("sweep", "--grid \"key=v1,v2;key2=...\" --dir DIR [options]");
  p.options().add_options()("command",
                            cli::po::value<std::string>()->default_value("train"),
                            "the subcommand (of this program) to run for each configuration")(
      "grid",
      cli::po::value<std::string>(),
      "axes: \"key=v1,v2;key2=...\" (keys are the command's flags)")(
      "args", cli::po::value<std::string>()->default_value(""), "arguments common to every run")(
      "dir", cli::po::value<std::string>(), "sweep directory (runs/<k>/ per configuration)")(
      "jobs", cli::po::value<int>()->default_value(1), "configurations run at the same time")(
      "emit-jobs",
      "write jobs.txt (GNU parallel) and slurm.sh (a Slurm job array) instead of running; "
      "--threads "
      "N is each run's threads and the Slurm task's CPUs (default 1)")(
      "slurm-time", cli::po::value<std::string>(), "slurm.sh: time limit per task (H:M:S, ...)")(
      "slurm-mem", cli::po::value<std::string>(), "slurm.sh: memory per task (e.g. 4G)")(
      "slurm-partition", cli::po::value<std::string>(), "slurm.sh: partition")(
      "collect", "only merge the finished results")(
      "checkpoints",
      "train: each run checkpoints to runs/<k>/checkpoint.npz at every validation and continues "
      "from it when the sweep is started again");
  p.unused_common("seed", "give the runs' seeds in --grid, e.g. seed=0,1,2, or in --args");
  p.unused_common("dtype", "give the runs' --dtype in --args");
  if (!p.parse(argc, argv))
    return 0;
  if (!p.has("grid"))
    throw cli::UsageError("--grid is required");
  if (!p.has("dir"))
    throw cli::UsageError("--dir is required");
  commands::SweepOptions o;
  o.command = p.get<std::string>("command");
  o.grid = p.get<std::string>("grid");
  o.args = p.get<std::string>("args");
  o.dir = p.get<std::string>("dir");
  o.jobs = p.get<int>("jobs");
  if (p.given("threads"))
    o.threads = p.common().threads;
  o.emit_jobs = p.has("emit-jobs");
  auto text = [&](const char* flag) {
    return p.has(flag) ? p.get<std::string>(flag) : std::string();
  };
  o.slurm = {text("slurm-time"), text("slurm-mem"), text("slurm-partition")};
  o.collect_only = p.has("collect");
  o.checkpoints = p.has("checkpoints");
  o.out = p.common().out;
  o.log = &std::cerr;
  const commands::SweepReport r = commands::run_sweep(o);
  if (o.emit_jobs)
    return 0;
  std::cout << r.finished << " of " << r.configurations << " configurations finished\n\n";
  r.table.print(std::cout);
  return r.failed == 0 ? 0 : 1;
}

const cli::Register sweep_command("sweep",
                                  "run a grid of configurations (resumable) and collect",
                                  sweep_command_main);

}  // namespace
}  // namespace attnlab::sweep

namespace attnlab::commands {

SweepReport run_sweep(const SweepOptions& options) {
  if (options.jobs < 1)
    throw cli::UsageError("--jobs: must be >= 1");
  if (options.dir.empty())
    throw cli::UsageError("--dir: must not be empty");
  const bool emit = options.emit_jobs;
  sweep::check_slurm_limits(options.slurm, emit);
  sweep::Sweep plan;
  plan.exe = options.exe.empty() ? sweep::self_path() : options.exe;
  plan.command = options.command;
  plan.args = options.args;
  plan.grid = options.grid;
  plan.axes = sweep::parse_grid(plan.grid);
  plan.configurations = sweep::combinations(plan.axes);
  plan.dir = sweep::absolute_directory(options.dir);
  plan.checkpoints = options.checkpoints;
  if (plan.checkpoints && plan.command != "train")
    throw cli::UsageError("--checkpoints: only for --command train (got '" + plan.command + "')");
  if (!options.collect_only) {
    sweep::set_threads(plan, options.threads, emit);
    sweep::validate_configurations(plan, options.log);
  }
  cli::make_directories(plan.dir + "/runs");
  sweep::write_manifest(plan, options.dir);
  if (!options.collect_only)  // --collect needs only --dir and --grid
    sweep::check_arguments(plan, options.args, options.dir);
  SweepReport report;
  report.configurations = plan.configurations.size();
  if (emit && !options.collect_only) {
    sweep::emit_jobs(plan, options.slurm);
    return report;
  }
  if (!options.collect_only)
    report.failed = sweep::run_locally(plan, options.jobs, options.log);
  std::tie(report.table, report.finished) = sweep::collect(plan, options.out);
  return report;
}

}  // namespace attnlab::commands
