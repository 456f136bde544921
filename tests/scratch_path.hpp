// Scratch paths for tests: unique to the test process, whatever its process id.
//
// Process ids repeat: in a container or a pid namespace every test run may be pid 2, so a path
// named after the pid collides with the files a previous run left (a CI pass once failed on a
// leftover directory). Every scratch path therefore lives in one directory made with mkdtemp,
// which the process that made it removes, with its contents, when it exits.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace attnlab::testing {

// The directory all of this process's scratch paths live in (made on first use).
inline const std::string& scratch_root() {
  static const pid_t owner = ::getpid();
  static const std::string root = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "attnlab_test_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("scratch_root: mkdtemp failed for " + pattern);
    return pattern;
  }();
  // Registered after `root` is made, so it runs before `root` is destroyed. Forked children
  // (fault tests, CLI helpers) run atexit handlers too: only the process that made it cleans.
  static const bool cleanup_registered = std::atexit([] {
                                           std::error_code ignored;
                                           if (::getpid() == owner)
                                             std::filesystem::remove_all(root, ignored);
                                         }) == 0;
  (void)cleanup_registered;
  return root;
}

// A path (not created) named `name` inside this process's scratch directory.
inline std::string scratch_path(const std::string& name) {
  return scratch_root() + "/" + name;
}

}  // namespace attnlab::testing
