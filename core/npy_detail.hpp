// Internal to core/npy*.cpp and core/npz.cpp (not part of the public API). The .npy codec reads
// through a ByteSource, so load_npy / load_npz copy array data once, straight from the file into
// the tensor (no whole-file buffer: half the memory traffic and half the peak memory), while
// parse_npy / parse_npz run the same code on a buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace attnlab::npy_detail {

// Random access to the bytes of a buffer or a file. Every read must lie inside size(); a file
// that shrinks while being read gives an IOError, never a partial result.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  virtual void read(uint64_t offset, std::size_t n, void* dst) const = 0;
  std::string read_string(uint64_t offset, std::size_t n) const;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const char* data, std::size_t size) : data_(data), size_(size) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, std::size_t n, void* dst) const override;

 private:
  const char* data_;
  std::size_t size_;
};

// pread() on an open file; `op` names the caller in errors ("load_npy: cannot open ...").
class FileSource : public ByteSource {
 public:
  FileSource(const std::string& path, const char* op);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, std::size_t n, void* dst) const override;

 private:
  std::string path_;
  const char* op_;
  int fd_ = -1;  // -1: not a regular file, served from buffer_
  std::string buffer_;
  uint64_t size_ = 0;
};

// CRC-32 as zip uses it; crc32_update(0, ...) starts a new checksum, and feeding the result back
// continues it over more bytes.
uint32_t crc32_update(uint32_t crc, const void* data, std::size_t n);

inline constexpr const char* kSupportedDescrs =
    "supported: '<f4' (float32), '<f8' (float64), '<i8' (int64), also big-endian '>f4', '>f8', "
    "'>i8'";

// [[noreturn]] helper: throws IOError("<op>: <source>: <problem>").
[[noreturn]] void fail(const char* op, const std::string& source, const std::string& problem);
// At most 160 characters of p, non-printable bytes escaped, for messages.
std::string printable(const char* p, std::size_t n);

// The parsed header dict (npy_header.cpp).
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  std::string shape_text;  // as written, for messages
};
// Parses the header text (the Python dict literal). allow_long_suffix accepts Python 2's "3L".
NpyHeader parse_npy_header(const char* text,
                           std::size_t size,
                           bool allow_long_suffix,
                           const char* op,
                           const std::string& source);

// Reads the .npy stored in [base, base + size) of src. When crc is not null it receives the
// CRC-32 of those bytes (an .npz entry's checksum), computed on the way.
Tensor read_npy(const ByteSource& src,
                uint64_t base,
                uint64_t size,
                const char* op,
                const std::string& source,
                uint32_t* crc);

// Appends the .npy encoding of t (exactly what np.save writes for the same array) to out.
void append_npy(std::string& out, const Tensor& t, const char* op);

}  // namespace attnlab::npy_detail
