// Every lesson of the teaching tour runs (small sizes) as its own executable and its closing
// self-check holds; `attnlab lesson N` serves the same lessons.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::pair<int, std::string> run_command(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::vector<int> lesson_numbers() {
  const auto [status, out] = run_command(std::string(ATTNLAB_CLI_PATH) + " lesson --list");
  REQUIRE(status == 0);
  std::vector<int> numbers;
  std::istringstream in(out);
  int n;
  std::string rest;
  while (in >> n && std::getline(in, rest)) numbers.push_back(n);
  return numbers;
}

}  // namespace

TEST_SUITE("experiments.lessons") {
  // Each lesson runs once here, as its own executable (the slow ones train a model: running them
  // twice doubled this file's share of the sanitizer CI step); the next test checks that the CLI
  // serves the same tour.
  TEST_CASE("every lesson runs as its own executable and its self-check holds") {
    const std::vector<int> numbers = lesson_numbers();
    CHECK(numbers.size() >= 2);
    const std::string dir =
        std::string(ATTNLAB_CLI_PATH).substr(0, std::string(ATTNLAB_CLI_PATH).rfind('/'));
    for (int n : numbers) {
      CAPTURE(n);
      const auto [status, out] = run_command(dir + "/lesson_" + std::to_string(n) + " --quick");
      CHECK_MESSAGE(status == 0, out);
      CHECK(out.find("check: ") != std::string::npos);
      CHECK(out.find("FAILED") == std::string::npos);
    }
  }

  TEST_CASE("attnlab lesson N runs the lesson and reports its self-check") {
    for (int n : {1, 2}) {  // the two fastest; every lesson ran in the test above
      CAPTURE(n);
      const auto [status, out] =
          run_command(std::string(ATTNLAB_CLI_PATH) + " lesson " + std::to_string(n) + " --quick");
      CHECK_MESSAGE(status == 0, out);
      CHECK(out.find("lesson " + std::to_string(n) + ": every check holds") != std::string::npos);
      CHECK(out.find("FAILED") == std::string::npos);
    }
    CHECK(run_command(std::string(ATTNLAB_CLI_PATH) + " lesson 999").first != 0);
  }
}
