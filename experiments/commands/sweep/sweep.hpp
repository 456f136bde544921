// `attnlab sweep` as a library function (commands::run_sweep, attnlab::commands), and its parts
// shared by its files: the grid (sweep.cpp runs and collects it) and the job files for a cluster
// with the checks made before any configuration runs (sweep_jobs.cpp).
//
//   commands::SweepOptions o;
//   o.grid = "attention=softmax-fused,relu-linear;seed=1,2";
//   o.args = "--epochs 1 --data synthetic";
//   o.dir = "sweeps/attn";
//   const commands::SweepReport r = commands::run_sweep(o);   // r.table: mean and std over seeds
//
// Each configuration runs as its own process: `<exe> <command> <args> --<key> <value>... --out
// runs/<k>`, where exe is this executable by default, so that a CLI built with attnlab_add_cli
// sweeps its own subcommands and attention kinds.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "experiments/support/cli.hpp"
#include "experiments/support/table.hpp"

namespace attnlab::sweep {

struct Axis {
  std::string key;  // a flag of the command, without "--"
  std::vector<std::string> values;
};

struct Sweep {
  std::string exe;      // this attnlab, absolute
  std::string command;  // the subcommand each configuration runs
  std::string args;     // shell words common to every run (with --threads N when the sweep adds it)
  std::string grid;     // the --grid text, for the collect command in the job files' headers
  std::vector<Axis> axes;
  std::vector<std::vector<std::string>> configurations;  // one value per axis, last axis fastest
  std::string dir;                                       // absolute
  int threads = 0;  // kernel threads of each run (0: all available cores), sizes a Slurm task
  // --checkpoints (train only): each run checkpoints to <run dir>/checkpoint.npz at every
  // validation and, when that file exists as the run starts, continues from it (--resume), so an
  // interrupted sweep loses at most one validation interval of each unfinished run.
  bool checkpoints = false;

  std::string run_dir(std::size_t k) const { return dir + "/runs/" + std::to_string(k); }
  std::string checkpoint_path(std::size_t k) const { return run_dir(k) + "/checkpoint.npz"; }
  // "attention=favor seed=2": configuration k as in configurations.tsv.
  std::string describe(std::size_t k) const;
  // The shell command of configuration k; with --out run_dir(k) unless out is false.
  std::string command_line(std::size_t k, bool out = true) const;
};

std::string shell_quote(const std::string& s);

// The kernel threads of each run, from exactly one of: the sweep's own --threads (then added to
// every run's arguments), a --threads in --args, or a "threads" axis of the grid (its largest
// value). Jobs for a cluster need a number (a task gets the CPUs it asks for): when none says,
// emitted runs get --threads 1; a local sweep leaves its runs' default (all cores).
// `sweep_threads`: the sweep's own --threads, if given.
void set_threads(Sweep& sweep, std::optional<int> sweep_threads, bool emit);

// Runs the command's own checks (--validate-only) on every configuration before anything runs or
// is emitted: the first bad one is a UsageError naming it and saying what is wrong. A command that
// cannot check its flags gets a note on `log` (if not null).
void validate_configurations(const Sweep& sweep, std::ostream* log);

// --slurm-time, --slurm-mem and --slurm-partition, checked: Slurm's syntax, only with --emit-jobs.
struct SlurmLimits {
  std::string time, mem, partition;  // empty: the cluster's default
};
void check_slurm_limits(const SlurmLimits& limits, bool emit);

// Writes <dir>/jobs.txt (GNU parallel) and <dir>/slurm.sh (a Slurm job array), each with a header
// that says how to run it and how to collect, and makes runs/<k>/ (Slurm's log directories).
void emit_jobs(const Sweep& sweep, const SlurmLimits& limits);

}  // namespace attnlab::sweep

namespace attnlab::commands {

struct SweepOptions {
  std::string exe;                // the program to run; empty: this executable (/proc/self/exe)
  std::string command = "train";  // its subcommand each configuration runs
  std::string grid;               // "key=v1,v2;key2=..." (keys: the command's flags, no "--")
  std::string args;               // shell words common to every run
  std::string dir;                // sweep directory: runs/<k>/ per configuration
  int jobs = 1;                   // configurations run at the same time
  std::optional<int> threads;     // each run's kernel threads (added to its arguments)
  bool emit_jobs = false;         // write jobs.txt and slurm.sh instead of running
  sweep::SlurmLimits slurm;       // slurm.sh's limits (only with emit_jobs)
  bool collect_only = false;      // only merge the finished results
  bool checkpoints = false;       // train: each run checkpoints to runs/<k>/ and resumes from it
  std::string out;                // where sweep.csv / .jsonl go; empty: dir
  std::ostream* log = nullptr;    // progress lines (started, finished, FAILED); null: silent
};

struct SweepReport {
  std::size_t configurations = 0;  // in the grid
  std::size_t finished = 0;        // with a result (this run's or an earlier one's)
  int failed = 0;                  // runs of this call that exited non-zero
  // One row per configuration but the seed (and per row of a multi-row result): the mean and
  // standard deviation over seeds of every numeric column. No rows when emit_jobs.
  cli::Table table{{}};
};

// Checks every configuration (the command's --validate-only), then runs the missing ones, or
// writes the job files, or only collects. Throws cli::UsageError for a bad grid or options,
// attnlab::Error when nothing finished.
SweepReport run_sweep(const SweepOptions& options);

}  // namespace attnlab::commands
