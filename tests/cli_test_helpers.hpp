// Running the attnlab CLI from a test as a user would (ATTNLAB_CLI_PATH is set by CMake), and
// reading what it wrote.
#pragma once

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace attnlab_test {

struct CliRun {
  int status;
  std::string out;  // stdout and stderr together
};

// Runs `<program> <args>`; status is the exit code (-1 if it did not exit normally).
inline CliRun run_program(const std::string& program, const std::string& args) {
  const std::string cmd = program + " " + args + " 2>&1";
  CliRun r{-1, ""};
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Runs `attnlab <args>`.
inline CliRun run_cli(const std::string& args) {
  return run_program(ATTNLAB_CLI_PATH, args);
}

// The whole file as a string (empty if it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace attnlab_test
