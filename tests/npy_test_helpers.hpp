// Helpers shared by tests/core/test_core_npy.cpp and tests/core/test_core_npy_malformed.cpp:
// fixture paths, a scratch directory, exact tensor comparison and hand-built .npy / zip bytes.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/file_io.hpp"
#include "core/npy.hpp"
#include "core/tensor.hpp"
#include "tests/scratch_path.hpp"

#ifndef ATTNLAB_SOURCE_DIR
#error "ATTNLAB_SOURCE_DIR (the repository root) must be defined for the tests"
#endif

namespace attnlab::npy_test {

inline std::string fixture(const std::string& name) {
  return std::string(ATTNLAB_SOURCE_DIR) + "/tests/data/npy/" + name;
}

// Same dtype, shape and bytes (so NaNs and -0.0 must match too).
inline bool identical(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

// A fresh directory under the system temp dir, removed with its contents at scope exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    static int counter = 0;
    path_ = attnlab::testing::scratch_path(tag + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }
  std::vector<std::string> list() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_))
      names.push_back(e.path().filename().string());
    return names;
  }

 private:
  std::filesystem::path path_;
};

// .npy bytes with an arbitrary header text (no padding or validation): the malformed-input tests
// and the header-syntax tests build their files with it.
inline std::string raw_npy(const std::string& header, const std::string& data, int major = 1) {
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  const int len_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < len_bytes; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

template <class T>
std::string raw_data(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Plain bitwise CRC-32, the reference for patching archives in tests.
inline uint32_t crc32_reference(const std::string& s) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xffffffffu;
}

inline uint64_t get_le(const std::string& s, std::size_t at, int nbytes) {
  uint64_t v = 0;
  for (int i = nbytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}
inline void set_le(std::string& s, std::size_t at, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// Offset of the end-of-central-directory record of a comment-less archive.
inline std::size_t eocd_offset(const std::string& zip) {
  return zip.size() - 22;
}

// Deterministic pseudo-random numbers (splitmix64) for the fuzz loops.
inline uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace attnlab::npy_test
