// libFuzzer target: .npy bytes -> parse_npy (what load_npy runs on a file's contents).
#include "core/npy.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  attnlab::fuzz::expect_clean_error([&] {
    const attnlab::Tensor t = attnlab::parse_npy(attnlab::fuzz::as_string(data, size), "fuzz.npy");
    // A parsed tensor must be usable: write it back and read it again.
    const attnlab::Tensor back = attnlab::parse_npy(attnlab::npy_bytes(t), "roundtrip.npy");
    if (back.shape() != t.shape() || back.dtype() != t.dtype())
      __builtin_trap();
  });
  return 0;
}
