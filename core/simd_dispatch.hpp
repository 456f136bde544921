// Which compiled set of SIMD kernels runs (the "SIMD path").
//
// The hot loops live in kernel files (core/*_kernels.cpp, layers/*_kernels.cpp) that the build
// compiles once per instruction set into their own namespaces: attnlab::sse42 (x86-64-v2:
// SSE4.2), attnlab::avx2 (x86-64-v3: AVX2 + FMA) and attnlab::avx512 (x86-64-v4: AVX-512
// F/BW/DQ/VL); see cmake/attnlab_kernels.cmake. Everything else is compiled once for the
// compiler's default target, and calls the kernels through a table of function pointers per
// kernel file. So one build (and one installed package) runs on any x86-64 CPU with SSE4.2 and
// uses AVX-512 where the CPU has it.
//
// The path is chosen once per process, at the first kernel call: the widest one the CPU supports
// (cpuid, including the operating system's support for the wider registers), or the one named
// by the environment variable ATTNLAB_SIMD = sse4.2 | avx2 | avx512. An unknown value, or a path
// this CPU lacks, is an error (ValueError from the first kernel call) rather than a silent
// fallback: a run meant to test one path must not quietly test another.
//
// Built with ATTNLAB_NATIVE=ON there is a single path, "native" (-march=native everywhere), and
// ATTNLAB_SIMD may only be unset or "native".
//
// Results: bit-identical across thread counts and runs on every path; different paths round
// differently (vector widths, FMA), so results differ between paths in the last bits.
#pragma once

namespace attnlab {

enum class SimdPath { kSse42, kAvx2, kAvx512, kNative };

// The path this process runs (chosen on the first call). Throws ValueError on a bad ATTNLAB_SIMD.
SimdPath simd_path();
// "sse4.2", "avx2", "avx512" or "native".
const char* simd_path_name(SimdPath path);
// True when this build has several paths chosen at run time (ATTNLAB_NATIVE=OFF).
bool simd_dispatch_enabled();

namespace detail {

// What the CPU (and the OS) supports, from cpuid.
struct CpuSimd {
  bool sse42 = false;
  bool avx2_fma = false;  // AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE (x86-64-v3)
  bool avx512 = false;    // AVX-512 F, BW, DQ, VL, CD (x86-64-v4)
};
CpuSimd cpu_simd();

// The path for an ATTNLAB_SIMD value (null or empty: the widest `cpu` supports). Throws
// ValueError for an unknown value or a path `cpu` lacks. `dispatch`: false for native builds.
SimdPath choose_simd_path(const char* value, const CpuSimd& cpu, bool dispatch);

template <class Table>
const Table& pick_kernels(const Table& (*sse42)(),
                          const Table& (*avx2)(),
                          const Table& (*avx512)()) {
  switch (simd_path()) {
    case SimdPath::kAvx512:
      return avx512();
    case SimdPath::kAvx2:
      return avx2();
    default:
      return sse42();
  }
}

template <class Table>
const Table& pick_kernels(const Table& (*native)()) {
  simd_path();  // validates ATTNLAB_SIMD
  return native();
}

}  // namespace detail
}  // namespace attnlab

// ATTNLAB_DECLARE_KERNELS(Table, getter), at namespace attnlab scope, declares the getter a
// kernel file defines in each path's namespace; ATTNLAB_KERNELS(getter) returns the table of the
// running path. A kernel file defines, inside namespace attnlab::ATTNLAB_ARCH,
//   const Table& getter() { static constexpr Table kTable{...}; return kTable; }
#if defined(ATTNLAB_DISPATCH)
#define ATTNLAB_DECLARE_KERNELS(Table, getter) \
  namespace sse42 {                            \
  const Table& getter();                       \
  }                                            \
  namespace avx2 {                             \
  const Table& getter();                       \
  }                                            \
  namespace avx512 {                           \
  const Table& getter();                       \
  }
#define ATTNLAB_KERNELS(getter)    \
  ::attnlab::detail::pick_kernels( \
      &::attnlab::sse42::getter, &::attnlab::avx2::getter, &::attnlab::avx512::getter)
#else
#define ATTNLAB_DECLARE_KERNELS(Table, getter) \
  namespace native {                           \
  const Table& getter();                       \
  }
#define ATTNLAB_KERNELS(getter) ::attnlab::detail::pick_kernels(&::attnlab::native::getter)
#endif
