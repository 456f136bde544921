// A progress bar on stderr for long studies, drawn only when stderr is a terminal (so logs, pipes
// and the test suite see nothing). Usage: Progress bar(total, "approx"); ... bar.step(); ...
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace attnlab::cli {

class Progress {
 public:
  Progress(int64_t total, std::string label);
  ~Progress();  // finishes the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Advances by `n` units; `note` (e.g. the current configuration) is shown after the bar.
  void step(int64_t n = 1, const std::string& note = "");
  bool enabled() const { return enabled_; }
  // Erases the bar (a transient bar, e.g. one per training epoch): the destructor then adds no
  // line.
  void clear();

 private:
  void draw(const std::string& note);
  int64_t total_, done_ = 0;
  std::string label_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace attnlab::cli
