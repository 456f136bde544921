// .npz archives: a zip file of "<name>.npy" entries, as np.savez writes (stored, not compressed).
// Reading trusts only the end-of-central-directory record and the central directory for sizes:
// Python's zipfile may stream entries with data descriptors (flag bit 3), leaving zeros in the
// local headers, and np.savez writes every entry with force_zip64, so ZIP64 extra fields are
// expected everywhere. Every offset and size read from the file is checked against the file's
// size before use, and each entry's CRC-32 is verified. Only the end records, the central
// directory and the small headers are read into buffers; array data goes from the file straight
// into its tensor (npy.cpp), with the CRC computed on the way.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/file_io.hpp"
#include "core/npy.hpp"
#include "core/npy_detail.hpp"

namespace attnlab {
namespace npy_detail {

// CRC-32 (IEEE 802.3, reflected, as zip uses), slicing-by-8: several times faster than the
// bytewise table, so verifying an archive costs little next to reading it.
struct Crc32Tables {
  uint32_t t[8][256];
  Crc32Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

uint32_t crc32_update(uint32_t crc, const void* data, std::size_t n) {
  static const Crc32Tables tables;
  const auto& t = tables.t;
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    const uint32_t lo =
        c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
        t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
  }
  for (; n > 0; --n, ++p) c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
  return ~c;
}

}  // namespace npy_detail

namespace {

using npy_detail::ByteSource;
using npy_detail::fail;

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kMax16 = 0xffff;
constexpr uint64_t kMax32 = 0xffffffff;

// Little-endian field access; callers check bounds first.
uint64_t le(const char* p, int nbytes) {
  uint64_t v = 0;
  for (int i = nbytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

struct Entry {
  std::string name;
  uint16_t flags, method;
  uint32_t crc;
  uint64_t csize, usize, local_offset;
};

// Reads the central directory into entries (sizes and offsets already resolved from ZIP64
// extras), checking that every record lies inside [cd_offset, cd_offset + cd_size).
std::vector<Entry> read_central_directory(const ByteSource& src,
                                          const char* op,
                                          const std::string& source) {
  const uint64_t n = src.size();
  if (n == 0)
    fail(op, source, "empty file (not a zip archive)");
  if (n < 22)
    fail(op, source, detail::concat("not a zip archive (only ", n, " bytes)"));
  // The end record is 22 bytes plus a comment of at most 65535 bytes, at the very end; the
  // 20 bytes before it may hold the ZIP64 locator.
  const uint64_t tail_len = std::min<uint64_t>(n, 22 + kMax16 + 20);
  const uint64_t tail_at = n - tail_len;
  const std::string tail = src.read_string(tail_at, tail_len);
  const char* t = tail.data();
  std::size_t eocd = tail_len;  // offset in tail
  const std::size_t lowest = tail_len - 22 > kMax16 ? tail_len - 22 - kMax16 : 0;
  for (std::size_t pos = tail_len - 22 + 1; pos-- > lowest;) {
    if (le(t + pos, 4) == kEndSig && pos + 22 + le(t + pos + 20, 2) == tail_len) {
      eocd = pos;
      break;
    }
  }
  if (eocd == tail_len) {
    fail(op,
         source,
         "not a zip archive (no end-of-central-directory record; a truncated or non-.npz file)");
  }
  uint64_t disk = le(t + eocd + 4, 2), cd_disk = le(t + eocd + 6, 2);
  uint64_t entries_here = le(t + eocd + 8, 2), entries = le(t + eocd + 10, 2);
  uint64_t cd_size = le(t + eocd + 12, 4), cd_offset = le(t + eocd + 16, 4);
  uint64_t cd_limit = tail_at + eocd;  // the central directory ends before the end records

  if (eocd >= 20 && le(t + eocd - 20, 4) == kZip64LocatorSig) {
    const uint64_t locator = tail_at + eocd - 20;
    const uint64_t z64 = le(t + eocd - 12, 8);
    if (z64 > locator || locator - z64 < 56)
      fail(op, source, "bad ZIP64 end-of-central-directory record (truncated or corrupt)");
    const std::string rec = src.read_string(z64, 56);
    const char* r = rec.data();
    if (le(r, 4) != kZip64EndSig)
      fail(op, source, "bad ZIP64 end-of-central-directory record (truncated or corrupt)");
    disk = le(r + 16, 4);
    cd_disk = le(r + 20, 4);
    entries_here = le(r + 24, 8);
    entries = le(r + 32, 8);
    cd_size = le(r + 40, 8);
    cd_offset = le(r + 48, 8);
    cd_limit = z64;
  }
  if (disk != 0 || cd_disk != 0 || entries_here != entries)
    fail(op, source, "multi-disk zip archives are not supported");
  if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) {
    fail(op,
         source,
         detail::concat("central directory truncated: offset ",
                        cd_offset,
                        " + size ",
                        cd_size,
                        " goes beyond the ",
                        cd_limit,
                        " bytes before the end record"));
  }
  if (entries > cd_size / 46) {  // 46 bytes is the smallest central record; bounds the reserve
    fail(op,
         source,
         detail::concat("central directory truncated: ",
                        entries,
                        " entries cannot fit in ",
                        cd_size,
                        " bytes"));
  }

  const std::string cd = src.read_string(cd_offset, cd_size);
  const char* d = cd.data();
  std::vector<Entry> out;
  out.reserve(entries);
  std::size_t p = 0;
  for (uint64_t i = 0; i < entries; ++i) {
    if (cd.size() - p < 46 || le(d + p, 4) != kCentralSig) {
      fail(op,
           source,
           detail::concat("central directory truncated or corrupt at entry ", i, " of ", entries));
    }
    Entry e;
    e.flags = static_cast<uint16_t>(le(d + p + 8, 2));
    e.method = static_cast<uint16_t>(le(d + p + 10, 2));
    e.crc = static_cast<uint32_t>(le(d + p + 16, 4));
    e.csize = le(d + p + 20, 4);
    e.usize = le(d + p + 24, 4);
    const std::size_t name_len = le(d + p + 28, 2), extra_len = le(d + p + 30, 2);
    const std::size_t comment_len = le(d + p + 32, 2);
    const uint64_t disk_start = le(d + p + 34, 2);
    e.local_offset = le(d + p + 42, 4);
    if (cd.size() - p - 46 < name_len + extra_len + comment_len)
      fail(op, source, detail::concat("central directory truncated in entry ", i, " of ", entries));
    e.name.assign(d + p + 46, name_len);
    // ZIP64 extra (id 1): 8-byte values for exactly those fields saturated at 0xffffffff, in
    // the order uncompressed size, compressed size, local header offset.
    const char* x = d + p + 46 + name_len;
    const char* x_end = x + extra_len;
    while (x_end - x >= 4) {
      const std::size_t id = le(x, 2), len = le(x + 2, 2);
      if (static_cast<std::size_t>(x_end - x - 4) < len)
        fail(op, source, "corrupt extra field in entry '" + e.name + "'");
      if (id == 1) {
        const char* v = x + 4;
        std::size_t left = len;
        for (uint64_t* field : {&e.usize, &e.csize, &e.local_offset}) {
          if (*field != kMax32)
            continue;
          if (left < 8)
            fail(op, source, "ZIP64 extra field too short in entry '" + e.name + "'");
          *field = le(v, 8);
          v += 8;
          left -= 8;
        }
      }
      x += 4 + len;
    }
    if (disk_start != 0 && disk_start != kMax16)
      fail(op, source, "multi-disk zip archives are not supported");
    out.push_back(std::move(e));
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

// CRC-32 of [offset, offset + n) of src, read in 1 MiB chunks.
uint32_t crc_of_range(const ByteSource& src, uint64_t offset, uint64_t n) {
  const std::size_t chunk = 1 << 20;
  std::unique_ptr<char[]> buf(new char[std::min<uint64_t>(n, chunk) + 1]);
  uint32_t crc = 0;
  for (uint64_t done = 0; done < n;) {
    const std::size_t len = static_cast<std::size_t>(std::min<uint64_t>(n - done, chunk));
    src.read(offset + done, len, buf.get());
    crc = npy_detail::crc32_update(crc, buf.get(), len);
    done += len;
  }
  return crc;
}

[[noreturn]] void crc_mismatch(const char* op,
                               const std::string& source,
                               const std::string& entry,
                               uint32_t recorded,
                               uint32_t computed) {
  fail(op,
       source,
       detail::concat(entry,
                      ": CRC-32 mismatch (recorded ",
                      std::hex,
                      recorded,
                      ", computed ",
                      computed,
                      "): the archive is corrupt"));
}

NamedTensors read_npz(const ByteSource& src, const char* op, const std::string& source) {
  const uint64_t n = src.size();
  const std::vector<Entry> entries = read_central_directory(src, op, source);
  NamedTensors result;
  result.reserve(entries.size());
  std::set<std::string> seen;
  for (const Entry& e : entries) {
    const std::string shown = "entry '" + e.name + "'";
    if (e.flags & 1)
      fail(op, source, shown + " is encrypted");
    if (e.method == 8) {
      fail(op,
           source,
           shown +
               " is compressed (deflate, as np.savez_compressed writes); attnlab reads "
               "np.savez archives, whose entries are stored uncompressed");
    }
    if (e.method != 0)
      fail(op, source, detail::concat(shown, " uses unsupported compression method ", e.method));
    if (e.csize != e.usize) {
      fail(op,
           source,
           detail::concat(
               shown, " is stored but its sizes differ (", e.csize, " vs ", e.usize, ")"));
    }
    const std::string suffix = ".npy";
    if (e.name.size() <= suffix.size() ||
        e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      fail(op, source, shown + " is not a '<name>.npy' array");
    std::string name = e.name.substr(0, e.name.size() - suffix.size());
    if (!seen.insert(name).second)
      fail(op, source, "duplicate entry '" + name + "'");

    // The local header only tells where the data starts (its name and extra lengths may differ
    // from the central ones; its sizes may be zeros).
    const uint64_t lo = e.local_offset;
    if (lo > n || n - lo < 30)
      fail(op, source, shown + ": bad local header offset (truncated or corrupt archive)");
    const std::string local = src.read_string(lo, 30);
    if (le(local.data(), 4) != kLocalSig)
      fail(op, source, shown + ": bad local header signature (corrupt archive)");
    const std::size_t lname = le(local.data() + 26, 2), lextra = le(local.data() + 28, 2);
    if (n - lo - 30 < lname + lextra)
      fail(op, source, shown + ": local header truncated");
    if (src.read_string(lo + 30, lname) != e.name)
      fail(op, source, shown + ": the local header names a different file");
    const uint64_t data_start = lo + 30 + lname + lextra;
    if (e.usize > n - data_start) {
      fail(op,
           source,
           detail::concat(
               shown, ": data truncated: expected ", e.usize, " bytes, found ", n - data_start));
    }
    uint32_t crc = 0;
    Tensor t;
    try {
      t = npy_detail::read_npy(src, data_start, e.usize, op, source + ":" + name, &crc);
    } catch (const IOError&) {
      // Corruption explains a malformed array better than the array's own error does.
      const uint32_t actual = crc_of_range(src, data_start, e.usize);
      if (actual != e.crc)
        crc_mismatch(op, source, shown, e.crc, actual);
      throw;
    }
    if (crc != e.crc)
      crc_mismatch(op, source, shown, e.crc, crc);
    result.emplace_back(std::move(name), std::move(t));
  }
  return result;
}

bool valid_entry_name(const std::string& name, std::string* why) {
  if (name.empty()) {
    *why = "empty";
  } else if (name[0] == '/' || name[0] == '\\') {
    *why = "starts with a path separator";
  } else if (name.find('\0') != std::string::npos) {
    *why = "contains a NUL character";
  } else if (name.size() > 60000) {
    *why = "longer than a zip entry name may be";
  } else {
    // No ".." path component: unzipping the archive must not write outside its folder.
    std::size_t start = 0;
    for (;;) {
      const std::size_t slash = name.find_first_of("/\\", start);
      if (name.compare(
              start, slash == std::string::npos ? std::string::npos : slash - start, "..") == 0) {
        *why = "contains a '..' path component";
        return false;
      }
      if (slash == std::string::npos)
        return true;
      start = slash + 1;
    }
  }
  return false;
}

// Appends v as nbytes (<= 8) little-endian bytes.
void put(std::string& out, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string npz_bytes_as(const NamedTensors& tensors, const char* op) {
  struct Written {
    std::string file;
    uint32_t crc;
    uint64_t size, offset;
    bool utf8;
  };
  std::vector<Written> written;
  std::set<std::string> seen;
  std::size_t total = 0;
  for (const auto& [name, t] : tensors) {
    std::string why;
    ATTNLAB_CHECK(
        valid_entry_name(name, &why), ValueError, op, ": invalid entry name '", name, "': ", why);
    ATTNLAB_CHECK(seen.insert(name).second, ValueError, op, ": duplicate entry name '", name, "'");
    ATTNLAB_CHECK(t.defined(), ValueError, op, ": entry '", name, "' is an undefined tensor");
    total += t.nbytes() + 2 * name.size() + 300;
  }
  std::string out;
  out.reserve(total + 100);
  // Zip timestamps are MS-DOS dates; 1980-01-01 00:00 (what Python's zipfile and so np.savez
  // write too) keeps the output deterministic.
  constexpr uint64_t kDosDate = (0 << 9) | (1 << 5) | 1, kDosTime = 0;
  for (const auto& [name, t] : tensors) {
    Written w;
    w.file = name + ".npy";
    w.offset = out.size();
    w.utf8 = std::any_of(w.file.begin(), w.file.end(), [](char c) { return c & 0x80; });
    // The header size is known only after encoding; a 1 MiB margin decides ZIP64 up front.
    const bool zip64 = t.nbytes() + (1u << 20) >= kMax32;
    put(out, kLocalSig, 4);
    put(out, zip64 ? 45 : 20, 2);     // version needed
    put(out, w.utf8 ? 0x800 : 0, 2);  // flags: bit 11 = UTF-8 name
    put(out, 0, 2);                   // method: stored
    put(out, kDosTime, 2);
    put(out, kDosDate, 2);
    const std::size_t crc_at = out.size();
    out.append(12, '\0');  // crc, sizes: patched below
    put(out, w.file.size(), 2);
    put(out, zip64 ? 20 : 0, 2);
    out += w.file;
    if (zip64) {
      put(out, 1, 2);
      put(out, 16, 2);
      out.append(16, '\0');  // sizes: patched below
    }
    const std::size_t data_start = out.size();
    npy_detail::append_npy(out, t, op);
    w.size = out.size() - data_start;
    w.crc = npy_detail::crc32_update(0, out.data() + data_start, w.size);
    std::string fields;
    put(fields, w.crc, 4);
    put(fields, zip64 ? kMax32 : w.size, 4);
    put(fields, zip64 ? kMax32 : w.size, 4);
    out.replace(crc_at, 12, fields);
    if (zip64) {
      fields.clear();
      put(fields, w.size, 8);
      put(fields, w.size, 8);
      out.replace(data_start - 16, 16, fields);
    }
    written.push_back(std::move(w));
  }
  const uint64_t cd_offset = out.size();
  for (const Written& w : written) {
    std::string extra;
    if (w.size >= kMax32) {
      put(extra, w.size, 8);
      put(extra, w.size, 8);
    }
    if (w.offset >= kMax32)
      put(extra, w.offset, 8);
    if (!extra.empty())
      extra = std::string("\x01\x00", 2) + char(extra.size()) + '\0' + extra;
    const int version = extra.empty() ? 20 : 45;
    put(out, kCentralSig, 4);
    put(out, (3 << 8) | version, 2);  // made by: Unix
    put(out, version, 2);
    put(out, w.utf8 ? 0x800 : 0, 2);
    put(out, 0, 2);
    put(out, kDosTime, 2);
    put(out, kDosDate, 2);
    put(out, w.crc, 4);
    put(out, std::min(w.size, kMax32), 4);
    put(out, std::min(w.size, kMax32), 4);
    put(out, w.file.size(), 2);
    put(out, extra.size(), 2);
    put(out, 0, 2);               // comment length
    put(out, 0, 2);               // disk
    put(out, 0, 2);               // internal attributes
    put(out, 0100644u << 16, 4);  // external attributes: regular file, rw-r--r--
    put(out, std::min(w.offset, kMax32), 4);
    out += w.file;
    out += extra;
  }
  const uint64_t cd_size = out.size() - cd_offset;
  const uint64_t count = written.size();
  if (count >= kMax16 || cd_size >= kMax32 || cd_offset >= kMax32) {
    const uint64_t z64 = out.size();
    put(out, kZip64EndSig, 4);
    put(out, 44, 8);  // size of the rest of the record
    put(out, (3 << 8) | 45, 2);
    put(out, 45, 2);
    put(out, 0, 4);
    put(out, 0, 4);
    put(out, count, 8);
    put(out, count, 8);
    put(out, cd_size, 8);
    put(out, cd_offset, 8);
    put(out, kZip64LocatorSig, 4);
    put(out, 0, 4);
    put(out, z64, 8);
    put(out, 1, 4);
  }
  put(out, kEndSig, 4);
  put(out, 0, 4);  // disk numbers
  put(out, std::min(count, kMax16), 2);
  put(out, std::min(count, kMax16), 2);
  put(out, std::min(cd_size, kMax32), 4);
  put(out, std::min(cd_offset, kMax32), 4);
  put(out, 0, 2);  // comment length
  return out;
}

}  // namespace

std::string npz_bytes(const NamedTensors& tensors) {
  return npz_bytes_as(tensors, "npz_bytes");
}

NamedTensors parse_npz(const std::string& bytes, const std::string& source) {
  return read_npz(
      npy_detail::MemorySource(bytes.data(), bytes.size()), "parse_npz", source);
}

void save_npz(const std::string& path, const NamedTensors& tensors) {
  write_file_atomic(path, npz_bytes_as(tensors, "save_npz"));
}

NamedTensors load_npz(const std::string& path) {
  return read_npz(npy_detail::FileSource(path, "load_npz"), "load_npz", path);
}

}  // namespace attnlab
