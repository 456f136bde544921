// Malformed .npy / .npz input: every case must throw an IOError naming the source and the
// problem; cheap fuzz loops (every truncation, thousands of byte flips) must never crash.
#include <doctest/doctest.h>

#include "core/npy.hpp"
#include "tests/npy_test_helpers.hpp"

using namespace attnlab;

namespace attnlab::npy_test {

std::string npy_with(const std::string& header, const std::string& data = std::string(16, '\0')) {
  return raw_npy(header, data);
}

#define CHECK_NPY_ERROR(bytes, text) \
  CHECK_THROWS_WITH_AS(              \
      parse_npy(bytes, "bad.npy"), doctest::Contains(std::string(text).c_str()), IOError)
#define CHECK_NPZ_ERROR(bytes, text) \
  CHECK_THROWS_WITH_AS(              \
      parse_npz(bytes, "bad.npz"), doctest::Contains(std::string(text).c_str()), IOError)

// A small valid archive with two float32 entries.
std::string small_npz() {
  return npz_bytes({{"a", arange(5, kFloat32)}, {"b", arange(3, kFloat32).reshape({3, 1})}});
}

// Recomputes the CRC of the first entry after its data was edited in place (local header at 0,
// first central record found by signature).
void fix_first_crc(std::string& zip) {
  const std::size_t name_len = get_le(zip, 26, 2), extra_len = get_le(zip, 28, 2);
  const std::size_t size = get_le(zip, 18, 4);
  const uint32_t crc = crc32_reference(zip.substr(30 + name_len + extra_len, size));
  set_le(zip, 14, crc, 4);
  set_le(zip, zip.find(std::string("PK\x01\x02", 4)) + 16, crc, 4);
}

// Parses or throws IOError; anything else (another exception type) is a failure.
bool parses_or_io_error(const std::string& bytes, bool npz) {
  try {
    if (npz) {
      parse_npz(bytes, "fuzz");
    } else {
      parse_npy(bytes, "fuzz");
    }
  } catch (const IOError&) {
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace attnlab::npy_test

TEST_SUITE("core.npy") {
  TEST_CASE("malformed .npy input throws IOError naming the problem") {
    using npy_test::npy_with;
    const std::string ok_header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    CHECK_NPY_ERROR("", "parse_npy: bad.npy: empty file");
    CHECK_NPY_ERROR(std::string("\x93NUMPZ\x01\x00", 8) + "xx", "bad magic");
    CHECK_NPY_ERROR("PK\x03\x04 not an npy file", "bad magic");
    CHECK_NPY_ERROR(std::string("\x93NUMPY\x04\x00\x10\x00", 10),
                    "unsupported .npy format version 4.0");
    CHECK_NPY_ERROR(std::string("\x93NUMPY\x01\x01\x10\x00", 10), "version 1.1");
    CHECK_NPY_ERROR(std::string("\x93NUMPY\x02\x00\x10", 9), "truncated in the header length");
    CHECK_NPY_ERROR(std::string("\x93NUMPY\x01\x00\xff\x00{}", 12),
                    "header length 255 goes beyond");
    CHECK_NPY_ERROR(npy_with("['descr', '<f8']"), "header is not a dict literal");
    CHECK_NPY_ERROR(npy_with("{'descr': '<f8', 'shape': (2,)}"),
                    "parse_npy: bad.npy: bad header: missing key 'fortran_order'");
    CHECK_NPY_ERROR(npy_with("{'descr': '<f8', 'fortran_order': False}"), "missing key 'shape'");
    CHECK_NPY_ERROR(npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}"),
                    "unexpected key 'x'");
    CHECK_NPY_ERROR(npy_with("{'descr': '<f8', 'descr': '<f8'}"), "duplicate key 'descr'");
    CHECK_NPY_ERROR(npy_with("{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}"),
                    "'fortran_order' must be True or False");
    // Bad shape texts.
    for (const char* shape :
         {"(2)", "[2]", "(2,,)", "(2 3)", "('2',)", "(2.0,)", "(02,)", "(2,", "((2,),)", "2"}) {
      CAPTURE(shape);
      const std::string h =
          std::string("{'descr': '<f8', 'fortran_order': False, 'shape': ") + shape + "}";
      CHECK_NPY_ERROR(npy_with(h), "bad header");
    }
    CHECK_NPY_ERROR(npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, -1)}"),
                    "negative dimension -1 in shape (2, -1)");
    CHECK_NPY_ERROR(
        npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}"),
        "dimension 99999999999999999999 in shape does not fit in 64 bits");
    CHECK_NPY_ERROR(
        npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}"),
        "overflows");
    CHECK_NPY_ERROR(
        npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4)}"),
        "overflows");
    CHECK_NPY_ERROR(
        npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}"),
        "above attnlab's maximum of 8");
    for (const char* descr : {"<i4", "|b1", "<c8", "|O", "<f2", "<U3", ">i4", "", "float32"}) {
      CAPTURE(descr);
      const std::string h =
          std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (2,)}";
      CHECK_NPY_ERROR(npy_with(h),
                      "unsupported descr '" + std::string(descr) + "'; supported: '<f4' (float32)");
    }
    CHECK_NPY_ERROR(npy_with("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}"),
                    "structured");
    CHECK_NPY_ERROR(npy_with(ok_header, std::string(15, '\0')),
                    "data truncated: expected 16 bytes, found 15");
    CHECK_NPY_ERROR(npy_with(ok_header, std::string(17, '\0')),
                    "trailing data: expected 16 bytes, found 17");
    CHECK_NPY_ERROR(npy_with(ok_header + " x"), "unexpected text after the dict");
    CHECK_NPY_ERROR(npy_with(std::string("{'descr': '<f8") + '\0' +
                             "', 'fortran_order': False, 'shape': (2,)}"),
                    "unsupported descr '<f8\\x00'");
    CHECK_THROWS_WITH_AS(
        load_npy("/dev/null"), doctest::Contains("load_npy: /dev/null: empty file"), IOError);
    CHECK_THROWS_WITH_AS(load_npy("/nonexistent/dir/x.npy"),
                         doctest::Contains("cannot open '/nonexistent/dir/x.npy'"),
                         IOError);
  }

  TEST_CASE("malformed .npz input throws IOError naming the problem") {
    const std::string good = npy_test::small_npz();
    REQUIRE(parse_npz(good, "good").size() == 2);
    CHECK_NPZ_ERROR("", "parse_npz: bad.npz: empty file");
    CHECK_NPZ_ERROR(npy_bytes(arange(4)), "not a zip archive");
    CHECK_NPZ_ERROR(good.substr(0, good.size() - 1), "not a zip archive");

    std::string cd = good;  // central directory size larger than the space before the end record
    npy_test::set_le(cd, npy_test::eocd_offset(cd) + 12, 0xffff, 4);
    CHECK_NPZ_ERROR(cd, "central directory truncated");
    std::string count = good;  // more entries announced than the directory holds
    npy_test::set_le(count, npy_test::eocd_offset(count) + 8, 3, 2);
    npy_test::set_le(count, npy_test::eocd_offset(count) + 10, 3, 2);
    CHECK_NPZ_ERROR(count, "central directory truncated");

    std::string crc = good;  // flip a data byte of entry 'a' (the last byte of its array)
    const std::size_t a_end = 30 + 5 + npy_test::get_le(good, 18, 4);
    crc[a_end - 1] ^= 0x40;
    CHECK_NPZ_ERROR(crc, "entry 'a.npy': CRC-32 mismatch");

    std::string dup = good;  // rename 'b.npy' to 'a.npy' in its local and central headers
    for (std::size_t at; (at = dup.find("b.npy")) != std::string::npos;) dup[at] = 'a';
    CHECK_NPZ_ERROR(dup, "duplicate entry 'a'");

    std::string deflate = good;  // method 8 in the central directory
    npy_test::set_le(deflate, deflate.find(std::string("PK\x01\x02", 4)) + 10, 8, 2);
    CHECK_NPZ_ERROR(deflate, "entry 'a.npy' is compressed");
    CHECK_NPZ_ERROR(npz_bytes({{"a", arange(2)}}).replace(30, 5, "a.txt"),
                    "the local header names a different file");

    // A bad array inside an archive names "<archive>:<entry>"; CRC fixed so the npy is reached.
    std::string entry = good;
    const std::size_t descr = entry.find("<f4");
    entry[descr + 2] = '2';
    npy_test::fix_first_crc(entry);
    CHECK_NPZ_ERROR(entry, "parse_npz: bad.npz:a: unsupported descr '<f2'");
    // Without the CRC fix the corruption is reported as such, not as a bad array.
    std::string corrupt = good;
    corrupt[descr + 2] = '2';
    CHECK_NPZ_ERROR(corrupt, "entry 'a.npy': CRC-32 mismatch");
    CHECK_THROWS_WITH_AS(load_npz("/nonexistent/x.npz"), doctest::Contains("cannot open"), IOError);
    // Not a regular file: read whole instead of with pread.
    CHECK_THROWS_WITH_AS(
        load_npz("/dev/null"), doctest::Contains("load_npz: /dev/null: empty file"), IOError);
  }

  TEST_CASE("damaged files on disk (read with pread / not through a buffer)") {
    npy_test::ScratchDir dir("damaged");
    const std::string npy = npy_bytes(arange(6));
    write_file_atomic(dir.file("cut.npy"), npy.substr(0, npy.size() - 3));
    CHECK_THROWS_WITH_AS(load_npy(dir.file("cut.npy")),
                         doctest::Contains("cut.npy: data truncated: expected 24 bytes, found 21"),
                         IOError);
    std::string zip = npy_test::small_npz();
    zip[zip.find(std::string("PK\x01\x02", 4)) - 1] ^= 1;  // last data byte of entry 'b'
    write_file_atomic(dir.file("bad.npz"), zip);
    CHECK_THROWS_WITH_AS(load_npz(dir.file("bad.npz")),
                         doctest::Contains("bad.npz: entry 'b.npy': CRC-32 mismatch"),
                         IOError);
    CHECK_THROWS_WITH_AS(load_npy(dir.str()), doctest::Contains("Is a directory"), IOError);
  }

  TEST_CASE("npz reader accepts ZIP64 end records written by other tools") {
    // Rewrites a small archive's end as a ZIP64 end record + locator + saturated classic record.
    const std::string good = npy_test::small_npz();
    const std::size_t eocd = npy_test::eocd_offset(good);
    const uint64_t entries = npy_test::get_le(good, eocd + 10, 2);
    const uint64_t cd_size = npy_test::get_le(good, eocd + 12, 4);
    const uint64_t cd_offset = npy_test::get_le(good, eocd + 16, 4);
    std::string z = good.substr(0, eocd);
    const std::size_t z64 = z.size();
    z += std::string("PK\x06\x06", 4) + std::string(52, '\0');
    npy_test::set_le(z, z64 + 4, 44, 8);
    npy_test::set_le(z, z64 + 24, entries, 8);
    npy_test::set_le(z, z64 + 32, entries, 8);
    npy_test::set_le(z, z64 + 40, cd_size, 8);
    npy_test::set_le(z, z64 + 48, cd_offset, 8);
    z += std::string("PK\x06\x07", 4) + std::string(16, '\0');
    npy_test::set_le(z, z.size() - 12, z64, 8);
    npy_test::set_le(z, z.size() - 4, 1, 4);
    z += std::string("PK\x05\x06", 4) + std::string(4, '\0') + std::string(12, '\xff') +
         std::string(2, '\0');
    const NamedTensors back = parse_npz(z, "zip64");
    REQUIRE(back.size() == 2);
    CHECK(back[1].first == "b");
    CHECK(npy_test::identical(back[1].second, arange(3, kFloat32).reshape({3, 1})));
    std::string bad = z;  // locator pointing past the record
    npy_test::set_le(bad, bad.size() - 22 - 12, z64 + 1, 8);
    CHECK_NPZ_ERROR(bad, "bad ZIP64 end-of-central-directory record");
  }

  TEST_CASE("fuzz: every truncation of a valid .npy and .npz throws IOError") {
    const std::string npy = npy_bytes(arange(6, kFloat64).reshape({2, 3}));
    for (std::size_t n = 0; n < npy.size(); ++n) {
      CAPTURE(n);
      CHECK_THROWS_AS(parse_npy(npy.substr(0, n), "cut"), IOError);
    }
    const std::string npz = npy_test::small_npz();
    int failures = 0;
    for (std::size_t n = 0; n < npz.size(); ++n) {
      try {
        parse_npz(npz.substr(0, n), "cut");
        ++failures;  // a prefix must never parse
      } catch (const IOError&) {
      } catch (...) {
        ++failures;
      }
    }
    CHECK(failures == 0);
  }

  TEST_CASE("fuzz: random byte flips either parse or throw IOError") {
    uint64_t state = 20240611;
    const std::string npy = npy_bytes(arange(5, kFloat32));
    const std::string npz = npy_test::small_npz();
    int failures = 0;
    for (int round = 0; round < 4000; ++round) {
      const bool use_npz = round % 2 == 1;
      std::string bytes = use_npz ? npz : npy;
      // Flip 1-3 bytes; npy flips favour the header, where the parsing happens.
      const int flips = 1 + static_cast<int>(npy_test::splitmix(state) % 3);
      for (int f = 0; f < flips; ++f) {
        const uint64_t r = npy_test::splitmix(state);
        const std::size_t limit = use_npz || r % 4 == 0 ? bytes.size() : 128;
        bytes[(r >> 8) % limit] ^= static_cast<char>(1 + (r >> 40) % 255);
      }
      if (!npy_test::parses_or_io_error(bytes, use_npz))
        ++failures;
    }
    CHECK(failures == 0);
  }
}
