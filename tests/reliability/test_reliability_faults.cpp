// Faults (issue 11): a checkpoint write that fails (an injected write error) or is killed
// (SIGKILL in the middle of saving) leaves the previous checkpoint intact and loadable, and
// resuming continues bit-identically; a sweep killed at any point resumes without redoing or
// losing finished configurations. Each case counts the faults it survived and prints the count.
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/core.hpp"
#include "core/file_io.hpp"
#include "layers/optim/checkpoint.hpp"
#include "layers/recommender/sasrec.hpp"
#include "layers/recommender/seqrec_trainer.hpp"
#include "tests/scratch_path.hpp"
#include "tests/test_helpers.hpp"

extern char** environ;

using namespace attnlab;

namespace {

using Clock = std::chrono::steady_clock;

std::string scratch(const std::string& name) {
  const std::string dir = attnlab::testing::scratch_path("faults_" + name);
  std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str());
  return dir;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Names in `dir` that contain ".tmp." (write_file_atomic's temporary files).
std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (std::strstr(e->d_name, ".tmp.") != nullptr)
        out.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  return out;
}

struct HookGuard {
  ~HookGuard() { set_write_fault_hook(nullptr); }
};

// ---- in-process training with injected write errors ----

rec::SplitDataset tiny_split() {
  rec::SyntheticConfig sc;
  sc.users = 48;
  sc.items = 30;
  sc.min_length = 6;
  sc.max_length = 16;
  sc.seed = 11;
  return rec::leave_one_out(rec::synthetic_sequences(sc));
}

rec::SASRecConfig tiny_model(int64_t num_items, const std::string& attention = "softmax-fused") {
  rec::SASRecConfig mc;
  mc.num_items = num_items;
  mc.max_length = 12;
  mc.dim = 8;
  mc.blocks = 1;
  mc.heads = 1;
  mc.dropout = 0.2;
  mc.attention = attention;
  mc.seed = 5;
  return mc;
}

rec::TrainConfig tiny_training(const std::string& checkpoint) {
  rec::TrainConfig tc;
  tc.epochs = 6;
  tc.batch_size = 16;
  tc.lr = 5e-3;
  tc.eval_every = 1;
  tc.eval_negatives = 20;
  tc.seed = 9;
  tc.checkpoint = checkpoint;
  return tc;
}

struct Outcome {
  std::vector<double> losses;  // by epoch (index epoch - 1)
  rec::TrainResult result;
  NamedTensors final_state;  // the model after training (the best validation model)
};

// Trains a fresh model (resuming from the checkpoint when `resume`); `losses` gets every epoch
// this call ran.
Outcome train_once(const rec::SplitDataset& data, const rec::TrainConfig& tc, Outcome* partial) {
  rec::SASRec model(tiny_model(data.num_items));
  Outcome o;
  Outcome& sink = partial ? *partial : o;
  o.result = rec::train_recommender(model, data, tc, [&](const rec::EpochLog& e) {
    if (static_cast<int64_t>(sink.losses.size()) < e.epoch)
      sink.losses.resize(e.epoch);
    sink.losses[e.epoch - 1] = e.loss;
  });
  for (auto& [n, t] : model.state_dict()) o.final_state.emplace_back(n, t.clone());
  if (partial)
    o.losses = partial->losses;
  return o;
}

void check_same_run(const Outcome& a, const Outcome& b) {
  REQUIRE(a.losses.size() == b.losses.size());
  for (std::size_t i = 0; i < a.losses.size(); ++i) {
    CAPTURE(i);
    CHECK(a.losses[i] == b.losses[i]);  // bit-identical, not approximately equal
  }
  CHECK(a.result.best_epoch == b.result.best_epoch);
  CHECK(a.result.best_valid.ndcg10 == b.result.best_valid.ndcg10);
  CHECK(a.result.best_valid.hr10 == b.result.best_valid.hr10);
  CHECK(a.result.test.ndcg10 == b.result.test.ndcg10);
  CHECK(a.result.test.hr10 == b.result.test.hr10);
  REQUIRE(a.final_state.size() == b.final_state.size());
  for (std::size_t i = 0; i < a.final_state.size(); ++i) {
    CAPTURE(a.final_state[i].first);
    CHECK(testing::bitwise_equal(a.final_state[i].second, b.final_state[i].second));
  }
}

// ---- child processes ----

struct Child {
  pid_t pid = -1;
};

// Starts argv[0] with the rest as arguments, stdout and stderr to `log`, in its own process
// group (so that killing the group also kills what it started).
Child spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  Child c;
  const int rc = ::posix_spawn(&c.pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  REQUIRE_MESSAGE(rc == 0, "posix_spawn " << args[0] << ": " << std::strerror(rc));
  return c;
}

// Exit status, or -signal when killed.
int wait_for(const Child& c) {
  int st = 0;
  ::waitpid(c.pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

bool still_running(const Child& c, int* status) {
  int st = 0;
  const pid_t r = ::waitpid(c.pid, &st, WNOHANG);
  if (r == 0)
    return true;
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  return false;
}

int run_to_end(const std::vector<std::string>& args, const std::string& log) {
  return wait_for(spawn(args, log));
}

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// result.csv of `attnlab train` without its timing column (the last one, s/epoch).
// The result table without the run's measurements (its last three columns: seconds per epoch,
// peak tensor MiB and peak RSS MiB), which depend on the machine and, after a resume, on the part
// of the run the last process did.
std::string result_without_timing(const std::string& path) {
  std::istringstream in(slurp(path));
  std::string line, out;
  while (std::getline(in, line)) {
    std::size_t cut = line.size();
    for (int k = 0; k < 3 && cut != std::string::npos && cut > 0; ++k)
      cut = line.rfind(',', cut - 1);
    out += line.substr(0, cut) + "\n";
  }
  return out;
}

// A JSON-lines training log without its timing fields ("seconds", "sequences_per_second").
std::string log_without_timing(const std::string& path) {
  std::istringstream in(slurp(path));
  std::string line, out;
  while (std::getline(in, line)) {
    const std::size_t from = line.find(", \"seconds\": ");
    const std::size_t to = line.find(", ", line.find("\"sequences_per_second\": "));
    out += from == std::string::npos
               ? line
               : line.substr(0, from) + (to == std::string::npos ? "}" : line.substr(to));
    out += "\n";
  }
  return out;
}

// The last "epoch N: loss X, ..." line's "epoch N: loss X" part.
std::string last_epoch_loss(const std::string& log) {
  std::istringstream in(slurp(log));
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.rfind("epoch ", 0) == 0)
      last = line.substr(0, line.find(','));
  }
  return last;
}

}  // namespace

TEST_SUITE("reliability.faults") {
  TEST_CASE("an injected write error at every chunk of a checkpoint leaves the old one loadable") {
    // A model big enough for its checkpoint to span several 64 KiB chunks.
    rec::SASRecConfig mc = tiny_model(3000);
    mc.dim = 16;
    rec::SASRec model(mc);
    optim::Adam opt(model.named_parameters(), 1e-3);
    Generator data_rng(4);
    const std::string dir = scratch("inject");
    const std::string path = dir + "/ckpt.npz";
    optim::save_checkpoint(path, model, opt, 1, {{"data", &data_rng}}, {{"best", 0.5}});
    const std::string before = slurp(path);
    REQUIRE(before.size() > 4 * 65536);

    // Change everything a checkpoint holds, then fail the next save at each chunk in turn.
    for (auto& p : model.parameters()) p.value().copy_from(add(p.value(), 1.0));
    data_rng.next();
    HookGuard guard;
    const std::size_t chunks = (before.size() + 65535) / 65536;
    int survived = 0;
    for (std::size_t fail_at = 1; fail_at <= chunks; ++fail_at) {
      CAPTURE(fail_at);
      std::size_t calls = 0;
      set_write_fault_hook([&](const std::string&, std::size_t) {
        if (++calls == fail_at)
          throw std::runtime_error("injected: no space left on device");
      });
      CHECK_THROWS_AS(
          optim::save_checkpoint(path, model, opt, 2, {{"data", &data_rng}}, {{"best", 0.7}}),
          IOError);
      set_write_fault_hook(nullptr);
      CHECK(slurp(path) == before);  // the previous checkpoint, byte for byte
      CHECK(temp_files(dir).empty());
      rec::SASRec fresh(mc);
      optim::Adam fresh_opt(fresh.named_parameters(), 1e-3);
      Generator fresh_rng(99);
      optim::NamedScalars scalars;
      CHECK(optim::load_checkpoint(path, fresh, fresh_opt, {{"data", &fresh_rng}}, &scalars) == 1);
      CHECK(fresh_rng == Generator(4));
      REQUIRE(scalars.size() == 1);
      CHECK(scalars[0].second == 0.5);
      ++survived;
    }
    std::cout << "[reliability] injected write errors survived (one per chunk): " << survived
              << " of " << chunks << "\n";
    CHECK(survived == static_cast<int>(chunks));
    std::system(("rm -rf '" + dir + "'").c_str());
  }

  TEST_CASE(
      "training survives a write error at every checkpoint write and resumes bit-identically") {
    const rec::SplitDataset data = tiny_split();
    const std::string dir = scratch("train_inject");
    HookGuard guard;

    // Reference: never interrupted; count the writes (checkpoints and best models).
    std::size_t writes = 0;
    set_write_fault_hook([&](const std::string&, std::size_t) { ++writes; });
    const Outcome reference = train_once(data, tiny_training(dir + "/ref.npz"), nullptr);
    set_write_fault_hook(nullptr);
    REQUIRE(writes >= 6);  // a checkpoint at each of 6 epochs, plus the best models
    REQUIRE(reference.losses.size() == 6);

    int survived = 0;
    for (std::size_t fail_at = 1; fail_at <= writes; ++fail_at) {
      CAPTURE(fail_at);
      const std::string ckpt = dir + "/run" + std::to_string(fail_at) + ".npz";
      std::size_t calls = 0;
      std::string target, old_bytes;
      bool had_old = false;
      set_write_fault_hook([&](const std::string& p, std::size_t) {
        if (++calls == fail_at) {
          target = p;
          had_old = exists(p);
          old_bytes = had_old ? slurp(p) : "";
          throw std::runtime_error("injected: I/O error");
        }
      });
      Outcome partial;
      CHECK_THROWS_AS(train_once(data, tiny_training(ckpt), &partial), IOError);
      set_write_fault_hook(nullptr);
      // The file being written is as it was: absent, or the previous version byte for byte.
      CHECK(exists(target) == had_old);
      if (had_old)
        CHECK(slurp(target) == old_bytes);
      CHECK(temp_files(dir).empty());
      // Resume (or start again when no checkpoint was ever completed), as a user would.
      rec::TrainConfig tc = tiny_training(ckpt);
      tc.resume = exists(ckpt);
      const Outcome resumed = train_once(data, tc, &partial);
      check_same_run(reference, resumed);
      CHECK(slurp(ckpt) == slurp(dir + "/ref.npz"));
      CHECK(slurp(ckpt + ".best.npz") == slurp(dir + "/ref.npz.best.npz"));
      ++survived;
    }
    std::cout << "[reliability] training write errors survived: " << survived << " of " << writes
              << "\n";
    CHECK(survived == static_cast<int>(writes));
    std::system(("rm -rf '" + dir + "'").c_str());
  }

  TEST_CASE("attnlab train killed with SIGKILL while saving resumes bit-identically") {
    const std::string dir = scratch("kill_train");
    const std::string base =
        std::string(ATTNLAB_CLI_PATH) +
        " train --synthetic-users 80 --synthetic-items 400 --synthetic-max-length 30 --maxlen 24 "
        "--dim 32 --blocks 1 --epochs 20 --eval-every 1 --batch 16 --threads 1 --seed 3";
    // Reference: uninterrupted.
    const auto t0 = Clock::now();
    REQUIRE(run_to_end(split_words(base + " --checkpoint " + dir + "/ref.npz --log " + dir +
                                   "/ref.jsonl --out " + dir + "/ref"),
                       dir + "/ref.log") == 0);
    const double ref_seconds = std::chrono::duration<double>(Clock::now() - t0).count();

    // Cycles: kill, resume, kill ... until a run completes, then check it against the reference.
    // A run that completes before its kill ends the cycle; a new one starts from scratch until
    // `kills_wanted` kills have landed (at most 4 cycles).
    std::mt19937_64 rng(12345);
    const int kills_wanted = 10;
    int kills = 0, mid_save = 0, attempts = 0, cycles = 0;
    while (kills < kills_wanted && cycles < 4) {
      const std::string cdir = dir + "/cycle" + std::to_string(++cycles);
      ::mkdir(cdir.c_str(), 0755);
      const std::string ckpt = cdir + "/ckpt.npz";
      int status = -1;
      std::string last_log;
      while (true) {
        REQUIRE(++attempts < 60);
        std::string args = base + " --checkpoint " + ckpt + " --log " + cdir +
                           "/train.jsonl --out " + cdir + "/run";
        if (exists(ckpt))
          args += " --resume";
        last_log = cdir + "/run" + std::to_string(attempts) + ".log";
        const Child c = spawn(split_words(args), last_log);
        if (kills >= kills_wanted) {
          status = wait_for(c);
          break;
        }
        // Even kills: the moment a temporary checkpoint file appears (the middle of a save).
        // Odd kills: a random moment of the run.
        const std::set<std::string> stale = [&] {
          const auto v = temp_files(cdir);
          return std::set<std::string>(v.begin(), v.end());
        }();
        const bool at_save = kills % 2 == 0;
        const double delay = std::uniform_real_distribution<double>(0.05, 0.5)(rng) * ref_seconds;
        const auto start = Clock::now();
        bool running = true;
        while ((running = still_running(c, &status))) {
          const double t = std::chrono::duration<double>(Clock::now() - start).count();
          if (at_save) {
            bool fresh_temp = false;
            for (const auto& f : temp_files(cdir)) fresh_temp = fresh_temp || !stale.count(f);
            if (fresh_temp || t > 3 * ref_seconds)
              break;
            std::this_thread::sleep_for(std::chrono::microseconds(100));
          } else {
            if (t >= delay)
              break;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }
        if (!running)
          break;  // it finished before the kill: the cycle is complete
        ::kill(c.pid, SIGKILL);
        CHECK(wait_for(c) == -SIGKILL);
        ++kills;
        for (const auto& f : temp_files(cdir)) {
          if (!stale.count(f)) {
            ++mid_save;  // the kill left a half-written temporary file: it hit a save
            break;
          }
        }
        // Whatever the kill interrupted, the checkpoint on disk (if any) must load.
        if (exists(ckpt)) {
          const NamedTensors entries = load_npz(ckpt);
          CHECK(!entries.empty());
        }
      }
      CAPTURE(cycles);
      REQUIRE(status == 0);
      // Bit-identical: the final checkpoint (model, Adam state, step, best metrics) and the best
      // model byte for byte, the test metrics, and the last epoch's printed loss.
      CHECK(slurp(ckpt) == slurp(dir + "/ref.npz"));
      CHECK(slurp(ckpt + ".best.npz") == slurp(dir + "/ref.npz.best.npz"));
      CHECK(result_without_timing(cdir + "/run/result.csv") ==
            result_without_timing(dir + "/ref/result.csv"));
      const std::string last = last_epoch_loss(last_log);
      if (!last.empty())
        CHECK(last == last_epoch_loss(dir + "/ref.log"));
      // The log has every epoch exactly once with the reference's losses and metrics (a resume
      // drops what the checkpoint does not cover), and no temporary file of a killed save is
      // left: the resumed runs removed them.
      CHECK(log_without_timing(cdir + "/train.jsonl") == log_without_timing(dir + "/ref.jsonl"));
      CHECK(temp_files(cdir).empty());
    }
    CHECK(kills >= kills_wanted / 2);
    std::cout << "[reliability] attnlab train SIGKILLs survived: " << kills << " (" << mid_save
              << " in the middle of a checkpoint write), " << attempts << " starts in " << cycles
              << " cycle(s); a whole run takes " << ref_seconds << " s\n";
    std::system(("rm -rf '" + dir + "'").c_str());
  }

  TEST_CASE("attnlab sweep killed at any point resumes without redoing or losing configurations") {
    const std::string dir = scratch("kill_sweep");
    const std::string train_args =
        "--synthetic-users 40 --synthetic-items 30 --synthetic-max-length 16 --maxlen 12 "
        "--blocks 1 --epochs 2 --eval-every 1 --threads 1";
    auto sweep_args = [&](const std::string& sweep_dir) {
      return std::vector<std::string>{ATTNLAB_CLI_PATH,
                                      "sweep",
                                      "--grid",
                                      "dim=8,12;seed=1,2,3",
                                      "--dir",
                                      sweep_dir,
                                      "--args",
                                      train_args,
                                      "--threads",
                                      "1"};
    };
    const int configs = 6;
    const auto t0 = Clock::now();
    REQUIRE(run_to_end(sweep_args(dir + "/ref"), dir + "/ref.log") == 0);
    const double ref_seconds = std::chrono::duration<double>(Clock::now() - t0).count();

    auto finished = [&] {
      std::set<int> done;
      for (int k = 0; k < configs; ++k) {
        if (exists(dir + "/run/runs/" + std::to_string(k) + "/result.csv"))
          done.insert(k);
      }
      return done;
    };
    std::mt19937_64 rng(777);
    std::vector<int> starts(configs, 0);
    int kills = 0, attempts = 0, status = -1;
    std::set<int> done_before;
    bool redone = false;
    while (true) {
      REQUIRE(++attempts < 30);
      const std::string log = dir + "/run" + std::to_string(attempts) + ".log";
      const Child c = spawn(sweep_args(dir + "/run"), log);
      const bool kill_it = kills < 8;
      bool running = true;
      if (kill_it) {
        const double delay = std::uniform_real_distribution<double>(0.0, 0.4)(rng) * ref_seconds;
        const auto start = Clock::now();
        while ((running = still_running(c, &status)) &&
               std::chrono::duration<double>(Clock::now() - start).count() < delay) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        if (running) {
          ::kill(-c.pid, SIGKILL);  // the sweep and every configuration it was running
          wait_for(c);
          ++kills;
        }
      } else {
        status = wait_for(c);
        running = false;
      }
      // Which configurations this attempt started: none may have been finished before it.
      std::istringstream in(slurp(log));
      std::string line;
      while (std::getline(in, line)) {
        int k = -1;
        if (std::sscanf(line.c_str(), "configuration %d started", &k) == 1 && k >= 0 &&
            k < configs) {
          ++starts[k];
          if (done_before.count(k))
            redone = true;
        }
      }
      const std::set<int> now = finished();
      for (int k : done_before) CHECK(now.count(k) == 1);  // nothing finished is ever lost
      done_before = now;
      if (!running)
        break;
    }
    CHECK(status == 0);
    CHECK_FALSE(redone);
    CHECK(static_cast<int>(finished().size()) == configs);
    // Each configuration's result equals the uninterrupted sweep's (timing column aside).
    for (int k = 0; k < configs; ++k) {
      CAPTURE(k);
      const std::string r = "/runs/" + std::to_string(k) + "/result.csv";
      CHECK(result_without_timing(dir + "/run" + r) == result_without_timing(dir + "/ref" + r));
    }
    const std::string last = slurp(dir + "/run" + std::to_string(attempts) + ".log");
    CHECK(last.find("6 of 6 configurations finished") != std::string::npos);
    std::cout << "[reliability] attnlab sweep SIGKILLs survived: " << kills << " in " << attempts
              << " starts; configuration starts:";
    for (int s : starts) std::cout << " " << s;
    std::cout << "\n";
    std::system(("rm -rf '" + dir + "'").c_str());
  }

  TEST_CASE("a sweep directory refuses another grid instead of mixing up results") {
    const std::string dir = scratch("sweep_grid");
    const std::string train_args =
        "--synthetic-users 30 --synthetic-items 20 --synthetic-max-length 12 --maxlen 10 --dim 8 "
        "--blocks 1 --epochs 1 --eval-every 1 --threads 1";
    auto sweep = [&](const std::string& grid) {
      return run_to_end(
          {ATTNLAB_CLI_PATH, "sweep", "--grid", grid, "--dir", dir + "/s", "--args", train_args},
          dir + "/log");
    };
    REQUIRE(sweep("seed=1,2") == 0);
    // runs/0 and runs/1 hold seeds 1 and 2: with seeds 2,3 they would be taken as finished.
    CHECK(sweep("seed=2,3") == 2);
    CHECK(slurp(dir + "/log").find("holds a sweep of another grid") != std::string::npos);
    CHECK(sweep("seed=1,2") == 0);  // the same grid resumes (everything already finished)
    CHECK(slurp(dir + "/log").find("0 run, 2 already finished") != std::string::npos);
    std::system(("rm -rf '" + dir + "'").c_str());
  }
}
