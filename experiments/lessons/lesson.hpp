// The teaching tour: short lessons that print what they teach and end by checking their own
// claim (a lesson that stops being true fails the test suite). Each lesson is one file in this
// folder; it registers itself and runs as `attnlab lesson N` or as its own executable
// (build/lesson_N).
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace attnlab::lessons {

struct Lesson {
  int number;
  std::string title;
  // Prints the lesson to `out`; `quick` uses smaller sizes (the test suite). Returns true when the
  // lesson's closing self-check holds.
  std::function<bool(std::ostream& out, bool quick)> run;
};

std::vector<Lesson>& registry();
struct Register {
  Register(int number, std::string title, std::function<bool(std::ostream&, bool)> run);
};

// Prints a section heading.
void heading(std::ostream& out, const std::string& text);
// Prints "check: <claim> ... ok|FAILED" and returns ok.
bool check(std::ostream& out, const std::string& claim, bool ok);

}  // namespace attnlab::lessons
