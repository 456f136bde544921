// Tests whose point is scale (float32 numerics at L = 65536, ...) rather than memory or thread
// safety are skipped in the sanitizer builds, where they take many minutes: the instrumented
// kernels run the same code paths in the other tests at small sizes, and CI's release step runs
// these tests in full. CTest reports them as skipped, not passed (the line printed here is its
// SKIP_REGULAR_EXPRESSION, tests/CMakeLists.txt). First statement of the test case:
//   ATTNLAB_SKIP_UNDER_SANITIZERS("quadratic in L: minutes when instrumented");
#pragma once

#include <iostream>

namespace attnlab_test {

#if defined(ATTNLAB_SANITIZED)
inline constexpr bool kSanitizedBuild = true;
#else
inline constexpr bool kSanitizedBuild = false;
#endif

}  // namespace attnlab_test

#define ATTNLAB_SKIP_UNDER_SANITIZERS(why)                                    \
  do {                                                                        \
    if (attnlab_test::kSanitizedBuild) {                                      \
      std::cout << "attnlab test skipped under a sanitizer: " << why << "\n"; \
      return;                                                                 \
    }                                                                         \
  } while (0)
