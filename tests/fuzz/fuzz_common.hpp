// Shared by the libFuzzer targets: an attnlab::Error (or a cli::UsageError) is the parser's
// normal answer to bad input; anything else escaping a target (another exception, a signal, a
// sanitizer report, a timeout, running out of memory) is a crash for libFuzzer to report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace attnlab::fuzz {

inline std::string as_string(const uint8_t* data, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Runs f; swallows attnlab::Error (the documented outcome for malformed input).
template <class F>
void expect_clean_error(F&& f) {
  try {
    f();
  } catch (const ::attnlab::Error&) {
  }
}

}  // namespace attnlab::fuzz
