// The main of a lesson built as its own executable (build/lesson_N): runs the lesson it is linked
// with. `--quick` uses the small sizes of the test suite.
#include <cstring>
#include <iostream>

#include "experiments/lessons/lesson.hpp"

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const auto& lessons = attnlab::lessons::registry();
  if (lessons.size() != 1) {
    std::cerr << "expected exactly one lesson in this executable\n";
    return 2;
  }
  try {
    std::cout << "Lesson " << lessons[0].number << ": " << lessons[0].title << "\n";
    return lessons[0].run(std::cout, quick) ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "lesson " << lessons[0].number << ": error: " << e.what() << "\n";
    return 1;
  }
}
