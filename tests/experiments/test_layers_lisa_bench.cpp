// `attnlab bench lisa` as a user runs it: a tiny configuration writes its tables, and bad flags
// give a one-line message and exit code 2.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/cli_test_helpers.hpp"
#include "tests/scratch_path.hpp"

namespace {
using Run = attnlab_test::CliRun;
inline Run run(const std::string& args) {
  return attnlab_test::run_cli(args);
}
using attnlab_test::read_text;
inline std::string read(const std::string& path) {
  return read_text(path);
}
}  // namespace

TEST_SUITE("layers.lisa_bench") {
  TEST_CASE("bench lisa --quick writes the timing and comparison tables") {
    const std::string dir = attnlab::testing::scratch_path("lisa_bench");
    const Run r = run("bench lisa --quick --out " + dir);
    CHECK_MESSAGE(r.status == 0, r.out);
    CHECK(r.out.find("lisa-fused") != std::string::npos);
    CHECK(r.out.find("softmax-reference") != std::string::npos);
    const std::string csv = read(dir + "/lisa.csv");
    CHECK(csv.rfind("kind,", 0) == 0);
    CHECK(read(dir + "/lisa_comparison.csv").rfind("kind,", 0) == 0);
    CHECK(!read(dir + "/lisa.jsonl").empty());
    std::system(("rm -rf " + dir).c_str());
  }

  TEST_CASE("bench lisa rejects bad flags with exit code 2") {
    const Run configs = run("bench lisa --quick --configs 8by16");
    CHECK(configs.status == 2);
    CHECK(configs.out.find("--configs") != std::string::npos);
    const Run kind = run("bench lisa --kind favor");
    CHECK(kind.status == 2);
    CHECK(kind.out.find("--kind") != std::string::npos);
    CHECK(run("bench lisa --lengths 0").status == 2);
  }
}
