// The attnlab CLI as a user runs it: every subcommand in a tiny configuration, its output files,
// and bad flags (a one-line message and a non-zero exit).
#include <doctest/doctest.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "experiments/support/shadow_log.hpp"
#include "tests/cli_test_helpers.hpp"
#include "tests/scratch_path.hpp"

namespace {

using Run = attnlab_test::CliRun;
Run run(const std::string& args) {
  return attnlab_test::run_cli(args);
}

std::string scratch_dir(const std::string& name) {
  return attnlab::testing::scratch_path("cli_" + name);
}

std::string read(const std::string& path) {
  return attnlab_test::read_text(path);
}

// Runs the enclosed code in another working directory (a relative path's meaning), then returns.
class WorkingDirectory {
 public:
  explicit WorkingDirectory(const std::string& path) {
    REQUIRE(::getcwd(previous_.data(), previous_.size()) != nullptr);
    REQUIRE(::chdir(path.c_str()) == 0);
  }
  ~WorkingDirectory() { CHECK(::chdir(previous_.data()) == 0); }
  WorkingDirectory(const WorkingDirectory&) = delete;
  WorkingDirectory& operator=(const WorkingDirectory&) = delete;

 private:
  std::array<char, 4096> previous_{};
};

// The data lines of a CSV file (its header skipped, the CRLF line ends of RFC 4180 removed).
std::vector<std::string> csv_rows(const std::string& path) {
  std::istringstream csv(read(path));
  std::vector<std::string> rows;
  std::string line;
  for (bool header = true; std::getline(csv, line); header = false) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (!header)
      rows.push_back(line);
  }
  return rows;
}

// Pins the calling thread to the first CPU of its affinity mask, and restores the mask.
class PinnedToOneCpu {
 public:
  PinnedToOneCpu() {
    REQUIRE(::sched_getaffinity(0, sizeof(saved_), &saved_) == 0);
    int first = 0;
    while (!CPU_ISSET(first, &saved_)) ++first;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    REQUIRE(::sched_setaffinity(0, sizeof(one), &one) == 0);
  }
  ~PinnedToOneCpu() { CHECK(::sched_setaffinity(0, sizeof(saved_), &saved_) == 0); }
  PinnedToOneCpu(const PinnedToOneCpu&) = delete;
  PinnedToOneCpu& operator=(const PinnedToOneCpu&) = delete;

 private:
  cpu_set_t saved_{};
};

// CSV: a header with the expected first column, and at least one data row with as many fields.
void check_csv(const std::string& path, const std::string& first_column) {
  const std::string text = read(path);
  REQUIRE_MESSAGE(!text.empty(), path << " is missing or empty");
  std::istringstream lines(text);
  std::string header, row;
  std::getline(lines, header);
  CHECK(header.rfind(first_column + ",", 0) == 0);
  REQUIRE(std::getline(lines, row));
  auto fields = [](const std::string& s) {
    int n = 1;
    bool quoted = false;
    for (char c : s) {
      if (c == '"')
        quoted = !quoted;
      if (c == ',' && !quoted)
        ++n;
    }
    return n;
  };
  CHECK(fields(row) == fields(header));
}

// JSON lines: every line one object.
void check_jsonl(const std::string& path) {
  const std::string text = read(path);
  REQUIRE_MESSAGE(!text.empty(), path << " is missing or empty");
  std::istringstream lines(text);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    CHECK(line.front() == '{');
    CHECK(line.back() == '}');
    ++n;
  }
  CHECK(n > 0);
}

}  // namespace

TEST_SUITE("experiments.cli") {
  TEST_CASE("a user kind the registry refuses is a one-line error - not an abort") {
    // tests/user_kinds/refused_kinds.cpp registers, before main(), the kind the scenario names.
    // A registrar that threw there aborted the program ("terminate called after throwing ...",
    // exit 134) whatever the command, --help included.
    struct Scenario {
      std::string name, message;
    };
    for (const Scenario& s :
         {Scenario{"attention-duplicate",
                   // (the families in registration order, which is the linker's)
                   "error: RegisterAttentionKind: kind 'favor' is registered twice (families "},
          Scenario{"attention-nameless",
                   "error: RegisterAttentionKind: a kind needs a name and a factory (family "
                   "'mine')"},
          Scenario{"model-duplicate",
                   "error: RegisterModelKind: kind 'lisa-base' is registered "
                   "twice"},
          Scenario{"model-clash",
                   "error: RegisterModelKind: kind 'favor' is also an attention kind"}}) {
      for (const char* args :
           {"kinds", "train --attention softmax-fused --epochs 0", "train --help"}) {
        const Run r = attnlab_test::run_program(
            "ATTNLAB_TEST_REFUSED=" + s.name + " " + ATTNLAB_REFUSED_KINDS_CLI_PATH, args);
        CAPTURE(s.name);
        CAPTURE(args);
        CAPTURE(r.out);
        CHECK(r.status == 1);
        CHECK(r.out.find(s.message) != std::string::npos);
        CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
        CHECK(r.out.find("terminate") == std::string::npos);
      }
    }
    // Without a scenario the same program is attnlab.
    const Run plain = attnlab_test::run_program(ATTNLAB_REFUSED_KINDS_CLI_PATH, "kinds");
    CHECK(plain.status == 0);
  }

  TEST_CASE("bench attention: a kind without a cost model has no GFLOP/s - not 0") {
    // tests/user_kinds/no_cost_kind.cpp: softmax-fused as "no-cost", without AttentionKind::cost;
    // its rate was printed as 0.0 GFLOP/s and 0.0 % of peak.
    const std::string dir = scratch_dir("no_cost");
    const Run r = attnlab_test::run_program(
        ATTNLAB_NO_COST_KIND_CLI_PATH,
        "bench attention --kind no-cost --lengths 16 --head-dim 8 --thread-counts 1 --reps 1 "
        "--quick --no-crossover --out " +
            dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    const std::vector<std::string> rows = csv_rows(dir + "/attention.csv");
    REQUIRE(!rows.empty());
    const std::string& row = rows[0];
    CAPTURE(row);
    CHECK(row.rfind("no-cost,", 0) == 0);
    // ..., peak MiB, fwd+bwd GFLOP/s, % of peak
    CHECK(row.size() > 4);
    CHECK(row.substr(row.size() - 4) == ",-,-");
  }

  TEST_CASE("bench attention skips a user's O(L^2) kinds by their declared capabilities") {
    // tests/user_kinds/no_cost_kind.cpp: "no-cost" declares quadratic_time, "no-cost-weights"
    // quadratic_memory too. The skips went by the names softmax-reference and softmax-fused, so
    // a user's quadratic kind ran at every length.
    const std::string dir = scratch_dir("quadratic_kinds");
    const Run r = attnlab_test::run_program(
        ATTNLAB_NO_COST_KIND_CLI_PATH,
        "bench attention --kind no-cost,no-cost-weights --head-dim 8 --thread-counts 1 --reps 1 "
        "--quick --no-crossover --max-reference-length 32 --max-exact-length 64 --out " +
            dir);  // --quick: L = 32, 64
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    std::vector<std::string> runs;  // "kind L"
    for (const std::string& line : csv_rows(dir + "/attention.csv")) {
      std::istringstream cells(line);
      std::string kind, m, d, mask, l;  // the CSV's first columns
      for (std::string* cell : {&kind, &m, &d, &mask, &l}) std::getline(cells, *cell, ',');
      runs.push_back(kind + " " + l);
    }
    CHECK(runs == std::vector<std::string>{"no-cost 32", "no-cost 64", "no-cost-weights 32"});
    const Run kinds = attnlab_test::run_program(ATTNLAB_NO_COST_KIND_CLI_PATH, "kinds");
    CHECK(kinds.out.find("O(L^2)-memory") != std::string::npos);
  }

  TEST_CASE("--threads above the cores this process may run on is a note - not silence") {
    const std::string train =
        "train --synthetic-users 30 --synthetic-items 30 --synthetic-max-length 12 --maxlen 8 "
        "--blocks 1 --epochs 0 --threads ";
    const int cores = attnlab::available_cores();
    REQUIRE(cores >= 1);
    const Run fits = run(train + std::to_string(cores));
    CHECK(fits.status == 0);
    CHECK(fits.out.find("note: --threads") == std::string::npos);
    const Run over = run(train + std::to_string(cores + 1));
    CAPTURE(over.out);
    CHECK(over.status == 0);  // the results do not depend on the thread count: only slower
    CHECK(over.out.find("note: --threads " + std::to_string(cores + 1) + " is more than the " +
                        std::to_string(cores) + " core") != std::string::npos);
    // Pinned to one CPU (what `taskset -c 0` does; a child inherits the calling thread's mask).
    PinnedToOneCpu pin;
    CHECK(attnlab::available_cores() == 1);
    const Run pinned = run(train + "2");
    CHECK(pinned.out.find("note: --threads 2 is more than the 1 core this") != std::string::npos);
  }

  TEST_CASE("train's optimizer flags reach Adam - and the defaults are SASRec's betas") {
    auto train = [](const std::string& flags) {
      const Run r = run(
          "train --synthetic-users 60 --synthetic-items 30 --synthetic-max-length 12 --maxlen 8 "
          "--blocks 1 --epochs 2 --batch 16 --eval-every 2 --eval-users 10 " +
          flags);
      CAPTURE(flags);
      CAPTURE(r.out);
      CHECK(r.status == 0);
      return r.out;
    };
    auto loss_line = [](const std::string& out) {  // "epoch 2: loss 1.19..."
      const size_t at = out.find("epoch 2: loss ");
      REQUIRE(at != std::string::npos);
      return out.substr(at, out.find(',', at) - at);
    };
    const std::string defaults = train("");
    CHECK(defaults.find("training: Adam(lr=0.001, betas=(0.9, 0.98), weight_decay=0), "
                        "clip_norm=0, batch 16, 2 epochs") != std::string::npos);
    CHECK(loss_line(train("--adam-betas 0.9,0.98 --weight-decay 0 --clip-norm 0")) ==
          loss_line(defaults));
    const std::string betas = train("--adam-betas 0.5,0.9");
    CHECK(betas.find("betas=(0.5, 0.9)") != std::string::npos);
    CHECK(loss_line(betas) != loss_line(defaults));
    CHECK(loss_line(train("--weight-decay 0.5")) != loss_line(defaults));
    CHECK(loss_line(train("--clip-norm 1e-4")) != loss_line(defaults));
  }

  TEST_CASE("train --resume under other model settings is refused - naming them") {
    // The checkpoint's shapes catch --dim or --features; --dropout or a kind's --feature-norm
    // resumed silently as the new run.
    const std::string dir = scratch_dir("resume_settings");
    ::mkdir(dir.c_str(), 0755);
    const std::string base =
        "train --synthetic-users 40 --synthetic-items 30 --synthetic-max-length 12 --maxlen 8 "
        "--blocks 1 --attention favor --features 16 --eval-every 1 --checkpoint " +
        dir + "/c.npz";
    REQUIRE(run(base + " --epochs 2").status == 0);
    const Run changed = run(base + " --epochs 3 --resume --dropout 0.1 --feature-norm sqrt-d");
    CAPTURE(changed.out);
    CHECK(changed.status == 1);
    CHECK(changed.out.find("it was trained with other settings (model.dropout 0.2 there, 0.1 "
                           "here, model.feature-norm differs)") != std::string::npos);
    const Run same = run(base + " --epochs 3 --resume --full-ranking");
    CAPTURE(same.out);
    CHECK(same.status == 0);
  }

  TEST_CASE("sweep: runs a grid - resumes - emits jobs - collects") {
    const std::string dir = scratch_dir("sweep");
    const std::string base =
        "sweep --grid \"dim=8,16;seed=1,2\" --dir " + dir +
        " --args \"--synthetic-users 50 --synthetic-items 30 --synthetic-max-length 20 --maxlen 16 "
        "--blocks 1 --epochs 1 --eval-every 1\"";
    const Run first = run(base + " --jobs 2");
    CHECK(first.status == 0);
    CHECK(first.out.find("4 run, 0 already finished, 0 failed") != std::string::npos);
    check_csv(dir + "/sweep.csv", "dim");
    CHECK(read(dir + "/sweep.csv").find("test NDCG@10 mean") != std::string::npos);
    // An interrupted sweep: configuration 2 never wrote its result; only it runs again.
    std::remove((dir + "/runs/2/result.csv").c_str());
    const Run again = run(base);
    CHECK(again.status == 0);
    CHECK(again.out.find("1 run, 3 already finished, 0 failed") != std::string::npos);
    const Run jobs = run(base + " --emit-jobs");
    CHECK(jobs.status == 0);
    std::istringstream list(read(dir + "/jobs.txt"));
    int commands = 0;
    for (std::string line; std::getline(list, line);) commands += line.rfind('#', 0) == 0 ? 0 : 1;
    CHECK(commands == 4);
    CHECK(read(dir + "/slurm.sh").find("SLURM_ARRAY_TASK_ID") != std::string::npos);
    const Run merged = run(base + " --collect");
    CHECK(merged.status == 0);
    CHECK(merged.out.find("4 of 4 configurations finished") != std::string::npos);
    CHECK(run("sweep --grid \"dim\" --dir " + dir).status == 2);
    CHECK(run("sweep --dir " + dir).status == 2);
  }

  TEST_CASE("sweep: resuming with other --args is refused - collecting needs none") {
    // Finished runs are skipped on a resume: with other --args the merged table would average
    // runs made under two settings.
    const std::string dir = scratch_dir("sweep_args");
    const std::string grid = "sweep --grid \"seed=1,2\" --dir " + dir;
    const std::string args =
        "--synthetic-users 50 --synthetic-items 30 --synthetic-max-length 20 --maxlen 16 --blocks "
        "1 --epochs 1 --eval-every 1";
    REQUIRE(run(grid + " --args \"" + args + "\"").status == 0);
    std::remove((dir + "/runs/1/result.csv").c_str());
    const Run other = run(grid + " --args \"" + args + " --lr 0.01\"");
    CAPTURE(other.out);
    CHECK(other.status == 2);
    CHECK(other.out.find("holds a sweep run with other arguments (see its arguments.txt)") !=
          std::string::npos);
    CHECK(read(dir + "/runs/1/result.csv").empty());  // nothing ran
    CHECK(run(grid + " --emit-jobs --args \"" + args + " --lr 0.01\"").status == 2);
    // The same arguments (spacing aside) and the sweep's own --threads resume; --collect alone.
    const Run same = run(grid + " --threads 1 --args \" " + args + "  \"");
    CAPTURE(same.out);
    CHECK(same.status == 0);
    CHECK(same.out.find("1 run, 1 already finished, 0 failed") != std::string::npos);
    CHECK(run(grid + " --collect").status == 0);
  }

  TEST_CASE("sweep --checkpoints: an interrupted train run continues from its last validation") {
    const std::string dir = scratch_dir("sweep_checkpoints");
    const std::string args =
        "--synthetic-users 50 --synthetic-items 30 --synthetic-max-length 20 --maxlen 16 --blocks "
        "1 --eval-every 1";
    const std::string grid = "sweep --checkpoints --grid \"seed=1,2\" --dir " + dir;
    REQUIRE(run(grid + " --args \"" + args + " --epochs 2\"").status == 0);
    for (const char* k : {"0", "1"}) {
      CHECK(read(dir + "/runs/" + k + "/checkpoint.npz").size() > 0);
      CHECK(read(dir + "/runs/" + k + "/output.txt").find("epoch 2:") != std::string::npos);
    }
    // Run 1 "was interrupted" after its epoch-1 validation: its checkpoint is of epoch 1 (made by
    // the same train command stopped there) and it has no result. The sweep started again skips
    // run 0 and continues run 1 from its checkpoint: epoch 2 runs, epoch 1 does not.
    const std::string run1 = dir + "/runs/1";
    REQUIRE(run("train " + args + " --epochs 1 --seed 2 --checkpoint " + run1 +
                "/checkpoint.npz --out " + run1)
                .status == 0);
    std::remove((run1 + "/result.csv").c_str());
    const Run again = run(grid + " --args \"" + args + " --epochs 2\"");
    CHECK(again.status == 0);
    CHECK(again.out.find("1 run, 1 already finished, 0 failed") != std::string::npos);
    const std::string resumed = read(run1 + "/output.txt");
    CHECK(resumed.find("epoch 2:") != std::string::npos);
    CHECK(resumed.find("epoch 1:") == std::string::npos);
    // Only train writes checkpoints.
    CHECK(run("sweep --checkpoints --command approx --grid \"m=8\" --dir " + dir + "_approx")
              .status == 2);
  }

  TEST_CASE("sweep over approx: several result rows per run - one line each in the merged table") {
    const std::string dir = scratch_dir("sweep_approx");
    const Run r =
        run("sweep --command approx --grid \"m=8,16;seed=0,1\" --dir " + dir +
            " --args \"--length 16 --head-dim 4 --samples 1 --maps positive,trig --features orth "
            "--scales 0.5\"");
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    check_csv(dir + "/sweep.csv", "m");
    const std::string csv = read(dir + "/sweep.csv");
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 4);  // 2 m x 2 maps, seeds merged
    CHECK(csv.find("trig") != std::string::npos);
    CHECK(csv.find("rel_dq mean") != std::string::npos);
  }

  TEST_CASE("sweep --emit-jobs: cluster-ready scripts") {
    // A relative --dir, emitted from another working directory than the jobs will run in: every
    // path in the scripts must be absolute.
    const std::string parent = scratch_dir("emit");
    REQUIRE(::mkdir(parent.c_str(), 0755) == 0);
    const std::string dir = parent + "/grid";
    const Run r = [&] {
      WorkingDirectory cd(parent);
      return run(
          "sweep --grid \"dim=8,16;seed=1,2\" --dir grid --threads 2 --emit-jobs "
          "--slurm-time 0:10:00 --slurm-mem 500M --slurm-partition short "
          "--args \"--synthetic-users 50 --epochs 1\"");
    }();
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    const std::string slurm = read(dir + "/slurm.sh"), jobs = read(dir + "/jobs.txt");
    CAPTURE(slurm);
    CAPTURE(jobs);
    // Headers: how to submit and how to collect, with the absolute directory.
    CHECK(slurm.find("# Submit:  sbatch " + dir + "/slurm.sh") != std::string::npos);
    CHECK(jobs.find("parallel") != std::string::npos);
    const std::string collect = "sweep --collect --grid 'dim=8,16;seed=1,2' --dir '" + dir + "'";
    CHECK(slurm.find(collect) != std::string::npos);
    CHECK(jobs.find(collect) != std::string::npos);
    // Slurm: one task per configuration, the CPUs the runs' threads use, one log per task, the
    // limits passed through.
    for (const char* line : {"#SBATCH --array=0-3\n",
                             "#SBATCH --cpus-per-task=2\n",
                             "#SBATCH --time=0:10:00\n",
                             "#SBATCH --mem=500M\n",
                             "#SBATCH --partition=short\n"})
      CHECK(slurm.find(line) != std::string::npos);
    CHECK(slurm.find("#SBATCH --output=" + dir + "/runs/%a/slurm-%A.out\n") != std::string::npos);
    CHECK(slurm.find("#SBATCH --chdir=" + parent + "\n") != std::string::npos);
    // Every command: the absolute executable and run directory, the threads, its own log.
    std::istringstream lines(jobs);
    std::string line;
    int commands = 0;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#')
        continue;
      const std::string run_dir = dir + "/runs/" + std::to_string(commands);
      CHECK(line.find("'" + std::string(ATTNLAB_CLI_PATH) + "' train") != std::string::npos);
      CHECK(line.find("--threads 2") != std::string::npos);
      CHECK(line.find("--out '" + run_dir + "'") != std::string::npos);
      CHECK(line.find("> '" + run_dir + "/output.txt' 2>&1") != std::string::npos);
      CHECK(slurm.find(line.substr(line.find("test -f"))) != std::string::npos);
      ++commands;
    }
    CHECK(commands == 4);
  }

  TEST_CASE("sweep --emit-jobs: the runs' threads size the Slurm task - bad limits are refused") {
    const std::string dir = scratch_dir("emit_flags");
    const std::string base = "sweep --grid \"dim=8,16\" --dir " + dir + " --emit-jobs";
    // Threads given in --args: the task asks for as many CPUs.
    REQUIRE(run(base + " --args \"--threads 3\"").status == 0);
    CHECK(read(dir + "/slurm.sh").find("#SBATCH --cpus-per-task=3\n") != std::string::npos);
    // A threads axis: the largest value sizes every task.
    const std::string axis = "sweep --dir " + dir + "_axis --emit-jobs --grid \"dim=8;threads=";
    REQUIRE(run(axis + "1,2\"").status == 0);
    CHECK(read(dir + "_axis/slurm.sh").find("#SBATCH --cpus-per-task=2\n") != std::string::npos);
    const Run all_cores = run(axis + "0,2\"");  // a 0 (all cores) sizes nothing
    CHECK(all_cores.status == 2);
    CHECK(all_cores.out.find("0 (all cores) cannot size a Slurm task") != std::string::npos);
    // The same number for the sweep and in --args: said once in each command.
    REQUIRE(run(base + " --threads 3 --args \"--threads 3\"").status == 0);
    const std::string jobs = read(dir + "/jobs.txt");
    CHECK(jobs.find("--threads 3 --threads") == std::string::npos);
    CHECK(read(dir + "/slurm.sh").find("#SBATCH --cpus-per-task=3\n") != std::string::npos);
    // Nothing said: one thread per run, one CPU per task (a run would otherwise use every core of
    // a node it shares).
    REQUIRE(run(base).status == 0);
    CHECK(read(dir + "/slurm.sh").find("#SBATCH --cpus-per-task=1\n") != std::string::npos);
    CHECK(read(dir + "/jobs.txt").find("--threads 1") != std::string::npos);
    for (const char* bad : {" --slurm-time 10x",
                            " --slurm-time 1:2:3:4",
                            " --slurm-mem lots",
                            " --slurm-mem 0",
                            " --slurm-partition 'a b'",
                            " --threads 2 --args \"--threads 1\"",
                            " --args \"--threads 0\""}) {
      const Run r = run(base + bad);
      CAPTURE(bad);
      CAPTURE(r.out);
      CHECK(r.status == 2);
      CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    }
    CHECK(run("sweep --grid \"dim=8\" --dir " + dir + " --slurm-mem 1G").status == 2);
  }

  TEST_CASE("sweep: a bad grid value is refused - naming its configuration - before any run") {
    const std::string dir = scratch_dir("sweep_invalid");
    const std::string grid = " --grid \"attention=softmax-fused,nope;seed=1\" --dir " + dir;
    for (const char* mode : {"", " --emit-jobs"}) {
      const Run r = run("sweep" + std::string(mode) + grid + " --args \"--epochs 1\"");
      CAPTURE(r.out);
      CHECK(r.status == 2);
      CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
      CHECK(r.out.find("configuration 1 (attention=nope seed=1)") != std::string::npos);
      CHECK(r.out.find("--attention: model kind 'nope' is unknown") != std::string::npos);
      CHECK(read(dir + "/jobs.txt").empty());
      CHECK(read(dir + "/runs/0/result.csv").empty());
    }
    // A value another flag of the run makes invalid (LISA has one layer).
    const Run lisa = run("sweep --grid \"attention=lisa-base\" --dir " + dir +
                         "_lisa --args \"--blocks 2\" --emit-jobs");
    CHECK(lisa.status == 2);
    CHECK(lisa.out.find("--blocks: does not apply") != std::string::npos);
    // approx checks its flags the same way.
    const Run approx = run("sweep --command approx --grid \"m=8,0\" --dir " + dir + "_approx");
    CHECK(approx.status == 2);
    CHECK(approx.out.find("configuration 1 (m=0)") != std::string::npos);
    const Run unknown = run("sweep --command frobnicate --grid \"m=8\" --dir " + dir + "_cmd");
    CHECK(unknown.status == 2);
    CHECK(unknown.out.find("--command: unknown command 'frobnicate'") != std::string::npos);
  }

  TEST_CASE("train and approx --validate-only: the flags checked - nothing run") {
    const std::string dir = scratch_dir("validate_only");
    const Run ok = run("train --validate-only --attention lisa-soft --log " + dir + "_log.jsonl");
    CHECK(ok.status == 0);
    CHECK(ok.out == "train: the flags are valid\n");
    CHECK(read(dir + "_log.jsonl").empty());
    CHECK(run("train --validate-only --attention nope").status == 2);
    // 3 heads do not divide dim 50 (now a flag check, exit 2; it was found when the model was
    // built, which --validate-only also does).
    const Run heads = run("train --validate-only --heads 3");
    CHECK(heads.status == 2);
    CHECK(heads.out.find("--heads: must divide --dim (50), got 3") != std::string::npos);
    CHECK(run("train --validate-only --data " + dir + "_missing.txt").status == 2);
    CHECK(run("approx --validate-only --maps nope").status == 2);
    CHECK(run("approx --validate-only --study lisa --codebooks 8x1024").status == 2);
    CHECK(run("approx --validate-only --study lisa").status == 0);
    // Hidden, and only where a command honours it.
    CHECK(run("train --help").out.find("validate-only") == std::string::npos);
    CHECK(run("bench gemm --validate-only").status == 2);
  }

  TEST_CASE("sweep --collect: a grid key that is also a result column is shown once") {
    const std::string dir = scratch_dir("sweep_columns");
    const Run r = run(
        "sweep --grid \"attention=softmax-fused,favor\" --dir " + dir +
        " --args \"--synthetic-users 50 --synthetic-items 30 --synthetic-max-length 20 --maxlen 16 "
        "--blocks 1 --epochs 1 --eval-every 1\"");
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    check_csv(dir + "/sweep.csv", "attention");
    const std::string csv = read(dir + "/sweep.csv");
    const std::string header = csv.substr(0, csv.find('\n'));
    CAPTURE(header);
    std::istringstream cells(header);
    std::string cell;
    int attention = 0;
    while (std::getline(cells, cell, ',')) attention += cell == "attention" ? 1 : 0;
    CHECK(attention == 1);
    // Metrics no run measured ("-": train without --full-ranking) are no columns either.
    CHECK(header.find("full HR@10") == std::string::npos);
    CHECK(csv.find("\nfavor,") != std::string::npos);
  }

  TEST_CASE("help and unknown commands") {
    const Run help = run("--help");
    CHECK(help.status == 0);
    for (const char* cmd : {"bench", "gradcheck", "train"})
      CHECK(help.out.find(cmd) != std::string::npos);
    const Run unknown = run("frobnicate");
    CHECK(unknown.status == 2);
    CHECK(unknown.out.find("unknown command 'frobnicate'") != std::string::npos);
    CHECK(run("").status == 2);
    const Run train_help = run("train --help");
    CHECK(train_help.status == 0);
    // A subcommand's usage names the CLI; a standalone program's names itself (install test).
    CHECK(train_help.out.rfind("usage: attnlab train [--data FILE|synthetic]", 0) == 0);
  }

  TEST_CASE("bench gemm - tape - attention write tables") {
    const std::string dir = scratch_dir("bench");
    CHECK(run("bench gemm --quick --out " + dir).status == 0);
    check_csv(dir + "/gemm.csv", "n");
    check_jsonl(dir + "/gemm.jsonl");
    check_csv(dir + "/bandwidth.csv", "kernel");
    CHECK(read(dir + "/gemm.gp").find("gemm.csv") != std::string::npos);
    CHECK(run("bench tape --quick --out " + dir).status == 0);
    check_csv(dir + "/tape.csv", "graph");
    const Run attn = run("bench attention --quick --out " + dir);
    CHECK(attn.status == 0);
    check_csv(dir + "/attention.csv", "kind");
    check_jsonl(dir + "/attention.jsonl");
    CHECK(run("bench").status == 2);
    const Run bad = run("bench warp-drive");
    CHECK(bad.status == 2);
    CHECK(bad.out.find("unknown mode 'warp-drive'") != std::string::npos);
  }

  TEST_CASE("gradcheck passes and filters") {
    const std::string dir = scratch_dir("gradcheck");
    // Every case, in the default slow mode.
    const Run list = run("gradcheck --list");
    REQUIRE(list.status == 0);
    std::vector<std::string> names;
    std::istringstream listed(list.out);
    for (std::string line; std::getline(listed, line);) {
      if (!line.empty())
        names.push_back(line);
    }
    for (const char* lisa : {"pq/soft",
                             "pq/gumbel-soft_fixed_noise",
                             "pq/st",
                             "pq/gumbel-st_fixed_noise",
                             "layer/lisa_attention_fused_hard_query",
                             "model/lisa-base",
                             "model/lisa-soft",
                             "model/lisa-mini"}) {
      CHECK_MESSAGE(std::find(names.begin(), names.end(), lisa) != names.end(), std::string(lisa));
    }
    const Run all = run("gradcheck --out " + dir);
    CHECK(all.status == 0);
    const std::string total = std::to_string(names.size());
    CHECK_MESSAGE(all.out.find(total + " of " + total + " checks passed") != std::string::npos,
                  all.out);
    // One row per case; each row's mode is what ran: slow (never a fast fallback) or, for the
    // straight-through cases, straight-through.
    std::istringstream table(all.out);
    int64_t rows = 0;
    for (std::string line; std::getline(table, line);) {
      std::istringstream fields(line);
      std::string name, mode;
      fields >> name >> mode;
      if (std::find(names.begin(), names.end(), name) == names.end())
        continue;
      ++rows;
      CAPTURE(line);
      // Straight-through cases have "st" as a word of their name (pq/st,
      // lisa/select_gumbel-st_...).
      std::string words = name;
      std::replace_if(
          words.begin(),
          words.end(),
          [](char ch) { return ch == '/' || ch == '_' || ch == '-'; },
          ' ');
      std::istringstream word_stream(words);
      bool st = false;
      for (std::string w; word_stream >> w;) st = st || w == "st";
      CHECK(mode == (st ? "straight-through" : "slow"));
      CHECK(line.find(" pass") != std::string::npos);
    }
    CHECK(rows == static_cast<int64_t>(names.size()));
    check_csv(dir + "/gradcheck.csv", "case");
    // A filter selects cases by substring.
    const Run r = run("gradcheck --filter op/exp,attention/softmax_fused_causal");
    CHECK(r.status == 0);
    CHECK(r.out.find("op/exp") != std::string::npos);
    CHECK(r.out.find("4 of 4 checks passed") != std::string::npos);  // op/exp matches op/expm1 too
    const Run bad = run("gradcheck --mode medium");
    CHECK(bad.status == 2);
    CHECK(bad.out.find("--mode: expected slow or fast") != std::string::npos);
    CHECK(run("gradcheck --filter no-such-case").status == 2);
  }

  TEST_CASE("train on tiny synthetic data") {
    const std::string dir = scratch_dir("train");
    const std::string args =
        "train --synthetic-users 60 --synthetic-items 40 --synthetic-max-length 25 --maxlen 20 "
        "--dim 8 --blocks 1 --epochs 2 --eval-every 1 --batch 32 --out " +
        dir;
    const Run r = run(args + " --log " + dir + "/log.jsonl");
    CHECK(r.status == 0);
    // The LISA-only flags reach the model (its description names them).
    const Run lisa =
        run("train --synthetic-users 40 --synthetic-items 30 --synthetic-max-length 20 --maxlen 16 "
            "--dim 8 --epochs 1 --eval-every 1 --attention lisa-soft --codebooks 2x4 --tau 0.3 "
            "--lisa-query expected --blocks 1");
    CHECK(lisa.status == 0);
    CHECK(lisa.out.find("B x W=2 x 4, selection=soft, query=expected") != std::string::npos);
    check_csv(dir + "/result.csv", "attention");
    check_csv(dir + "/epochs.csv", "epoch");
    check_jsonl(dir + "/log.jsonl");
  }

  TEST_CASE("train --shadow: the gradient agreement logged - cut back on --resume") {
    const std::string dir = scratch_dir("shadow");
    const std::string args =
        "train --synthetic-users 80 --synthetic-items 40 --synthetic-max-length 25 --maxlen 20 "
        "--dim 8 --blocks 2 --eval-every 1 --batch 16 --attention favor --features 8 "
        "--shadow softmax-fused --shadow-every 3 --checkpoint " +
        dir + "/ckpt.npz --out " + dir;
    const Run first = run(args + " --epochs 2");
    CAPTURE(first.out);
    REQUIRE(first.status == 0);
    CHECK(first.out.find("shadow (") != std::string::npos);
    const std::string two_epochs = read(dir + "/shadow.csv");
    CHECK(two_epochs.rfind("step,epoch,batch,what,name,cosine,relative_error,approx_norm,"
                           "exact_norm\n",
                           0) == 0);
    // 80 users, 5 batches of 16 per epoch: shadow steps 3, 6, 9; each has a loss row, an "all"
    // row and one attention row per block.
    CHECK(two_epochs.find("\n3,1,3,loss,loss,,") != std::string::npos);
    CHECK(two_epochs.find("\n9,2,4,all,all,") != std::string::npos);
    CHECK(two_epochs.find("\n6,2,1,attention,blocks.1.attn,") != std::string::npos);
    CHECK(two_epochs.find("\n6,2,1,attention_local,blocks.1.attn,") != std::string::npos);
    CHECK(two_epochs.find("\n12,") == std::string::npos);
    // A third epoch resumed from epoch 2's checkpoint appends to the rows of epochs 1-2. A kill
    // in the middle of a write leaves a torn line, which the cut back to before epoch 3 (what a
    // run resumed from epoch 2 does) drops with epoch 3's rows.
    const Run third = run(args + " --epochs 3 --resume");
    REQUIRE(third.status == 0);
    const std::string three_epochs = read(dir + "/shadow.csv");
    CHECK(three_epochs.rfind(two_epochs, 0) == 0);  // epochs 1-2 kept as they were
    CHECK(three_epochs.find("\n12,3,2,all,all,") != std::string::npos);
    {
      std::ofstream torn(dir + "/shadow.csv", std::ios::app);
      torn << "15,3,5,param";
    }
    attnlab::cli::truncate_shadow_log(dir + "/shadow.csv", 3);
    CHECK(read(dir + "/shadow.csv") == two_epochs);
  }

  TEST_CASE("approx: FAVOR+ against exact attention in value and gradient") {
    const std::string dir = scratch_dir("approx");
    const Run r =
        run("approx --length 24 --head-dim 8 --m 8,32 --scales 0.25,1 --samples 2 --maps "
            "positive,trig,elu+1 --causal true --out " +
            dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    check_csv(dir + "/approx_favor.csv", "map");
    check_jsonl(dir + "/approx_favor.jsonl");
    // 2 features x 2 m x 2 scales for each projected map, 2 scales for elu+1.
    const std::string csv = read(dir + "/approx_favor.csv");
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 8 + 8 + 2);
  }

  TEST_CASE("approx --study kinds: any registered kind against exact attention") {
    const std::string dir = scratch_dir("approx_kinds");
    const Run r =
        run("approx --study kinds --kinds softmax-reference,cosformer --length 12 --head-dim 4 "
            "--samples 2 --scales 0.5,1 --causal true --out " +
            dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    check_csv(dir + "/approx_kinds.csv", "kind");
    check_jsonl(dir + "/approx_kinds.jsonl");
    std::istringstream csv(read(dir + "/approx_kinds.csv"));
    std::string line;
    std::getline(csv, line);  // header: kind,scale,L,d,causal,samples,out_mse,rel_err,cos_dq,...
    int rows = 0;
    while (std::getline(csv, line)) {
      ++rows;
      std::vector<std::string> cells;
      std::stringstream ss(line);
      for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
      REQUIRE(cells.size() == 14);
      const double rel_err = std::stod(cells[7]), cos_dq = std::stod(cells[8]);
      CAPTURE(line);
      if (cells[0] == "softmax-reference") {
        // The composed reference is exact attention: only float32 rounding separates them.
        CHECK(rel_err < 1e-5);
        CHECK(cos_dq > 0.9999);
      } else {
        // cosFormer is a different attention, not an approximation of softmax: a real error,
        // and gradients that still point roughly the same way.
        CHECK(rel_err > 1e-3);
        CHECK(cos_dq < 0.9999);
      }
    }
    CHECK(rows == 4);
    CHECK(run("approx --study kinds --kinds favour").status == 2);
    CHECK(run("approx --study frobnicate").status == 2);
  }

  TEST_CASE("approx --study lisa: quantization error in value and gradient") {
    const std::string dir = scratch_dir("approx_lisa");
    const Run r =
        run("approx --study lisa --length 16 --head-dim 4 --samples 1 --codebooks 1x8,2x4 "
            "--selections st,gumbel-soft --out " +
            dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    check_csv(dir + "/approx_lisa.csv", "B");
    check_jsonl(dir + "/approx_lisa.jsonl");
    const std::string csv = read(dir + "/approx_lisa.csv");
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 4);
    // With one codeword per item the quantization is exact: LISA equals exact attention.
    const Run exact = run(
        "approx --study lisa --length 16 --head-dim 4 --samples 1 --codebooks 1x512 --selections "
        "st --out " +
        dir + "/exact");
    REQUIRE(exact.status == 0);
    std::istringstream lines(read(dir + "/exact/approx_lisa.csv"));
    std::string header, row, field;
    std::getline(lines, header);
    std::getline(lines, row);
    std::istringstream fields(row);
    for (int column = 0; column <= 9; ++column) std::getline(fields, field, ',');  // rel_err
    CHECK(std::stod(field) < 1e-12);
  }

  TEST_CASE("demo compares attention kinds in one table") {
    const std::string dir = scratch_dir("demo");
    const Run r =
        run("demo --kinds softmax-fused,favor --epochs 1 --synthetic-users 60 --synthetic-items 40 "
            "--maxlen 16 --dim 8 --features 8 --batch 32 --out " +
            dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("popularity") != std::string::npos);
    check_csv(dir + "/demo.csv", "model");
    const std::string csv = read(dir + "/demo.csv");
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 3);
  }

  TEST_CASE("bad flags and values: one line and a non-zero exit") {
    ::rmdir("/tmp/attnlab-kinds-out-refused");
    struct Case {
      std::string args, message;
    };
    for (const Case& c :
         {Case{"train --epochs -1", "--epochs: must be >= 0, got -1"},
          // (tiny sizes and no epochs: a regression fails fast instead of training for long)
          Case{"train --patience -1 --epochs 0 --synthetic-users 30 --synthetic-items 20",
               "--patience: must be >= 0, got -1"},
          // Checked with the flags (exit 2), not when the model is built after the data (exit 1).
          Case{"train --heads 3", "--heads: must divide --dim (50), got 3"},
          // Checked before the data are read, not at the first validation --eval-every epochs on.
          Case{"train --checkpoint /nonexistent-attnlab/x.npz --epochs 0 --synthetic-users 30",
               "--checkpoint: cannot write '/nonexistent-attnlab/x.npz'"},
          Case{"lesson abc", "'abc' is not a lesson number (attnlab lesson --list)"},
          // Common flags a command has no use for: refused, not silently ignored (gradcheck ran
          // in float64 whatever --dtype said; kinds --out made an empty directory).
          Case{"gradcheck --dtype float32", "--dtype: gradcheck runs in float64 only"},
          Case{"kinds --out /tmp/attnlab-kinds-out-refused", "--out: not used by kinds"},
          Case{"sweep --seed 3 --grid seed=1 --emit-jobs --dir /tmp/attnlab-sweep-seed-refused",
               "--seed: not used by sweep (give the runs' seeds in --grid"},
          Case{"bench tape --dtype float64", "--dtype: not used by bench tape"},
          Case{"approx --study lisa --dtype float32",
               "--dtype: approx --study lisa runs in float64 only"},
          Case{"train --dropout 1.5", "--dropout"},
          Case{"train --adam-betas 0.9", "--adam-betas: expected two numbers in [0, 1), got '0.9'"},
          Case{"train --adam-betas 0.9,1", "--adam-betas: expected two numbers in [0, 1)"},
          Case{"train --adam-betas 0.9,0.98x", "--adam-betas: expected two numbers in [0, 1)"},
          Case{"train --weight-decay -0.1", "--weight-decay: must be >= 0"},
          Case{"train --clip-norm nan", "--clip-norm: must be >= 0"},
          Case{"train --bogus", "unrecognised option '--bogus'"},
          Case{"train --threads -2", "--threads"},
          Case{"train --dtype float16", "--dtype"},
          Case{"train --resume", "--resume needs --checkpoint"},
          Case{"train --attention lisa-soft --lisa-query soft",
               "--lisa-query: 'soft' is unknown (known: hard, expected)"},
          Case{"train --attention lisa-soft --blocks 2", "--blocks: does not apply to --attention"},
          Case{"train --attention lisa-base --target-codebooks 8x64", "--target-codebooks: does"},
          Case{"train --attention softmax-fused --codebooks 8x32", "--codebooks: does not apply"},
          Case{"train --attention linear-elu --features 64", "--features: does not apply"},
          Case{"train --attention quantum --epochs 0", "model kind 'quantum' is unknown"},
          Case{"approx --maps cosine", "--maps: unknown feature map 'cosine'"},
          Case{"approx --features sparse", "--features: expected iid or orth"},
          Case{"approx --scales 1,-2", "--scales"},
          Case{"approx --preset fig5", "--preset"},
          Case{"approx --study lisa --codebooks 8by16", "--codebooks"},
          Case{"approx --study lisa --selections greedy", "--selections"},
          Case{"approx --study exact", "--study"},
          Case{"approx --length 100000000 --head-dim 100000", "out of memory"},
          Case{"demo --kinds softmax-fused,quantum", "--kinds: unknown model kind 'quantum'"},
          Case{"demo --kinds softmax-fused --codebooks 8by16", "--codebooks"},
          Case{"train --data /nonexistent/ml.txt", "/nonexistent/ml.txt"},
          Case{"bench gemm --sizes 64,x", "--sizes"},
          Case{"bench attention --kind nope", "--kind"},
          // Flags of the other bench model study: refused, not silently ignored.
          Case{"bench model --stream --reps 5", "--reps: not used by bench model --stream"},
          Case{"bench model --stream --batch 8", "--batch: not used by bench model --stream"},
          Case{"bench model --window 8", "--window: only for bench model --stream"},
          Case{"bench attention --kind favor --decay 0.1",
               "--decay: attention kind 'favor' takes no distance decay"},
          Case{"train --attention softmax-fused --tau 0.5",
               "--tau: does not apply to --attention "
               "softmax-fused (it has no options)"},
          Case{"train --attention favor --features many", "--features: expected an integer"},
          Case{"train --attention favor --redraw sometimes",
               "--redraw: 'sometimes' is unknown (known: never, every-n, every-call)"},
          Case{"bench attention --decay -1", "--decay: expected a number >= 0"},
          Case{"train --eval-users -3", "--eval-users: must be >= 0, or -1"},
          Case{"train --shadow-every 10", "--shadow-every: needs --shadow KIND"},
          Case{"train --attention favor --shadow exactly", "--shadow: attention kind 'exactly'"},
          Case{"train --attention favor --shadow softmax-fused --shadow-every 0 --out /tmp",
               "--shadow-every: must be positive"},
          Case{"train --attention favor --shadow softmax-fused",
               "needs --shadow-log FILE or --out"},
          Case{"train --config /nonexistent.cfg", "--config"}}) {
      CAPTURE(c.args);
      const Run r = run(c.args);
      CHECK(r.status != 0);
      CHECK(r.out.find(c.message) != std::string::npos);
      CHECK(std::count(r.out.begin(), r.out.end(), '\n') <= 1);  // one line
    }
    CHECK(::access("/tmp/attnlab-kinds-out-refused", F_OK) != 0);  // the refused --out made nothing
  }

  TEST_CASE("synthetic data with fewer items than the generator's topics trains") {
    // --synthetic-items 10 was refused with "synthetic_sequences: need ... topics in [1, items]",
    // naming a setting (20 topics) no flag sets.
    const Run r =
        run("train --synthetic-users 30 --synthetic-items 10 --synthetic-max-length 12 "
            "--maxlen 12 --dim 8 --blocks 1 --epochs 1 --eval-every 1 --threads 1");
    CAPTURE(r.out);
    CHECK(r.status == 0);
    CHECK(r.out.find("10 items") != std::string::npos);
  }

  TEST_CASE("train --epochs 0 shows no validation metrics - not zeros") {
    const std::string dir = scratch_dir("epochs0");
    const Run r =
        run("train --synthetic-users 30 --synthetic-items 20 --synthetic-max-length 12 "
            "--maxlen 12 --dim 8 --blocks 1 --epochs 0 --threads 1 --out " +
            dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    const std::string csv = attnlab_test::read_text(dir + "/result.csv");
    CAPTURE(csv);
    // attention, best epoch 0, valid HR@10 and NDCG@10 "-" (they printed 0.0000), test metrics of
    // the untrained model.
    CHECK(csv.find("\nsoftmax-fused,0,-,-,0.") != std::string::npos);
  }

  TEST_CASE("a config file's common flags that a command does not use are ignored") {
    // One file for several commands: kinds uses none of --seed, --dtype, --out; typed on the
    // command line they are refused (the bad-flags test), from the file they are ignored.
    const std::string dir = scratch_dir("shared_config");
    ::mkdir(dir.c_str(), 0755);
    {
      std::ofstream cfg(dir + "/shared.cfg");
      cfg << "seed = 3\ndtype = float64\nout = " << dir << "/kinds_out\n";
    }
    const Run r = run("kinds --config " + dir + "/shared.cfg");
    CAPTURE(r.out);
    CHECK(r.status == 0);
    CHECK(r.out.find("softmax-fused") != std::string::npos);
    CHECK(::access((dir + "/kinds_out").c_str(), F_OK) != 0);  // no --out directory made
  }

  TEST_CASE("options from a config file and the command line's precedence") {
    const std::string dir = scratch_dir("config");
    ::mkdir(dir.c_str(), 0755);
    {
      std::ofstream cfg(dir + "/run.cfg");
      cfg << "# a comment\nsynthetic-users = 40\nsynthetic-items = 30\nsynthetic-max-length = 20\n"
             "maxlen = 16\ndim = 8\nblocks = 1\nepochs = 5\neval-every = 1\n";
    }
    const Run r = run("train --config " + dir + "/run.cfg --epochs 1");  // the command line wins
    CHECK(r.status == 0);
    CHECK(r.out.find("epoch 1:") != std::string::npos);
    CHECK(r.out.find("epoch 2:") == std::string::npos);
    {
      std::ofstream cfg(dir + "/bad.cfg");
      cfg << "epochs = many\n";
    }
    const Run bad = run("train --config " + dir + "/bad.cfg");
    CHECK(bad.status == 2);
    CHECK(bad.out.find("epochs") != std::string::npos);
  }
}
