// libFuzzer target: .npz bytes -> parse_npz (what load_npz runs on a file's contents).
#include "core/npy.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  attnlab::fuzz::expect_clean_error([&] {
    const attnlab::NamedTensors entries =
        attnlab::parse_npz(attnlab::fuzz::as_string(data, size), "fuzz.npz");
    // A parsed archive must be writable and read back with the same entries.
    const attnlab::NamedTensors back =
        attnlab::parse_npz(attnlab::npz_bytes(entries), "roundtrip.npz");
    if (back.size() != entries.size())
      __builtin_trap();
  });
  return 0;
}
