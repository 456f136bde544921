// `attnlab lesson N`: runs one lesson of the teaching tour (README, "Tour").
#include "experiments/lessons/lesson.hpp"

#include <algorithm>
#include <iostream>
#include <limits>
#include <optional>
#include <string>

#include "experiments/support/cli.hpp"

namespace attnlab {
namespace {

int lesson_number(const std::string& text) {
  const std::optional<int64_t> n = cli::parse_integer(text);
  if (!n || *n < std::numeric_limits<int>::min() || *n > std::numeric_limits<int>::max())
    throw cli::UsageError("'" + text + "' is not a lesson number (" + cli::program_name() +
                          " lesson --list)");
  return static_cast<int>(*n);
}

int run_lesson(int argc, char** argv) {
  cli::Parser p("lesson", "N [--quick]   (--list for the tour)");
  // Text, not int: program_options would name a bad N "--number", a flag nobody typed.
  p.options().add_options()("number", cli::po::value<std::string>(), "the lesson to run")(
      "quick", "small sizes (the test suite)")("list", "list the lessons");
  p.positional("number", 1);
  p.unused_common("seed", "each lesson has its own");
  p.unused_common("dtype", "each lesson has its own");
  p.unused_common("out", "a lesson prints its checks");
  if (!p.parse(argc, argv))
    return 0;
  auto& lessons = lessons::registry();
  if (p.has("list") || !p.has("number")) {
    std::sort(lessons.begin(), lessons.end(), [](const auto& a, const auto& b) {
      return a.number < b.number;
    });
    for (const auto& l : lessons) std::cout << "  " << l.number << "  " << l.title << "\n";
    return p.has("list") ? 0 : 2;
  }
  const int n = lesson_number(p.get<std::string>("number"));
  for (const auto& l : lessons) {
    if (l.number != n)
      continue;
    std::cout << "Lesson " << l.number << ": " << l.title << "\n";
    const bool ok = l.run(std::cout, p.has("quick"));
    std::cout << "\nlesson " << n << (ok ? ": every check holds\n" : ": a check FAILED\n");
    return ok ? 0 : 1;
  }
  throw cli::UsageError("no lesson " + std::to_string(n) + " (" + cli::program_name() +
                        " lesson --list)");
}

const cli::Register lesson_command("lesson",
                                   "the teaching tour: attnlab lesson 0 .. 6",
                                   run_lesson);

}  // namespace
}  // namespace attnlab
