// `attnlab sweep`'s parts shared by its files: the grid (sweep.cpp runs and collects it) and the
// job files for a cluster with the checks made before any configuration runs (sweep_jobs.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "experiments/support/cli.hpp"

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
  int threads = 0;  // kernel threads of each run (0: all cores), sizes a Slurm task
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
void set_threads(Sweep& sweep, const cli::Parser& parser, bool emit);

// Runs the command's own checks (--validate-only) on every configuration before anything runs or
// is emitted: the first bad one is a UsageError naming it and saying what is wrong.
void validate_configurations(const Sweep& sweep);

// --slurm-time, --slurm-mem and --slurm-partition, checked: Slurm's syntax, only with --emit-jobs.
struct SlurmLimits {
  std::string time, mem, partition;  // empty: the cluster's default
};
SlurmLimits slurm_limits(const cli::Parser& parser, bool emit);

// Writes <dir>/jobs.txt (GNU parallel) and <dir>/slurm.sh (a Slurm job array), each with a header
// that says how to run it and how to collect, and makes runs/<k>/ (Slurm's log directories).
void emit_jobs(const Sweep& sweep, const SlurmLimits& limits);

}  // namespace attnlab::sweep
