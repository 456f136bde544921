// Fuzzing regressions (issue 11): every input that crashed a fuzz target (tests/fuzz/regressions/
// <target>-<what>, kept with the fix) and every seed of the committed corpora
// (tests/fuzz/corpus/<target>/) goes through the same code the target runs: each must parse or
// throw an attnlab::Error, never crash (this file runs under ASan + UBSan in CI too). The config
// target needs the CLI's parser, which this executable does not link: its inputs run through
// `attnlab bench gemm --config FILE`.
#include <dirent.h>
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/core.hpp"
#include "layers/optim/checkpoint.hpp"
#include "layers/recommender/seqrec_data.hpp"
#include "tests/fuzz/fuzz_checkpoint_model.hpp"

using namespace attnlab;

namespace {

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.')
        out.push_back(dir + "/" + e->d_name);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void check_split(const rec::SequenceDataset& d) {
  (void)d.summary();
  const rec::SplitDataset s = rec::leave_one_out(d);
  for (const auto& seq : s.train) {
    for (int64_t item : seq) {
      REQUIRE(item >= 1);
      REQUIRE(item <= d.num_items);
    }
  }
}

// What the fuzz target `target` runs on `bytes`. Returns true when the input parsed, false when
// it was refused with an attnlab::Error; any other exception fails the test.
bool run_target(const std::string& target, const std::string& bytes, const std::string& path) {
  try {
    if (target == "npy") {
      const Tensor t = parse_npy(bytes, path);
      const Tensor back = parse_npy(npy_bytes(t), "roundtrip");
      CHECK(back.shape() == t.shape());
    } else if (target == "npz") {
      const NamedTensors e = parse_npz(bytes, path);
      CHECK(parse_npz(npz_bytes(e), "roundtrip").size() == e.size());
    } else if (target == "sasrec") {
      check_split(rec::parse_sasrec_text(bytes, path));
    } else if (target == "ratings") {
      if (bytes.empty())
        return false;
      check_split(rec::parse_movielens_text(bytes.substr(1), path, bytes[0] % 8));
    } else if (target == "checkpoint") {
      fuzz::CheckpointTarget t;
      const NamedTensors entries = parse_npz(bytes, path);
      (void)optim::load_checkpoint_entries(entries, path, *t.model, *t.opt, t.rngs());
    } else if (target == "config") {
      // `timeout`: a hang (what fuzz_config found) fails the test instead of stalling the suite.
      const std::string cmd = "timeout 60 " + std::string(ATTNLAB_CLI_PATH) +
                              " bench gemm --sizes 8 --quick --threads 1 --config '" + path +
                              "' >/dev/null 2>&1";
      const int st = std::system(cmd.c_str());
      REQUIRE(WIFEXITED(st));         // no signal: a bad config is an error message and exit 1 or 2
      CHECK(WEXITSTATUS(st) != 124);  // timed out
      return WEXITSTATUS(st) == 0;
    } else {
      FAIL("unknown fuzz target '" << target << "' for " << path);
    }
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace


TEST_SUITE("reliability.fuzz") {
  TEST_CASE("every seed of the committed fuzz corpora parses or throws an attnlab error") {
    const std::string root = std::string(ATTNLAB_SOURCE_DIR) + "/tests/fuzz/corpus";
    int seeds = 0, parsed = 0;
    for (const std::string target : {"npy", "npz", "sasrec", "ratings", "checkpoint"}) {
      const auto files = files_in(root + "/" + target);
      CHECK_MESSAGE(!files.empty(), "no seed corpus for " << target);
      for (const auto& f : files) {
        CAPTURE(f);
        parsed += run_target(target, slurp(f), f) ? 1 : 0;
        ++seeds;
      }
    }
    CHECK(parsed > 0);
    CHECK(parsed < seeds);  // the corpora hold near-valid inputs too
  }

  TEST_CASE("inputs that crashed a fuzz target are fixed") {
    const std::string root = std::string(ATTNLAB_SOURCE_DIR) + "/tests/fuzz/regressions";
    for (const auto& f : files_in(root)) {
      CAPTURE(f);
      const std::string name = f.substr(f.rfind('/') + 1);
      const std::string target = name.substr(0, name.find('-'));
      run_target(target, slurp(f), f);
    }
  }

  TEST_CASE("fuzz finding: a 19-digit ratings.dat field is refused - not overflowed") {
    // fuzz_ratings: parse_int accepted 19 digits, and v * 10 overflowed int64 (UB; in practice a
    // silently wrong timestamp). 18 digits still parse.
    CHECK_THROWS_WITH_AS(rec::parse_movielens_text("1::2::3::9782971078978300768\n", "r.dat", 1),
                         doctest::Contains("Timestamp"),
                         IOError);
    CHECK_THROWS_AS(rec::parse_movielens_text("1::2::-9999999999999999999::5\n", "r.dat", 1),
                    IOError);
    CHECK(rec::parse_movielens_text("1::2::3::-999999999999999999\n", "r.dat", 1).num_items == 1);
  }

  TEST_CASE("fuzz finding: SASRec-format item ids far sparser than the items are refused") {
    // `attnlab train --data` on "1 999999999999" ended in std::bad_alloc (10^8 took 3 GB and
    // 28 s before failing): the embedding has one row per id.
    CHECK_THROWS_WITH_AS(rec::parse_sasrec_text("1 999999999999\n1 2\n", "s.txt"),
                         doctest::Contains("item ids are not dense"),
                         IOError);
    CHECK(rec::parse_sasrec_text("1 1000\n1 2\n", "s.txt").num_items == 1000);  // sparse but small
  }

  TEST_CASE("fuzz finding: a flag value containing a Boost placeholder is an error - not a hang") {
    // fuzz_config: Boost 1.74 substitutes "%value%" in its messages until none is left, so
    // `--epochs %value%` looped forever (in a --config file too).
    for (const std::string value : {"%value%", "%canonical_option%", "%option%", "1%"}) {
      CAPTURE(value);
      const std::string cmd =
          "timeout 60 " + std::string(ATTNLAB_CLI_PATH) + " train --epochs '" + value + "' 2>&1";
      std::string out;
      FILE* p = ::popen(cmd.c_str(), "r");
      REQUIRE(p != nullptr);
      char buf[512];
      while (std::fgets(buf, sizeof buf, p)) out += buf;
      const int st = ::pclose(p);
      REQUIRE(WIFEXITED(st));
      CHECK(WEXITSTATUS(st) == 2);
      CHECK(out.find("the argument ('" + value + "') for option '--epochs' is invalid") !=
            std::string::npos);
    }
  }
}
