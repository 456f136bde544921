#include "experiments/lessons/lesson.hpp"

#include <ostream>

namespace attnlab::lessons {

std::vector<Lesson>& registry() {
  static std::vector<Lesson> lessons;
  return lessons;
}

Register::Register(int number, std::string title, std::function<bool(std::ostream&, bool)> run) {
  registry().push_back({number, std::move(title), std::move(run)});
}

void heading(std::ostream& out, const std::string& text) {
  out << "\n== " << text << " " << std::string(text.size() < 90 ? 90 - text.size() : 0, '=')
      << "\n\n";
}

bool check(std::ostream& out, const std::string& claim, bool ok) {
  out << "check: " << claim << " ... " << (ok ? "ok" : "FAILED") << "\n";
  return ok;
}

}  // namespace attnlab::lessons
