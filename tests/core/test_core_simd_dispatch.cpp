// The SIMD path choice (core/simd_dispatch.hpp) and the kernels of every path this CPU can run,
// called directly, whichever path the process runs (ATTNLAB_SIMD).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/core.hpp"
#include "core/elementwise_kernels.hpp"
#include "core/gemm_kernels.hpp"
#include "core/simd_dispatch.hpp"
#include "core/vec.hpp"
#include "tests/cli_test_helpers.hpp"

using namespace attnlab;

namespace {

const detail::CpuSimd kAll{true, true, true};
const detail::CpuSimd kNoAvx512{true, true, false};
const detail::CpuSimd kSseOnly{true, false, false};

// The kernel tables of every path compiled in and supported here, with their names.
struct PathTables {
  std::string name;
  const GemmKernels& gemm;
  const VecKernels& vec;
  const ElementwiseKernels& elementwise;
};

std::vector<PathTables> runnable_paths() {
  std::vector<PathTables> out;
#if defined(ATTNLAB_DISPATCH)
  const detail::CpuSimd cpu = detail::cpu_simd();
  out.push_back(
      {"sse4.2", sse42::gemm_kernels(), sse42::vec_kernels(), sse42::elementwise_kernels()});
  if (cpu.avx2_fma)
    out.push_back({"avx2", avx2::gemm_kernels(), avx2::vec_kernels(), avx2::elementwise_kernels()});
  if (cpu.avx512)
    out.push_back(
        {"avx512", avx512::gemm_kernels(), avx512::vec_kernels(), avx512::elementwise_kernels()});
#else
  out.push_back(
      {"native", native::gemm_kernels(), native::vec_kernels(), native::elementwise_kernels()});
#endif
  return out;
}

std::vector<float> ramp(int64_t n, float scale, float shift) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = std::sin(0.37f * static_cast<float>(i)) * scale + shift;
  return v;
}

}  // namespace

TEST_SUITE("core_simd_dispatch") {
  TEST_CASE("ATTNLAB_SIMD unset picks the widest path the CPU supports") {
    CHECK(detail::choose_simd_path(nullptr, kAll, true) == SimdPath::kAvx512);
    CHECK(detail::choose_simd_path("", kNoAvx512, true) == SimdPath::kAvx2);
    CHECK(detail::choose_simd_path(nullptr, kSseOnly, true) == SimdPath::kSse42);
  }

  TEST_CASE("ATTNLAB_SIMD names a path") {
    CHECK(detail::choose_simd_path("sse4.2", kAll, true) == SimdPath::kSse42);
    CHECK(detail::choose_simd_path("sse", kAll, true) == SimdPath::kSse42);
    CHECK(detail::choose_simd_path("avx2", kAll, true) == SimdPath::kAvx2);
    CHECK(detail::choose_simd_path("avx512", kAll, true) == SimdPath::kAvx512);
  }

  TEST_CASE("ATTNLAB_SIMD with an unknown value is an error naming the choices") {
    CHECK_THROWS_WITH_AS(detail::choose_simd_path("avx1024", kAll, true),
                         "ATTNLAB_SIMD=avx1024: unknown SIMD path; expected sse4.2, avx2 or avx512 "
                         "(unset: the widest this CPU supports)",
                         ValueError);
    CHECK_THROWS_AS(detail::choose_simd_path("AVX2", kAll, true), ValueError);
  }

  TEST_CASE("ATTNLAB_SIMD naming a path the CPU lacks is an error and not a fallback") {
    CHECK_THROWS_WITH_AS(detail::choose_simd_path("avx512", kNoAvx512, true),
                         "ATTNLAB_SIMD=avx512: this CPU lacks the instructions of that path; it "
                         "supports sse4.2, avx2",
                         ValueError);
    CHECK_THROWS_WITH_AS(detail::choose_simd_path("avx2", kSseOnly, true),
                         doctest::Contains("it supports sse4.2"),
                         ValueError);
    CHECK_THROWS_WITH_AS(detail::choose_simd_path(nullptr, detail::CpuSimd{}, true),
                         doctest::Contains("needs a CPU with SSE4.2"),
                         ValueError);
  }

  TEST_CASE("a native build has one path and rejects other ATTNLAB_SIMD values") {
    CHECK(detail::choose_simd_path(nullptr, kSseOnly, false) == SimdPath::kNative);
    CHECK(detail::choose_simd_path("native", kAll, false) == SimdPath::kNative);
    CHECK_THROWS_WITH_AS(detail::choose_simd_path("avx2", kAll, false),
                         doctest::Contains("built with ATTNLAB_NATIVE=ON"),
                         ValueError);
  }

  TEST_CASE("the running path is one this CPU supports") {
    const SimdPath p = simd_path();
    const detail::CpuSimd cpu = detail::cpu_simd();
    if (simd_dispatch_enabled()) {
      CHECK(p != SimdPath::kNative);
      CHECK(cpu.sse42);
      if (p == SimdPath::kAvx2)
        CHECK(cpu.avx2_fma);
      if (p == SimdPath::kAvx512)
        CHECK(cpu.avx512);
    } else {
      CHECK(p == SimdPath::kNative);
    }
    const std::string name = simd_path_name(p);
    CHECK((name == "sse4.2" || name == "avx2" || name == "avx512" || name == "native"));
  }

  TEST_CASE("every runnable path's GEMM matches a double-precision reference") {
    const int64_t M = 37, N = 45, K = 70;  // ragged edges on every path's tile
    const auto a = ramp(M * K, 1.0f, 0.1f), b = ramp(K * N, 0.5f, -0.2f);
    std::vector<double> ref(static_cast<std::size_t>(M * N), 0.0);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < K; ++k) ref[i * N + j] += double(a[i * K + k]) * b[k * N + j];
    for (const auto& path : runnable_paths()) {
      CAPTURE(path.name);
      std::vector<float> c(static_cast<std::size_t>(M * N), 7.0f);
      path.gemm.f32(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
      double worst = 0;
      for (int64_t e = 0; e < M * N; ++e) worst = std::max(worst, std::fabs(c[e] - ref[e]));
      CHECK(worst < 1e-4);
    }
  }

  TEST_CASE("every runnable path's vector kernels agree with scalar arithmetic") {
    const int64_t n = 203;  // not a multiple of any vector width
    const auto x = ramp(n, 3.0f, 0.5f), y = ramp(n, 1.0f, 0.0f);
    double sum = 0, dot = 0, mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
      sum += x[i];
      dot += double(x[i]) * y[i];
      mx = std::max(mx, double(x[i]));
    }
    for (const auto& path : runnable_paths()) {
      CAPTURE(path.name);
      const VecFns<float>& v = path.vec.f32;
      CHECK(v.sum(x.data(), n) == doctest::Approx(sum).epsilon(1e-5));
      CHECK(v.dot(x.data(), y.data(), n) == doctest::Approx(dot).epsilon(1e-5));
      CHECK(v.max(x.data(), n) == static_cast<float>(mx));
      std::vector<float> e(static_cast<std::size_t>(n));
      v.exp_shift(x.data(), e.data(), n, 1.0f);
      for (int64_t i = 0; i < n; i += 17)
        CHECK(e[i] == doctest::Approx(std::exp(double(x[i]) - 1.0)).epsilon(1e-6));
      std::vector<float> s(static_cast<std::size_t>(n));
      path.elementwise.f32.unary(UnaryOp::kSigmoid, 0, 0, x.data(), s.data(), n);
      for (int64_t i = 0; i < n; i += 17)
        CHECK(s[i] == doctest::Approx(1.0 / (1.0 + std::exp(-double(x[i])))).epsilon(1e-6));
    }
  }

  TEST_CASE("every runnable path draws the same Philox words") {
    // Keys and counters with both 32-bit halves set, and 16 counters that carry into the high
    // word (the AVX-512 path keeps each counter in a 64-bit lane).
    const RngKey keys[] = {{12345, 678}, {0xFEDCBA9876543210ull, 0x0123456789ABCDEFull}};
    const uint64_t firsts[] = {1000, (uint64_t{1} << 32) - 7, 0xFFFFFFFFFFFFFFF0ull};
    for (const RngKey& key : keys) {
      for (const uint64_t first : firsts) {
        uint32_t want[4][16];
        for (int l = 0; l < 16; ++l) {
          const auto r = philox4x32(key, first + l);
          for (int w = 0; w < 4; ++w) want[w][l] = r[w];
        }
        for (const auto& path : runnable_paths()) {
          CAPTURE(path.name);
          CAPTURE(first);
          alignas(64) uint32_t got[4][16];
          path.vec.philox16(key, first, got);
          for (int w = 0; w < 4; ++w)
            for (int l = 0; l < 16; ++l) CHECK(got[w][l] == want[w][l]);
        }
      }
    }
  }

  TEST_CASE("the CLI stops with a one-line error on an unknown ATTNLAB_SIMD") {
    const char* old = std::getenv("ATTNLAB_SIMD");
    const std::string saved = old ? old : "";
    // For the child only: this process runs no kernel before the old value is back.
    ::setenv("ATTNLAB_SIMD", "avx1024", 1);
    const auto r = attnlab_test::run_cli("bench gemm --quick");
    if (old)
      ::setenv("ATTNLAB_SIMD", saved.c_str(), 1);
    else
      ::unsetenv("ATTNLAB_SIMD");
    std::string why;  // the library's own message for this value in this build
    try {
      detail::choose_simd_path("avx1024", detail::cpu_simd(), simd_dispatch_enabled());
    } catch (const ValueError& e) {
      why = e.what();
    }
    REQUIRE(why.rfind("ATTNLAB_SIMD=avx1024: ", 0) == 0);
    CHECK(r.status == 1);
    CHECK(r.out == "attnlab bench: error: " + why + "\n");
  }

  TEST_CASE("bench names the SIMD path in its machine summary") {
    const auto r = attnlab_test::run_cli("bench gemm --quick");
    REQUIRE(r.status == 0);
    const std::string want = std::string("SIMD path ") + simd_path_name(simd_path()) + " (";
    CHECK(r.out.find(want) != std::string::npos);
  }
}
