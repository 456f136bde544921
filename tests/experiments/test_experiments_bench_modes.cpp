// The bench modes added for fair comparisons and model-level studies, as a user runs them:
// `bench case` (the JSON line of one case), `bench compare` (the paired table against a stand-in
// baseline, tests/data/fake_baseline run with /bin/sh, so the test needs neither Python nor
// PyTorch) and `bench model` (whole recommenders against L).
#include <doctest/doctest.h>
#include <unistd.h>

#include <string>

#include "tests/cli_test_helpers.hpp"
#include "tests/scratch_path.hpp"

namespace {

using attnlab_test::read_text;
using attnlab_test::run_cli;

const std::string kFake = std::string(ATTNLAB_SOURCE_DIR) + "/tests/data/fake_baseline";

TEST_SUITE("experiments.bench_modes") {
  TEST_CASE("bench case prints one JSON line with the median of equal repetitions") {
    const auto r = run_cli("bench case --case gemm --n 32 --reps 3 --threads 1");
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("\"case\": \"gemm\"") != std::string::npos);
    CHECK(r.out.find("\"config\": \"n=32\"") != std::string::npos);
    CHECK(r.out.find("\"reps\": 3") != std::string::npos);
    CHECK(r.out.find("\"median_ms\": ") != std::string::npos);
    const auto attn = run_cli("bench case --case exact-causal --length 16 --head-dim 4 --reps 2");
    CHECK(attn.status == 0);
    CHECK(attn.out.find("\"config\": \"L=16,d=4\"") != std::string::npos);
    const auto favor =
        run_cli("bench case --case favor-causal --length 16 --head-dim 4 --features 8 --reps 2");
    CHECK(favor.status == 0);
    CHECK(run_cli("bench case --case nope").status == 2);
    CHECK(run_cli("bench case --case sasrec-epoch").status == 2);  // needs --data
  }

  TEST_CASE("bench compare alternates both sides and reports the ratio per pair") {
    const std::string dir = attnlab::testing::scratch_path("compare");
    const auto r = run_cli("bench compare --python /bin/sh --baselines " + kFake +
                           " --cases gemm --n 32 --pairs 3 --reps 2 --threads 1 --out " + dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("FakeKernel") != std::string::npos);
    const std::string pairs = read_text(dir + "/compare_pairs.csv");
    CHECK(pairs.rfind("case,pair,attnlab ms,pytorch ms,ratio", 0) == 0);
    int rows = 0;
    for (char c : pairs) rows += c == '\n';
    CHECK(rows == 1 + 3);
    // The baseline's median is 1000 ms; attnlab's 32^3 GEMM takes far less, so every ratio
    // (baseline / attnlab) is far above 1.
    const std::string summary = read_text(dir + "/compare.csv");
    CHECK(summary.find("gemm,--n 32,") != std::string::npos);
    CHECK(summary.find("FakeKernel") != std::string::npos);
  }

  TEST_CASE("bench compare: bad flags and a failing baseline are one-line errors") {
    CHECK(run_cli("bench compare --against matlab").status == 2);
    CHECK(run_cli("bench compare --cases warp --python /bin/sh --baselines " + kFake).status == 2);
    const auto fail = run_cli("bench compare --baselines " + kFake +
                              " --cases gemm --n 8 --pairs 1 --reps 1 --python /bin/false");
    CHECK(fail.status == 1);
    CHECK(fail.out.find("/bin/false " + kFake + "/bench_case.py --framework torch") !=
          std::string::npos);
    CHECK(fail.out.find("failed (exit status 1)") != std::string::npos);
    const auto missing = run_cli(
        "bench compare --cases gemm --n 8 --pairs 1 --reps 1 "
        "--python /nonexistent/python3");
    CHECK(missing.status == 1);
    CHECK(missing.out.find("failed (exit status 127)") != std::string::npos);
  }

  TEST_CASE("bench model times every model kind and reports the crossovers") {
    const std::string dir = attnlab::testing::scratch_path("bench_model");
    const auto r = run_cli("bench model --quick --reps 1 --out " + dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    const std::string csv = read_text(dir + "/model.csv");
    CHECK(csv.rfind("kind,L,train step ms,inference ms,train peak MiB,inference peak MiB", 0) ==
          0);
    int rows = 0;
    for (char c : csv) rows += c == '\n';
    CHECK(rows == 1 + 6 * 2);  // six default kinds at the two quick lengths
    const std::string cross = read_text(dir + "/model_crossover.csv");
    for (const char* kind : {"favor,softmax-fused", "lisa-soft,softmax-reference"})
      CHECK(cross.find(kind) != std::string::npos);
    CHECK(run_cli("bench model --kinds nope").status == 2);
    CHECK(run_cli("bench model --lengths 1").status == 2);
    CHECK(run_cli("bench model --clock sundial").status == 2);
    const auto wall = run_cli("bench model --quick --reps 1 --clock wall --kinds favor");
    CHECK(wall.status == 0);
    CHECK(wall.out.find("wall-clock run") != std::string::npos);
    CHECK(r.out.find("process CPU time") != std::string::npos);
  }

  TEST_CASE("bench model --stream times one user's steps against history length") {
    const std::string dir = attnlab::testing::scratch_path("bench_model_stream");
    const auto r = run_cli("bench model --stream --quick --threads 1 --out " + dir);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    const std::string csv = read_text(dir + "/model_stream.csv");
    CHECK(csv.rfind("kind,t,stream step ms,recompute ms,speedup,state bytes", 0) == 0);
    int rows = 0;
    for (char c : csv) rows += c == '\n';
    CHECK(rows == 1 + 5 * 2);  // five default streaming kinds at the two quick lengths
    for (const char* kind :
         {"softmax-fused,8", "favor,16", "linear-elu,", "lisa-base,", "lisa-soft,"})
      CHECK(csv.find(kind) != std::string::npos);
    CHECK(run_cli("bench model --stream --kinds nope").status == 2);
    CHECK(run_cli("bench model --stream --window 0").status == 2);
    CHECK(run_cli("bench model --stream --lengths 4 --window 8").status == 2);
    CHECK(run_cli("bench model --stream --clock sundial").status == 2);
  }
}

}  // namespace
