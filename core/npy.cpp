// The .npy format (numpy/lib/format.py): the magic "\x93NUMPY", a major and a minor version byte,
// a little-endian header length (uint16 in version 1.0, uint32 in 2.0 and 3.0), the header (a
// Python dict literal, parsed in npy_header.cpp) padded with spaces and a final '\n' so that the
// data starts 64-byte aligned, then the raw elements. Every size read from the input is checked
// against the input's size before anything is allocated or read, so malformed files end in an
// IOError and never in a crash, an over-read or a huge allocation.
#include "core/npy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "core/file_io.hpp"
#include "core/npy_detail.hpp"

namespace attnlab {
namespace npy_detail {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
constexpr bool kHostLittle = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
// numpy itself refuses headers above 10000 bytes by default (max_header_size); this looser bound
// only keeps a corrupt length field from allocating gigabytes.
constexpr uint64_t kMaxHeaderLen = 1 << 20;

// ---- byte sources -------------------------------------------------------------------------------

std::string ByteSource::read_string(uint64_t offset, std::size_t n) const {
  std::string s(n, '\0');
  if (n)
    read(offset, n, &s[0]);
  return s;
}

void MemorySource::read(uint64_t offset, std::size_t n, void* dst) const {
  // Callers check ranges first; this guards the invariant, it is not the user-facing check.
  ATTNLAB_CHECK(offset <= size_ && n <= size_ - offset,
                IOError,
                "npy: internal error: read of ",
                n,
                " bytes at offset ",
                offset,
                " of a ",
                size_,
                "-byte buffer");
  if (n)
    std::memcpy(dst, data_ + offset, n);
}

std::string npy_errno_text(int err) {
  return std::generic_category().message(err);
}

FileSource::FileSource(const std::string& path, const char* op) : path_(path), op_(op) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const int err = errno;
  ATTNLAB_CHECK(fd_ >= 0, IOError, op, ": cannot open '", path, "': ", npy_errno_text(err));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || S_ISDIR(st.st_mode)) {
    const int stat_err = S_ISDIR(st.st_mode) ? EISDIR : errno;
    ::close(fd_);
    throw IOError(detail::concat(op, ": cannot read '", path, "': ", npy_errno_text(stat_err)));
  }
  if (!S_ISREG(st.st_mode)) {
    // Pipes and character devices cannot pread(): load them whole (read_file closes its own fd).
    ::close(fd_);
    fd_ = -1;
    buffer_ = read_file(path);
    size_ = buffer_.size();
    return;
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

FileSource::~FileSource() {
  if (fd_ >= 0)
    ::close(fd_);
}

void FileSource::read(uint64_t offset, std::size_t n, void* dst) const {
  if (fd_ < 0) {
    MemorySource(buffer_.data(), buffer_.size()).read(offset, n, dst);
    return;
  }
  auto* out = static_cast<char*>(dst);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      const int err = errno;
      if (err == EINTR)
        continue;
      throw IOError(detail::concat(op_, ": cannot read '", path_, "': ", npy_errno_text(err)));
    }
    if (got == 0) {
      throw IOError(detail::concat(op_,
                                   ": ",
                                   path_,
                                   ": the file shrank while being read (",
                                   offset + done,
                                   " of ",
                                   size_,
                                   " bytes)"));
    }
    done += static_cast<std::size_t>(got);
  }
}

// ---- reading ------------------------------------------------------------------------------------

uint64_t read_le(const char* p, int nbytes) {
  uint64_t v = 0;
  for (int i = nbytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Fortran (column-major) data to C order: the element at C index (i0, ..., i{n-1}) sits at
// sum(i_k * f_k) with f_0 = 1, f_k = f_{k-1} * d_{k-1}. Walks the output in order; memcpy loads
// (one mov each once compiled) keep it free of alignment assumptions about the source.
template <class T>
void fortran_to_c(const char* src, T* dst, const Shape& shape) {
  const int rank = shape.rank();
  std::vector<int64_t> fstride(rank), index(rank, 0);
  int64_t s = 1;
  for (int k = 0; k < rank; ++k) {
    fstride[k] = s;
    s *= shape[k];
  }
  const int64_t inner = shape[rank - 1], inner_stride = fstride[rank - 1];
  const int64_t outer = shape.numel() / inner;
  int64_t base = 0;  // source offset of (index[0..rank-2], 0)
  for (int64_t o = 0; o < outer; ++o) {
    const char* p = src + base * sizeof(T);
    for (int64_t j = 0; j < inner; ++j)
      std::memcpy(dst + j, p + j * inner_stride * sizeof(T), sizeof(T));
    dst += inner;
    for (int k = rank - 2; k >= 0; --k) {  // odometer over the outer axes
      base += fstride[k];
      if (++index[k] < shape[k])
        break;
      base -= fstride[k] * shape[k];
      index[k] = 0;
    }
  }
}

void byte_swap(void* data, int64_t n, std::size_t elem) {
  if (elem == 4) {
    auto* p = static_cast<uint32_t*>(data);
    for (int64_t i = 0; i < n; ++i) p[i] = __builtin_bswap32(p[i]);
  } else {
    auto* p = static_cast<uint64_t*>(data);
    for (int64_t i = 0; i < n; ++i) p[i] = __builtin_bswap64(p[i]);
  }
}

Tensor read_npy(const ByteSource& src,
                uint64_t base,
                uint64_t size,
                const char* op,
                const std::string& source,
                uint32_t* crc) {
  if (size == 0)
    fail(op, source, "empty file (not a .npy file)");
  char pre[12];
  const std::size_t pre_n = static_cast<std::size_t>(std::min<uint64_t>(size, sizeof(pre)));
  src.read(base, pre_n, pre);
  if (pre_n < kMagicLen + 2 || std::memcmp(pre, kMagic, kMagicLen) != 0) {
    fail(op,
         source,
         "not a .npy file: bad magic \"" + printable(pre, std::min<std::size_t>(pre_n, 8)) +
             "\" (expected \"\\x93NUMPY\")");
  }
  const int major = static_cast<unsigned char>(pre[6]);
  const int minor = static_cast<unsigned char>(pre[7]);
  if (major < 1 || major > 3 || minor != 0) {
    fail(op,
         source,
         detail::concat(
             "unsupported .npy format version ", major, ".", minor, " (supported: 1.0, 2.0, 3.0)"));
  }
  const int len_bytes = major == 1 ? 2 : 4;
  const std::size_t prefix = kMagicLen + 2 + len_bytes;
  if (size < prefix)
    fail(op, source, "truncated in the header length field");
  const uint64_t header_len = read_le(pre + kMagicLen + 2, len_bytes);
  if (header_len > size - prefix) {
    fail(op,
         source,
         detail::concat("header length ",
                        header_len,
                        " goes beyond the end of the data (",
                        size - prefix,
                        " bytes after the header length field)"));
  }
  if (header_len > kMaxHeaderLen) {
    fail(op,
         source,
         detail::concat("header length ", header_len, " above the limit of ", kMaxHeaderLen));
  }
  const std::string text = src.read_string(base + prefix, header_len);
  uint32_t c = 0;
  if (crc)
    c = crc32_update(crc32_update(0, pre, prefix), text.data(), text.size());
  const NpyHeader h = parse_npy_header(text.data(), text.size(), major <= 2, op, source);

  // descr: a byte-order mark ('<' little, '>' big, '=' native, '|' not applicable: numpy reads
  // '|f4' as native too) and one of the three supported kinds.
  std::string kind = h.descr;
  char order = '=';
  if (!kind.empty() && std::strchr("<>=|", kind[0]) != nullptr) {
    order = kind[0];
    kind.erase(0, 1);
  }
  DType dtype;
  if (kind == "f4") {
    dtype = kFloat32;
  } else if (kind == "f8") {
    dtype = kFloat64;
  } else if (kind == "i8") {
    dtype = kInt64;
  } else {
    fail(op,
         source,
         "unsupported descr '" + printable(h.descr.data(), h.descr.size()) + "'; " +
             kSupportedDescrs);
  }
  const bool swap = (order == '<' && !kHostLittle) || (order == '>' && kHostLittle);
  const std::size_t elem = dtype_size(dtype);

  if (static_cast<int>(h.shape.size()) > Shape::kMaxRank) {
    fail(op,
         source,
         detail::concat("shape ",
                        h.shape_text,
                        " has rank ",
                        h.shape.size(),
                        ", above attnlab's maximum of ",
                        Shape::kMaxRank));
  }
  // Size in bytes, checked for overflow. Zero dimensions are skipped in the product so that
  // e.g. (0, 2**62, 16) is refused too: Shape::numel would overflow on it.
  uint64_t nbytes = elem;
  bool has_zero = false;
  for (int64_t d : h.shape) {
    if (d < 0)
      fail(op, source, detail::concat("negative dimension ", d, " in shape ", h.shape_text));
    if (d == 0) {
      has_zero = true;
    } else if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(d), &nbytes) ||
               nbytes > static_cast<uint64_t>(INT64_MAX)) {
      fail(op,
           source,
           detail::concat("shape ",
                          h.shape_text,
                          " overflows: its size in bytes (",
                          elem,
                          " per element) does not fit in 63 bits"));
    }
  }
  if (has_zero)
    nbytes = 0;
  const uint64_t found = size - prefix - header_len;
  if (found < nbytes) {
    fail(op,
         source,
         detail::concat("data truncated: expected ",
                        nbytes,
                        " bytes, found ",
                        found,
                        " (shape ",
                        h.shape_text,
                        ", descr '",
                        h.descr,
                        "')"));
  }
  if (found > nbytes) {
    fail(op,
         source,
         detail::concat("trailing data: expected ",
                        nbytes,
                        " bytes, found ",
                        found,
                        " (",
                        found - nbytes,
                        " bytes after the array)"));
  }

  // The one copy: straight from the source into the tensor (Fortran order goes through a
  // scratch buffer for the transposition).
  const Shape shape(h.shape);
  Tensor t = Tensor::empty(shape, dtype);
  const uint64_t data_at = base + prefix + header_len;
  if (nbytes > 0 && h.fortran_order && shape.rank() >= 2) {
    std::unique_ptr<char[]> scratch(new char[nbytes]);
    src.read(data_at, nbytes, scratch.get());
    if (crc)
      c = crc32_update(c, scratch.get(), nbytes);
    if (elem == 4) {
      fortran_to_c(scratch.get(), static_cast<uint32_t*>(t.raw_data()), shape);
    } else {
      fortran_to_c(scratch.get(), static_cast<uint64_t*>(t.raw_data()), shape);
    }
  } else if (nbytes > 0) {
    src.read(data_at, nbytes, t.raw_data());
    if (crc)
      c = crc32_update(c, t.raw_data(), nbytes);
  }
  if (swap)
    byte_swap(t.raw_data(), shape.numel(), elem);
  if (crc)
    *crc = c;
  return t;
}

// ---- writing ------------------------------------------------------------------------------------

void append_npy(std::string& out, const Tensor& t, const char* op) {
  ATTNLAB_CHECK(t.defined(), ValueError, op, ": undefined tensor");
  const char* kind = t.dtype() == kFloat32 ? "f4" : t.dtype() == kFloat64 ? "f8" : "i8";
  std::string shape = "(";
  for (int k = 0; k < t.dim(); ++k) shape += detail::concat(k ? ", " : "", t.shape()[k]);
  shape += t.dim() == 1 ? ",)" : ")";
  std::string header = detail::concat("{'descr': '",
                                      kHostLittle ? '<' : '>',
                                      kind,
                                      "', 'fortran_order': False, 'shape': ",
                                      shape,
                                      ", }");
  // Like numpy >= 1.23: spare spaces so that tools can grow axis 0 in place; together with the
  // alignment below this makes the bytes identical to np.save's.
  if (t.dim() > 0)
    header.append(21 - std::to_string(t.shape()[0]).size(), ' ');
  const std::size_t hlen = header.size() + 1;  // + '\n'
  int len_bytes = 2;
  std::size_t pad = 64 - (kMagicLen + 2 + len_bytes + hlen) % 64;
  if (hlen + pad > 0xffff) {  // needs version 2.0 and its 32-bit header length
    len_bytes = 4;
    pad = 64 - (kMagicLen + 2 + len_bytes + hlen) % 64;
  }
  const std::size_t total_header = hlen + pad;
  out.reserve(out.size() + kMagicLen + 2 + len_bytes + total_header + t.nbytes());
  out.append(kMagic, kMagicLen);
  out += static_cast<char>(len_bytes == 2 ? 1 : 2);
  out += '\0';
  for (int i = 0; i < len_bytes; ++i) out += static_cast<char>((total_header >> (8 * i)) & 0xff);
  out += header;
  out.append(pad, ' ');
  out += '\n';
  if (t.nbytes())
    out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
}

}  // namespace npy_detail

std::string npy_bytes(const Tensor& t) {
  std::string out;
  npy_detail::append_npy(out, t, "npy_bytes");
  return out;
}

Tensor parse_npy(const std::string& bytes, const std::string& source) {
  const npy_detail::MemorySource src(bytes.data(), bytes.size());
  return npy_detail::read_npy(src, 0, src.size(), "parse_npy", source, nullptr);
}

void save_npy(const std::string& path, const Tensor& t) {
  std::string out;
  npy_detail::append_npy(out, t, "save_npy");
  write_file_atomic(path, out);
}

Tensor load_npy(const std::string& path) {
  const npy_detail::FileSource src(path, "load_npy");
  return npy_detail::read_npy(src, 0, src.size(), "load_npy", path, nullptr);
}

}  // namespace attnlab
