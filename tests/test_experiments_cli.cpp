// The attnlab CLI as a user runs it: every subcommand in a tiny configuration, its output files,
// and bad flags (a one-line message and a non-zero exit).
#include <doctest/doctest.h>
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

#include "tests/cli_test_helpers.hpp"

namespace {

using Run = attnlab_test::CliRun;
Run run(const std::string& args) {
  return attnlab_test::run_cli(args);
}

std::string scratch_dir(const std::string& name) {
  return "/tmp/attnlab_cli_" + std::to_string(::getpid()) + "_" + name;
}

std::string read(const std::string& path) {
  return attnlab_test::read_text(path);
}

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
    const std::string list = read(dir + "/jobs.txt");
    CHECK(std::count(list.begin(), list.end(), '\n') == 4);
    CHECK(read(dir + "/slurm.sh").find("SLURM_ARRAY_TASK_ID") != std::string::npos);
    const Run merged = run(base + " --collect");
    CHECK(merged.status == 0);
    CHECK(merged.out.find("4 of 4 configurations finished") != std::string::npos);
    CHECK(run("sweep --grid \"dim\" --dir " + dir).status == 2);
    CHECK(run("sweep --dir " + dir).status == 2);
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

  TEST_CASE("help and unknown commands") {
    const Run help = run("--help");
    CHECK(help.status == 0);
    for (const char* cmd : {"bench", "gradcheck", "train"})
      CHECK(help.out.find(cmd) != std::string::npos);
    const Run unknown = run("frobnicate");
    CHECK(unknown.status == 2);
    CHECK(unknown.out.find("unknown command 'frobnicate'") != std::string::npos);
    CHECK(run("").status == 2);
    CHECK(run("train --help").status == 0);
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
    struct Case {
      std::string args, message;
    };
    for (const Case& c :
         {Case{"train --epochs -1", "--blocks and --epochs"},
          Case{"train --dropout 1.5", "--dropout"},
          Case{"train --bogus", "unrecognised option '--bogus'"},
          Case{"train --threads -2", "--threads"},
          Case{"train --dtype float16", "--dtype"},
          Case{"train --resume", "--resume needs --checkpoint"},
          Case{"train --attention lisa-soft --lisa-query soft", "--lisa-query: expected hard"},
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
          Case{"bench attention --kind favor --decay 0.1", "--decay: only the exact kinds"},
          Case{"bench attention --decay -1", "--decay: expected a number >= 0"},
          Case{"train --config /nonexistent.cfg", "--config"}}) {
      CAPTURE(c.args);
      const Run r = run(c.args);
      CHECK(r.status != 0);
      CHECK(r.out.find(c.message) != std::string::npos);
      CHECK(std::count(r.out.begin(), r.out.end(), '\n') <= 1);  // one line
    }
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
