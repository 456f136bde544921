// .npy / .npz round trips, compatibility with NumPy-written fixtures (tests/data/npy, made by
// make_fixtures.py), header syntax variants, and write_file_atomic. Malformed inputs and the fuzz
// loops are in test_core_npy_malformed.cpp.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/file_io.hpp"
#include "core/npy.hpp"
#include "tests/npy_test_helpers.hpp"

using namespace attnlab;
using npy_test::identical;

namespace attnlab::npy_test {

// Values that exercise every byte: fractions, negatives, NaN, infinities, -0.0, extremes.
Tensor sample(const Shape& shape, DType dtype) {
  const int64_t n = shape.numel();
  if (dtype == kInt64) {
    std::vector<int64_t> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = (i % 3 == 2) ? -(int64_t{1} << (i % 63)) : i * 7919 - 50;
    return from_vector(v, shape);
  }
  std::vector<double> v(n);
  const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 1e-30, -3e38};
  for (int64_t i = 0; i < n; ++i) v[i] = (i % 11 == 5) ? specials[(i / 11) % 6] : i * 0.37 - 5;
  return from_vector(v, shape, dtype);
}

// The files check_roundtrip.py verifies; the values are repeated there.
NamedTensors numpy_check_files() {
  std::vector<double> r4(30);
  for (int i = 0; i < 30; ++i) r4[i] = i * 0.25 - 3;
  return {
      {"f32", from_vector(std::vector<double>{-1, -0.5, 0, 0.5, 1, 1.5}, {2, 3}, kFloat32)},
      {"f64_r4", from_vector(r4, {2, 3, 1, 5}, kFloat64)},
      {"i64",
       from_vector(
           std::vector<int64_t>{0, -1, int64_t{1} << 62, std::numeric_limits<int64_t>::min()},
           {4})},
      {"scalar", scalar_tensor(3.25, kFloat64)},
      {"empty", zeros({0, 3}, kFloat32)},
  };
}

}  // namespace attnlab::npy_test

TEST_SUITE("core.npy") {
  TEST_CASE("npy round trip: every dtype / ranks 0-4 / size-0 dims / odd sizes") {
    std::vector<Shape> shapes = {{}, {7}, {3, 5}, {2, 3, 17}, {2, 1, 3, 5}, {0}, {3, 0, 2}};
    for (int64_t n = 1; n <= 33; ++n) shapes.push_back(Shape{n});  // around SIMD widths
    for (DType dt : {kFloat32, kFloat64, kInt64}) {
      for (const Shape& s : shapes) {
        CAPTURE(dtype_name(dt));
        CAPTURE(s);
        const Tensor t = npy_test::sample(s, dt);
        const std::string bytes = npy_bytes(t);
        CHECK((bytes.size() - t.nbytes()) % 64 == 0);  // data 64-byte aligned, as numpy does
        CHECK(bytes[bytes.size() - t.nbytes() - 1] == '\n');
        CHECK(identical(parse_npy(bytes, "mem"), t));
      }
    }
  }

  TEST_CASE("save_npy / load_npy and save_npz / load_npz through files") {
    npy_test::ScratchDir dir("npy_files");
    const Tensor t = npy_test::sample({4, 9}, kFloat64);
    save_npy(dir.file("t.npy"), t);
    CHECK(identical(load_npy(dir.file("t.npy")), t));
    save_npy(dir.file("t.npy"), npy_test::sample({2}, kInt64));  // overwrite
    CHECK(identical(load_npy(dir.file("t.npy")), npy_test::sample({2}, kInt64)));

    // Order is preserved, not sorted; names may contain '/'.
    const NamedTensors entries = {
        {"zeta", npy_test::sample({3, 4}, kFloat32)},
        {"alpha", npy_test::sample({}, kFloat64)},
        {"layers/0/weight", npy_test::sample({2, 3, 5}, kFloat64)},
        {"ids", npy_test::sample({17}, kInt64)},
        {"nothing", zeros({0, 4}, kFloat32)},
    };
    save_npz(dir.file("m.npz"), entries);
    const NamedTensors back = load_npz(dir.file("m.npz"));
    REQUIRE(back.size() == entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      CHECK(back[i].first == entries[i].first);
      CHECK(identical(back[i].second, entries[i].second));
    }
    CHECK(parse_npz(npz_bytes({}), "empty").empty());
    CHECK(dir.list().size() == 2);  // no temporary files left
  }

  TEST_CASE("npz: many entries use the ZIP64 end records") {
    NamedTensors many;
    for (int64_t i = 0; i < 65536; ++i)
      many.emplace_back("e" + std::to_string(i), scalar_tensor(static_cast<double>(i), kInt64));
    const std::string zip = npz_bytes(many);
    CHECK(npy_test::get_le(zip, npy_test::eocd_offset(zip) + 10, 2) == 0xffff);
    const NamedTensors back = parse_npz(zip, "many");
    REQUIRE(back.size() == many.size());
    CHECK(back[65535].first == "e65535");
    CHECK(back[65535].second.item() == 65535);
  }

  TEST_CASE("npz entry names are validated on write") {
    const Tensor t = zeros({1});
    for (const char* bad : {"", "/abs", "..", "a/../b", "../x", "a/.."}) {
      CAPTURE(bad);
      CHECK_THROWS_WITH_AS(
          npz_bytes({{bad, t}}), doctest::Contains("invalid entry name"), ValueError);
    }
    CHECK_THROWS_WITH_AS(
        npz_bytes({{"a", t}, {"a", t}}), doctest::Contains("duplicate entry"), ValueError);
    CHECK_NOTHROW(npz_bytes({{"a..b", t}, {"x/y", t}, {"..a", t}}));
  }

  TEST_CASE("NumPy fixtures load with the right values") {
    using npy_test::fixture;
    CHECK(identical(load_npy(fixture("f32.npy")),
                    from_vector(std::vector<double>{-1, -0.5, 0, 0.5, 1, 1.5}, {2, 3}, kFloat32)));
    CHECK(identical(load_npy(fixture("f64.npy")),
                    from_vector(std::vector<double>{0.1, -2.5, 1e300, 5e-324}, {4}, kFloat64)));
    CHECK(identical(
        load_npy(fixture("i64.npy")),
        from_vector(
            std::vector<int64_t>{0, -1, int64_t{1} << 62, std::numeric_limits<int64_t>::min()},
            {2, 2})));
    // Fortran order comes back in C order; both element sizes.
    CHECK(identical(load_npy(fixture("fortran_f8.npy")), arange(24, kFloat64).reshape({2, 3, 4})));
    CHECK(identical(load_npy(fixture("fortran_f4.npy")), arange(12, kFloat32).reshape({3, 4})));
    // Big-endian data is byte-swapped.
    CHECK(identical(load_npy(fixture("be_f8.npy")),
                    from_vector(std::vector<double>{0, 1.5, 3, 4.5, 6}, {5}, kFloat64)));
    CHECK(identical(load_npy(fixture("be_f4.npy")),
                    from_vector(std::vector<double>{-1, 0, 1}, {3}, kFloat32)));
    CHECK(identical(load_npy(fixture("be_i8.npy")),
                    from_vector(std::vector<int64_t>{1, -2, int64_t{1} << 40}, {3})));
    CHECK(identical(load_npy(fixture("scalar.npy")), scalar_tensor(3.25, kFloat64)));
    CHECK(identical(load_npy(fixture("empty.npy")), zeros({0, 3}, kFloat32)));
    CHECK(identical(load_npy(fixture("v2.npy")), arange(4, kFloat32)));
    CHECK(identical(load_npy(fixture("v3.npy")), arange(4, kInt64)));
  }

  TEST_CASE("npy_bytes reproduces np.save byte for byte") {
    for (const char* name : {"f32.npy", "i64.npy", "scalar.npy", "empty.npy", "f64.npy"}) {
      CAPTURE(name);
      const std::string numpy_bytes = read_file(npy_test::fixture(name));
      CHECK(npy_bytes(parse_npy(numpy_bytes, name)) == numpy_bytes);
    }
  }

  TEST_CASE("np.savez archives load in order - np.savez_compressed is refused clearly") {
    const NamedTensors z = load_npz(npy_test::fixture("savez.npz"));
    REQUIRE(z.size() == 3);
    CHECK(z[0].first == "weight");
    CHECK(identical(z[0].second, load_npy(npy_test::fixture("f32.npy"))));
    CHECK(z[1].first == "bias");
    CHECK(identical(z[1].second, from_vector(std::vector<double>{0.5, -0.5}, {2}, kFloat64)));
    CHECK(z[2].first == "steps");
    CHECK(identical(z[2].second, scalar_tensor(7, kInt64)));
    CHECK_THROWS_WITH_AS(load_npz(npy_test::fixture("savez_compressed.npz")),
                         doctest::Contains("is compressed (deflate, as np.savez_compressed"),
                         IOError);
  }

  TEST_CASE("npy header syntax: quotes / key order / whitespace / commas / Python 2 ints") {
    const std::string d4 = npy_test::raw_data(std::vector<double>{1, 2, 3, 4});
    const Tensor want = from_vector(std::vector<double>{1, 2, 3, 4}, {4}, kFloat64);
    const char* headers[] = {
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }\n",
        "{\"shape\": (4,), \"descr\": \"<f8\", \"fortran_order\": False}",
        "  {'fortran_order':False,'shape':( 4 , ),'descr':'<f8'}   \n  ",
        "{'descr': '=f8', 'fortran_order': False, 'shape': (4L,), }",
        "{'descr': '|f8', 'fortran_order': True, 'shape': (4,)}",
        "{'descr': 'f8', 'fortran_order': False, 'shape': (+4,)}",
        "{\n 'descr': '<f8',\n 'fortran_order': False,\n 'shape': (4,),\n}\n",
    };
    for (const char* h : headers) {
      CAPTURE(h);
      CHECK(identical(parse_npy(npy_test::raw_npy(h, d4), "h"), want));
    }
    CHECK(identical(parse_npy(npy_test::raw_npy(headers[0], d4, 2), "v2"), want));
    const Tensor m = parse_npy(
        npy_test::raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2)}", d4), "2x2");
    CHECK(identical(m, want.reshape({2, 2})));
    const Tensor s = parse_npy(
        npy_test::raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': ()}", d4.substr(0, 8)),
        "scalar");
    CHECK(identical(s, scalar_tensor(1, kFloat64)));
  }

  TEST_CASE("Fortran order conversion matches a reference loop for ranks 2-4") {
    for (const Shape& s : {Shape{3, 5}, Shape{2, 3, 4}, Shape{3, 1, 2, 5}}) {
      CAPTURE(s);
      const int64_t n = s.numel();
      // Column-major data: element (i0, i1, ...) at i0 + d0 * (i1 + d1 * (i2 + ...)).
      std::vector<int64_t> colmajor(n), want(n);
      const std::vector<int64_t> strides = contiguous_strides(s);
      for (int64_t c = 0; c < n; ++c) {
        int64_t f = 0, scale = 1;
        for (int k = 0; k < s.rank(); ++k) {
          f += ((c / strides[k]) % s[k]) * scale;
          scale *= s[k];
        }
        colmajor[f] = 1000 + c;
        want[c] = 1000 + c;
      }
      std::string shape_text = "(";
      for (int k = 0; k < s.rank(); ++k) shape_text += std::to_string(s[k]) + ", ";
      const std::string h = "{'descr': '<i8', 'fortran_order': True, 'shape': " + shape_text + ")}";
      CHECK(identical(parse_npy(npy_test::raw_npy(h, npy_test::raw_data(colmajor)), "f"),
                      from_vector(want, s)));
    }
  }

  TEST_CASE("numpy check files (set ATTNLAB_NPY_CHECK_DIR to keep them for check_roundtrip.py)") {
    // Writes the files tests/data/npy/check_roundtrip.py verifies with NumPy; without the
    // variable they go to a scratch directory and are only read back here.
    npy_test::ScratchDir scratch("npy_check");
    const char* env = std::getenv("ATTNLAB_NPY_CHECK_DIR");
    const std::string dir = env && *env ? env : scratch.str();
    const NamedTensors files = npy_test::numpy_check_files();
    for (const auto& [name, t] : files) save_npy(dir + "/" + name + ".npy", t);
    NamedTensors archive = {
        {"weight", files[0].second},
        {"layers/0/bias", from_vector(std::vector<double>{0.5, -0.5}, {2}, kFloat64)},
        {"steps", scalar_tensor(7, kInt64)},
        {"empty", files[4].second}};
    save_npz(dir + "/multi.npz", archive);
    for (const auto& [name, t] : files) CHECK(identical(load_npy(dir + "/" + name + ".npy"), t));
    CHECK(load_npz(dir + "/multi.npz").size() == 4);
  }
}

TEST_SUITE("core.file_io") {
  // Resets the global hook even when a check fails.
  struct HookGuard {
    ~HookGuard() { set_write_fault_hook(nullptr); }
  };

  TEST_CASE("write_file_atomic writes / overwrites and reads back - chunked hook calls") {
    npy_test::ScratchDir dir("atomic");
    const std::string path = dir.file("f.bin");
    std::string big(200000, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
    HookGuard guard;
    std::vector<std::size_t> calls;
    set_write_fault_hook([&](const std::string& p, std::size_t written) {
      CHECK(p == path);
      calls.push_back(written);
    });
    write_file_atomic(path, big);
    CHECK(calls == std::vector<std::size_t>{65536, 131072, 196608, 200000});
    CHECK(read_file(path) == big);
    write_file_atomic(path, "");
    CHECK(read_file(path).empty());
    write_file_atomic(path, "second");
    CHECK(read_file(path) == "second");
    CHECK(dir.list() == std::vector<std::string>{"f.bin"});
  }

  TEST_CASE(
      "keep_lines_atomic keeps the head and the chosen lines - a missing file stays missing") {
    npy_test::ScratchDir dir("keep_lines");
    const std::string path = dir.file("log.csv");
    keep_lines_atomic(path, "head\n", [](const std::string&) { return true; });
    CHECK(dir.list().empty());
    write_file_atomic(path, "old head\n1,a\n2,b\n3,c\n4,d");  // the last line unterminated
    keep_lines_atomic(path, "head\n", [](const std::string& line) {
      return line != "old head" && line[0] != '3';
    });
    CHECK(read_file(path) == "head\n1,a\n2,b\n4,d\n");
    CHECK(dir.list() == std::vector<std::string>{"log.csv"});
  }

  TEST_CASE("remove_stale_temp_files removes only the temporary files of dead writers") {
    npy_test::ScratchDir dir("stale");
    const std::string path = dir.file("f.bin");
    // A pid that surely ran and ended: a child that exits at once, reaped.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0)
      ::_exit(0);
    REQUIRE(::waitpid(child, nullptr, 0) == child);
    const std::string dead = std::to_string(child), alive = std::to_string(::getppid()),
                      self = std::to_string(::getpid());
    const std::vector<std::string> names{"f.bin",
                                         "f.bin.tmp." + dead + ".0",
                                         "f.bin.tmp." + alive + ".1",
                                         "f.bin.tmp." + self + ".2",
                                         "f.bin.tmp.x" + dead + ".0",
                                         "f.bin.tmp." + dead,
                                         "g.bin.tmp." + dead + ".0"};
    for (const std::string& name : names) write_file_atomic(dir.file(name), "x");
    CHECK(remove_stale_temp_files(path) == 1);
    std::vector<std::string> left = dir.list();
    std::sort(left.begin(), left.end());
    std::vector<std::string> expected{"f.bin",
                                      "f.bin.tmp." + dead,
                                      "f.bin.tmp." + alive + ".1",
                                      "f.bin.tmp." + self + ".2",
                                      "f.bin.tmp.x" + dead + ".0",
                                      "g.bin.tmp." + dead + ".0"};
    std::sort(expected.begin(), expected.end());
    CHECK(left == expected);
    CHECK(remove_stale_temp_files(dir.file("missing-dir/f.bin")) == 0);
  }

  TEST_CASE("a fault mid-write leaves the old file intact and no temporary file") {
    npy_test::ScratchDir dir("fault");
    const std::string path = dir.file("model.npz");
    const std::string old_bytes = npz_bytes({{"w", arange(10, kFloat64)}});
    write_file_atomic(path, old_bytes);
    HookGuard guard;
    set_write_fault_hook([](const std::string&, std::size_t written) {
      if (written >= 65536)
        throw IOError("simulated: No space left on device");
    });
    const NamedTensors big = {{"w", zeros({100000}, kFloat64)}};
    CHECK_THROWS_WITH_AS(save_npz(path, big), doctest::Contains("No space left"), IOError);
    CHECK(read_file(path) == old_bytes);
    CHECK(dir.list() == std::vector<std::string>{"model.npz"});

    // A hook throwing something else is reported as an IOError naming the file.
    set_write_fault_hook([](const std::string&, std::size_t) { throw std::runtime_error("boom"); });
    CHECK_THROWS_WITH_AS(write_file_atomic(path, "new"),
                         doctest::Contains(("write_file_atomic: cannot write '" + path).c_str()),
                         IOError);
    CHECK(read_file(path) == old_bytes);
    CHECK(dir.list() == std::vector<std::string>{"model.npz"});
  }

  TEST_CASE("missing directories and files give IOError naming the path") {
    npy_test::ScratchDir dir("missing");
    const std::string bad = dir.file("no/such/dir/x.npy");
    CHECK_THROWS_WITH_AS(write_file_atomic(bad, "x"), doctest::Contains("No such file"), IOError);
    CHECK_THROWS_WITH_AS(save_npy(bad, zeros({2})), doctest::Contains(bad.c_str()), IOError);
    CHECK_THROWS_WITH_AS(
        read_file(dir.file("absent")),
        doctest::Contains(("read_file: cannot open '" + dir.file("absent")).c_str()),
        IOError);
    CHECK_THROWS_WITH_AS(read_file(dir.str()), doctest::Contains("directory"), IOError);
    CHECK(dir.list().empty());
  }

  TEST_CASE("check_writable_path refuses what write_file_atomic would refuse later") {
    npy_test::ScratchDir dir("writable");
    check_writable_path(dir.file("x.npz"), "probe");  // a new file in an existing directory
    CHECK(dir.list().empty());                        // and nothing written
    CHECK_THROWS_WITH_AS(check_writable_path(dir.file("no/such/x.npz"), "probe"),
                         doctest::Contains("probe: cannot write '"),
                         IOError);
    CHECK_THROWS_WITH_AS(check_writable_path(dir.file("no/such/x.npz"), "probe"),
                         doctest::Contains("No such file"),
                         IOError);
    CHECK_THROWS_WITH_AS(
        check_writable_path(dir.str(), "probe"), doctest::Contains("it is a directory"), IOError);
    write_file_atomic(dir.file("plain"), "x");
    CHECK_THROWS_WITH_AS(check_writable_path(dir.file("plain/x.npz"), "probe"),
                         doctest::Contains("is not a directory"),
                         IOError);
    CHECK_THROWS_AS(check_writable_path("", "probe"), IOError);
  }
}
