// A small thread pool for the kernels' coarse-grained parallel loops.
//
// Determinism: parallel_for splits [begin, end) into contiguous chunks, and every kernel computes
// each output element entirely inside one chunk with a fixed summation order, so results are
// bit-identical for any thread count. Kernels never split a reduction across threads unless they
// combine fixed-size blocks in a fixed order.
//
// Why a pool and not OpenMP: it keeps ThreadSanitizer usable (libgomp is not instrumented) and
// costs ~120 lines. Workers spin briefly before sleeping, so back-to-back kernels do not pay a
// futex wake-up each.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>

namespace attnlab {

// Threads used by kernels (default: available_cores()). n >= 1. More threads than cores is
// allowed (results are the same for any count) but slow: the workers spin while they wait.
void set_num_threads(int n);
int num_threads();
// The cores this process may run on: its CPU affinity mask (taskset, cgroup cpusets), else
// std::thread::hardware_concurrency(), at least 1.
int available_cores();
// True inside a parallel_for body: nested parallel_for calls then run serially.
bool in_parallel_region();

namespace detail {
// body(ctx, lo, hi) for each chunk. A plain function pointer, not std::function: parallel_for is
// also instantiated in the per-instruction-set kernel files, which must not emit std::function's
// shared out-of-line members (core/simd.hpp).
void parallel_for_impl(int64_t begin,
                       int64_t end,
                       int64_t grain,
                       void (*body)(void* ctx, int64_t lo, int64_t hi),
                       void* ctx);
}  // namespace detail

// Runs fn(chunk_begin, chunk_end) over [begin, end) split into at most num_threads() contiguous
// chunks of at least `grain` iterations each. Exceptions thrown by fn are rethrown here.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& fn) {
  if (end <= begin)
    return;
  if (grain < 1)
    grain = 1;
  if (end - begin <= grain || num_threads() == 1 || in_parallel_region()) {
    fn(begin, end);
    return;
  }
  using Body = std::remove_reference_t<F>;
  detail::parallel_for_impl(
      begin,
      end,
      grain,
      [](void* body, int64_t lo, int64_t hi) { (*static_cast<Body*>(body))(lo, hi); },
      const_cast<void*>(static_cast<const void*>(std::addressof(fn))));
}

}  // namespace attnlab
