#include "core/simd_dispatch.hpp"

#include <cstdlib>
#include <string>

#include "core/error.hpp"

namespace attnlab {
namespace {

#if defined(ATTNLAB_DISPATCH)
constexpr bool kDispatch = true;
#else
constexpr bool kDispatch = false;
#endif

std::string supported(const detail::CpuSimd& cpu) {
  std::string s = cpu.sse42 ? "sse4.2" : "none";
  if (cpu.avx2_fma)
    s += ", avx2";
  if (cpu.avx512)
    s += ", avx512";
  return s;
}

}  // namespace

namespace detail {

CpuSimd cpu_simd() {
  __builtin_cpu_init();
  CpuSimd c;
  // libgcc's __builtin_cpu_supports reports AVX / AVX-512 features only when the OS saves the
  // wider registers (XCR0), so these are safe to use, not just present.
  c.sse42 = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
  c.avx2_fma = c.sse42 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  c.avx512 = c.avx2_fma && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd");
  return c;
}

SimdPath choose_simd_path(const char* value, const CpuSimd& cpu, bool dispatch) {
  const std::string v = value ? value : "";
  if (!dispatch) {
    ATTNLAB_CHECK(v.empty() || v == "native",
                  ValueError,
                  "ATTNLAB_SIMD=",
                  v,
                  ": this attnlab was built with ATTNLAB_NATIVE=ON and has only the native "
                  "SIMD path; unset ATTNLAB_SIMD or rebuild with -DATTNLAB_NATIVE=OFF");
    return SimdPath::kNative;
  }
  ATTNLAB_CHECK(cpu.sse42,
                ValueError,
                "attnlab needs a CPU with SSE4.2 and POPCNT (x86-64-v2); this one lacks them");
  if (v.empty())
    return cpu.avx512 ? SimdPath::kAvx512 : cpu.avx2_fma ? SimdPath::kAvx2 : SimdPath::kSse42;
  SimdPath want;
  bool have;
  if (v == "sse4.2" || v == "sse42" || v == "sse") {
    want = SimdPath::kSse42;
    have = true;
  } else if (v == "avx2") {
    want = SimdPath::kAvx2;
    have = cpu.avx2_fma;
  } else if (v == "avx512") {
    want = SimdPath::kAvx512;
    have = cpu.avx512;
  } else {
    throw ValueError(detail::concat("ATTNLAB_SIMD=",
                                    v,
                                    ": unknown SIMD path; expected sse4.2, avx2 or avx512 (unset: "
                                    "the widest this CPU supports)"));
  }
  ATTNLAB_CHECK(have,
                ValueError,
                "ATTNLAB_SIMD=",
                v,
                ": this CPU lacks the instructions of that path; it supports ",
                supported(cpu));
  return want;
}

}  // namespace detail

SimdPath simd_path() {
  static const SimdPath path =
      detail::choose_simd_path(std::getenv("ATTNLAB_SIMD"), detail::cpu_simd(), kDispatch);
  return path;
}

const char* simd_path_name(SimdPath path) {
  switch (path) {
    case SimdPath::kSse42:
      return "sse4.2";
    case SimdPath::kAvx2:
      return "avx2";
    case SimdPath::kAvx512:
      return "avx512";
    default:
      return "native";
  }
}

bool simd_dispatch_enabled() {
  return kDispatch;
}

}  // namespace attnlab
