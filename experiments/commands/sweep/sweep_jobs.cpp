// `attnlab sweep`: the checks made before any configuration runs, and the job files for GNU
// parallel and Slurm (--emit-jobs). The job files hold absolute paths only, so they run from any
// directory and on any node that shares the file system.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <regex>
#include <sstream>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "experiments/support/table.hpp"
#include "experiments/commands/sweep/sweep.hpp"

namespace attnlab::sweep {

std::string shell_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

std::string Sweep::describe(std::size_t k) const {
  std::string text;
  for (std::size_t i = 0; i < axes.size(); ++i)
    text += (i ? " " : "") + axes[i].key + "=" + configurations[k][i];
  return text;
}

std::string Sweep::command_line(std::size_t k, bool out) const {
  std::string cmd = shell_quote(exe) + " " + command + (args.empty() ? "" : " " + args);
  for (std::size_t i = 0; i < axes.size(); ++i)
    cmd += " --" + axes[i].key + " " + shell_quote(configurations[k][i]);
  if (checkpoints) {
    // The shell decides at launch, so the same line starts a run or continues it, locally, under
    // GNU parallel or in a Slurm task.
    const std::string ckpt = shell_quote(checkpoint_path(k));
    cmd += " --checkpoint " + ckpt + " $(test -f " + ckpt + " && echo --resume)";
  }
  return out ? cmd + " --out " + shell_quote(run_dir(k)) : cmd;
}

namespace {

// The value of --NAME in shell words ("--threads 2" or "--threads=2"), empty if absent.
std::string flag_value(const std::string& words, const std::string& name) {
  std::istringstream in(words);
  std::string word;
  const std::string flag = "--" + name;
  while (in >> word) {
    if (word == flag)
      return in >> word ? word : std::string("?");
    if (word.rfind(flag + "=", 0) == 0)
      return word.substr(flag.size() + 1);
  }
  return "";
}

int thread_count(const std::string& text, const std::string& where) {
  const std::optional<int64_t> n = cli::parse_integer(text);
  if (!n || *n < 0 || *n > std::numeric_limits<int>::max())
    throw cli::UsageError(where + ": expected a number of threads >= 0, got '" + text + "'");
  return static_cast<int>(*n);
}

// Runs `command`; its exit status (-1 if it did not exit) and its output (stdout and stderr).
std::pair<int, std::string> run_captured(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    throw Error("sweep: cannot start '" + command + "'");
  std::string out;
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The last non-empty line, without the "<program> <command>: error: " every error line starts
// with.
std::string error_text(const std::string& output, const std::string& command) {
  std::istringstream in(output);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty())
      last = line;
  const std::string prefix = cli::program_name() + " " + command + ": error: ";
  return last.rfind(prefix, 0) == 0 ? last.substr(prefix.size()) : last;
}

void check_slurm_value(const std::string& value,
                       const std::regex& syntax,
                       const char* flag,
                       const char* expected) {
  if (!value.empty() && !std::regex_match(value, syntax))
    throw cli::UsageError(std::string("--") + flag + ": expected " + expected + ", got '" + value +
                          "'");
}

}  // namespace

void set_threads(Sweep& sweep, std::optional<int> sweep_threads, bool emit) {
  const std::string in_args = flag_value(sweep.args, "threads");
  const auto axis = std::find_if(
      sweep.axes.begin(), sweep.axes.end(), [](const Axis& a) { return a.key == "threads"; });
  const bool in_grid = axis != sweep.axes.end(), in_sweep = sweep_threads.has_value();
  // The same number for the sweep and in --args is one statement; anything else is two.
  const bool agree = in_sweep && !in_args.empty() && !in_grid &&
                     thread_count(in_args, "--args --threads") == sweep_threads;
  if (!agree && (in_sweep ? 1 : 0) + (in_args.empty() ? 0 : 1) + (in_grid ? 1 : 0) > 1)
    throw cli::UsageError(
        "--threads: given differently to the sweep, in --args or in --grid: give it once");
  int threads = 0;
  bool add = false;
  if (in_sweep) {
    threads = *sweep_threads;
    if (threads < 0)
      throw cli::UsageError("--threads: must be >= 0, got " + std::to_string(threads));
    add = !agree;
  } else if (!in_args.empty()) {
    threads = thread_count(in_args, "--args --threads");
  } else if (in_grid) {
    // The largest value sizes the task; a 0 (all cores) cannot size it.
    bool all_cores = false;
    for (const auto& v : axis->values) {
      const int n = thread_count(v, "--grid threads");
      threads = std::max(threads, n);
      all_cores = all_cores || n == 0;
    }
    threads = all_cores ? 0 : threads;
  } else if (emit) {
    threads = 1;
    add = true;
  }
  if (emit && threads == 0)
    throw cli::UsageError(
        "--threads: 0 (all cores) cannot size a Slurm task (--cpus-per-task): give a number");
  sweep.threads = threads;
  if (add)
    sweep.args +=
        (sweep.args.empty() ? "" : " ") + std::string("--threads ") + std::to_string(threads);
}

void validate_configurations(const Sweep& sweep, std::ostream* log) {
  const cli::Subcommand* command = cli::find_subcommand(sweep.command);
  if (command == nullptr || command->name == "sweep")
    throw cli::UsageError("--command: unknown command '" + sweep.command + "' (" +
                          cli::program_name() + " --help lists them)");
  if (command->validates == cli::Validates::No) {
    if (log != nullptr)
      *log << cli::program_name() << " sweep: note: " << sweep.command
           << " cannot check its flags without running: a bad value shows only in its run's "
              "output.txt\n";
    return;
  }
  for (std::size_t k = 0; k < sweep.configurations.size(); ++k) {
    const auto [status, output] = run_captured(sweep.command_line(k, false) + " --validate-only");
    if (status != 0)
      throw cli::UsageError("configuration " + std::to_string(k) + " (" + sweep.describe(k) +
                            "): " + error_text(output, sweep.command));
  }
}

void check_slurm_limits(const SlurmLimits& limits, bool emit) {
  for (const auto& [flag, value] :
       {std::pair<const char*, const std::string&>{"slurm-time", limits.time},
        {"slurm-mem", limits.mem},
        {"slurm-partition", limits.partition}}) {
    if (!value.empty() && !emit)
      throw cli::UsageError(std::string("--") + flag + ": only with --emit-jobs (for slurm.sh)");
  }
  // sbatch's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
  check_slurm_value(limits.time,
                    std::regex("[0-9]+(:[0-9]+){0,2}|[0-9]+-[0-9]+(:[0-9]+){0,2}"),
                    "slurm-time",
                    "minutes, M:S, H:M:S or D-H:M:S");
  check_slurm_value(limits.mem,
                    std::regex("[1-9][0-9]*[KMGT]?"),
                    "slurm-mem",
                    "a positive size in megabytes or with K, M, G or T");
  check_slurm_value(limits.partition,
                    std::regex("[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*"),
                    "slurm-partition",
                    "a partition name (or several, comma-separated)");
}

namespace {

// A finished configuration (its result.csv exists) is skipped, and says so in its log.
std::string job_line(const Sweep& s, std::size_t k) {
  const std::string run_dir = s.run_dir(k);
  return "if test -f " + shell_quote(run_dir + "/result.csv") + "; then echo 'configuration " +
         std::to_string(k) + " already finished: skipped'; else " + s.command_line(k) + " > " +
         shell_quote(run_dir + "/output.txt") + " 2>&1; fi";
}

std::string collect_line(const Sweep& s) {
  return shell_quote(s.exe) + " sweep --collect --grid " + shell_quote(s.grid) + " --dir " +
         shell_quote(s.dir);
}

std::string jobs_file(const Sweep& s) {
  std::ostringstream o;
  o << "# attnlab sweep: " << s.configurations.size() << " configurations of `"
    << cli::program_name() << " " << s.command
    << "`, one command per line\n# (configuration k on line k of the commands).\n"
    << "# A configuration whose result.csv exists is skipped: after a failure run it again.\n"
    << "# Run:     parallel -j N --joblog " << s.dir << "/joblog.txt < " << s.dir << "/jobs.txt\n"
    << "#          (N: the cores / " << s.threads
    << " threads per run). After a failure, the same\n"
    << "#          with --resume-failed reruns only the failed lines. (These comment lines run as\n"
    << "#          empty jobs.)\n"
    << "# Collect: " << collect_line(s) << "\n"
    << "# Logs:    " << s.dir << "/runs/<k>/output.txt\n";
  for (std::size_t k = 0; k < s.configurations.size(); ++k) o << job_line(s, k) << "\n";
  return o.str();
}

std::string slurm_file(const Sweep& s, const SlurmLimits& limits, const std::string& cwd) {
  std::ostringstream o;
  o << "#!/bin/bash\n"
    << "# attnlab sweep: " << s.configurations.size() << " configurations of `"
    << cli::program_name() << " " << s.command
    << "`, one per array task\n# (task k: configuration k of configurations.tsv).\n"
    << "# A configuration whose result.csv exists is skipped: after a failure, a cancel or a time\n"
    << "# limit, submit again and only the missing configurations run.\n"
    << "# Submit:  sbatch " << s.dir << "/slurm.sh\n"
    << "# Collect: " << collect_line(s) << "\n"
    << "# Logs:    " << s.dir << "/runs/<k>/output.txt (the run),\n"
    << "#          " << s.dir << "/runs/<k>/slurm-<job id>.out (Slurm's messages)\n"
    << "#SBATCH --job-name=attnlab-sweep\n"
    << "#SBATCH --array=0-" << s.configurations.size() - 1 << "\n"
    << "#SBATCH --cpus-per-task=" << s.threads << "\n"
    << "#SBATCH --output=" << s.dir << "/runs/%a/slurm-%A.out\n"
    << "#SBATCH --chdir=" << cwd << "\n";  // where relative paths in --args mean what they meant
  if (!limits.time.empty())
    o << "#SBATCH --time=" << limits.time << "\n";
  if (!limits.mem.empty())
    o << "#SBATCH --mem=" << limits.mem << "\n";
  if (!limits.partition.empty())
    o << "#SBATCH --partition=" << limits.partition << "\n";
  o << "case \"$SLURM_ARRAY_TASK_ID\" in\n";
  for (std::size_t k = 0; k < s.configurations.size(); ++k)
    o << "  " << k << ") " << job_line(s, k) << " ;;\n";
  o << "esac\n";
  return o.str();
}

}  // namespace

void emit_jobs(const Sweep& s, const SlurmLimits& limits) {
  const std::string cwd = std::filesystem::current_path().string();
  // #SBATCH lines are split at blanks, and Slurm expands '%' in --output.
  for (const std::string& path : {s.dir, cwd}) {
    if (path.find_first_of(" \t\n%") != std::string::npos)
      throw cli::UsageError("--emit-jobs: slurm.sh cannot name a path with blanks or '%': '" +
                            path + "'");
  }
  for (std::size_t k = 0; k < s.configurations.size(); ++k) cli::make_directories(s.run_dir(k));
  write_file_atomic(s.dir + "/jobs.txt", jobs_file(s));
  write_file_atomic(s.dir + "/slurm.sh", slurm_file(s, limits, cwd));
  std::cout << "wrote " << s.dir << "/jobs.txt (GNU parallel) and " << s.dir
            << "/slurm.sh (sbatch); then: " << collect_line(s) << "\n";
}

}  // namespace attnlab::sweep
