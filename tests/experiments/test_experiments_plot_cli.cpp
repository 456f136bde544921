// `attnlab plot` as a user runs it: a CSV in, an SVG out; bad flags and data get one line and a
// non-zero exit.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "experiments/support/table.hpp"
#include "tests/cli_test_helpers.hpp"
#include "tests/scratch_path.hpp"

namespace {

using attnlab_test::CliRun;
using attnlab_test::read_text;
using attnlab_test::run_cli;

// A shadow-gradient log in long form (experiments/support/shadow_log.hpp): a loss row with an
// empty cosine, and per-layer and per-module rows, two steps, steps out of order.
std::string write_shadow_csv(const std::string& dir) {
  const std::string path = dir + "/shadow.csv";
  std::ofstream out(path);
  out << "step,epoch,batch,what,name,cosine,relative_error,approx_norm,exact_norm\r\n"
      << "20,1,20,loss,loss,,0.01,0.70,0.71\r\n"
      << "20,1,20,layer,block0,0.95,0.1,1,1\r\n"
      << "20,1,20,layer,block1,0.90,0.2,1,1\r\n"
      << "20,1,20,module,\"block0,attn\",0.97,0.1,1,1\r\n"
      << "10,1,10,loss,loss,,0.02,0.80,0.81\r\n"
      << "10,1,10,layer,block0,0.99,0.05,1,1\r\n"
      << "10,1,10,layer,block1,0.98,0.06,1,1\r\n"
      << "30,1,30,layer,block0,-,0.05,1,1\r\n"
      << "30,1,30,layer,block1,0.85,0.3,1,1\r\n";
  return path;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A failed run: non-zero exit, one line "attnlab plot: error: ..." containing `what`.
void check_one_line_error(const std::string& args, const std::string& what) {
  CAPTURE(args);
  const CliRun r = run_cli("plot " + args);
  CAPTURE(r.out);
  CHECK(r.status != 0);
  CHECK(r.out.rfind("attnlab plot: error: ", 0) == 0);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK(r.out.find(what) != std::string::npos);
}

}  // namespace

TEST_SUITE("experiments_plot_cli") {
  TEST_CASE("attnlab plot: the shadow log per layer - where and group - writes the SVG") {
    const std::string dir = attnlab::testing::scratch_path("plot_cli");
    attnlab::cli::make_directories(dir);
    const std::string csv = write_shadow_csv(dir);
    const std::string svg = dir + "/sub/layers.svg";  // its folder is made
    const CliRun r = run_cli("plot --csv " + csv +
                             " --where what=layer --group name --x step --y cosine --out " + svg);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("wrote " + svg + " (2 series, 6 rows)") != std::string::npos);
    const std::string text = read_text(svg);
    CHECK(count(text, "<g class=\"series\"") == 2);
    CHECK(text.find("<title>name=block0</title>") != std::string::npos);
    CHECK(text.find("<title>name=block1</title>") != std::string::npos);
    // block0 has no cosine at step 30: two points in one polyline; block1 three.
    CHECK(count(text, "<polyline") == 2);
    CHECK(text.find(">cosine against step (what=layer)<") != std::string::npos);
    // Two filters (all must match), a quoted cell, a log axis, labels and a title.
    const std::string module = dir + "/module.svg";
    const CliRun m = run_cli("plot --csv " + csv +
                             " --where what=module --where step=20 --group name --x step"
                             " --y relative_error --log-y --title 'one module' --y-label 'rel. err'"
                             " --out " +
                             module);
    CAPTURE(m.out);
    REQUIRE(m.status == 0);
    const std::string mt = read_text(module);
    CHECK(mt.find("<title>name=block0,attn</title>") != std::string::npos);
    CHECK(mt.find(">one module<") != std::string::npos);
    CHECK(mt.find(">rel. err<") != std::string::npos);
    CHECK(run_cli("plot --help").status == 0);
  }

  TEST_CASE("attnlab plot: bad flags and data are one-line errors") {
    const std::string dir = attnlab::testing::scratch_path("plot_cli_bad");
    attnlab::cli::make_directories(dir);
    const std::string csv = write_shadow_csv(dir);
    const std::string ok = "--csv " + csv + " --x step --y cosine";
    const std::string out = " --out " + dir + "/p.svg";
    check_one_line_error(ok + " --group nope" + out, "no column 'nope' in " + csv);
    check_one_line_error("--csv " + csv + " --x step --y cosinus" + out, "no column 'cosinus'");
    check_one_line_error(ok + " --where what=nothing" + out, "is left to plot after --where");
    check_one_line_error(ok + " --where what" + out, "--where: expected COL=VALUE, got 'what'");
    check_one_line_error("--csv " + csv + " --x name --y cosine" + out,
                         "column 'name' of " + csv + " has no numeric value");
    check_one_line_error("--csv " + dir + "/missing.csv --x step --y cosine" + out, "missing.csv");
    check_one_line_error(ok, "--out FILE.svg is required");
    check_one_line_error(ok + " --out " + dir + "/p.png", "expected a FILE.svg path");
    check_one_line_error("--x step --y cosine" + out, "--csv FILE is required");
    check_one_line_error(ok + " --x-base 3" + out, "--x-base: expected 2 or 10");
    // A log axis refuses what it cannot show, naming the column and the value.
    std::ofstream(dir + "/zero.csv") << "x,y\n1,0.5\n2,0\n";
    check_one_line_error("--csv " + dir + "/zero.csv --x x --y y --log-y" + out,
                         "cannot show the value 0 of column 'y'");
    std::ofstream(dir + "/open.csv") << "x,y\n1,\"0.5\n";
    check_one_line_error("--csv " + dir + "/open.csv --x x --y y" + out, "never closed");
    CHECK(run_cli("plot --frobnicate").status == 2);
  }
}
