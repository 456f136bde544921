#include "core/parallel.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.hpp"

namespace attnlab {
namespace {

thread_local bool t_in_parallel = false;

std::atomic<int> g_num_threads{available_cores()};

#ifdef ATTNLAB_THREADS
class ThreadPool {
 public:
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

  // Runs task(i) for i in [0, n): the caller runs i = 0, worker j runs i = j + 1.
  // Returns false (and runs nothing) if another thread is using the pool.
  bool run(int n, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> run_lock(run_mutex_, std::try_to_lock);
    if (!run_lock.owns_lock())
      return false;
    ensure_workers(n - 1);
    task_ = &task;
    tasks_ = n;
    error_ = nullptr;
    // Every worker acknowledges every generation (idle ones without work), so no worker can lag
    // a generation behind and read the next job's fields as if they were this one's.
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_one(0);
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins > 2000)
        std::this_thread::yield();
    }
    task_ = nullptr;
    if (error_)
      std::rethrow_exception(error_);
    return true;
  }

 private:
  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int index = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, index] { worker_loop(index); });
    }
  }

  void run_one(int i) {
    t_in_parallel = true;
    try {
      (*task_)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_)
        error_ = std::current_exception();
    }
    t_in_parallel = false;
  }

  void worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      // Spin for kSpin (cheap hand-offs between consecutive kernels), then sleep. A training step
      // runs hundreds of parallel regions separated by short serial stretches (the tape, small
      // ops): a worker asleep by the next region is woken through the kernel and arrives late,
      // and the caller waits for it. Spinning 56 us instead of 5.6 us took a two-thread ML-1M
      // batch from 142 to 133 ms (4 alternated pairs, 0.93x) and its epoch's two-thread
      // speedup from 1.53x to 1.66x; 560 us gained nothing more (docs/benchmarks.md). A time,
      // not a count, so that slow runs (valgrind, TSan) do not spin for longer.
      constexpr auto kSpin = std::chrono::microseconds(56);
      const auto spin_until = std::chrono::steady_clock::now() + kSpin;
      uint64_t gen = generation_.load(std::memory_order_acquire);
      for (int spins = 1; gen == seen; ++spins) {
        gen = generation_.load(std::memory_order_acquire);
        if (spins % 1024 == 0 && std::chrono::steady_clock::now() >= spin_until)
          break;
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        gen = generation_.load(std::memory_order_acquire);
      }
      seen = gen;
      if (stop_flag())
        return;
      if (index < tasks_)
        run_one(index);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  bool stop_flag() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stop_;
  }

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one parallel_for at a time; others run serially
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* task_ = nullptr;
  int tasks_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

ThreadPool& pool() {
  static ThreadPool p;
  return p;
}
#endif

}  // namespace

void set_num_threads(int n) {
  ATTNLAB_CHECK(n >= 1, ValueError, "set_num_threads: need at least 1 thread, got ", n);
  g_num_threads.store(n);
}

int num_threads() {
  return g_num_threads.load(std::memory_order_relaxed);
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

bool in_parallel_region() {
  return t_in_parallel;
}

namespace detail {

void parallel_for_impl(int64_t begin,
                       int64_t end,
                       int64_t grain,
                       void (*body)(void* ctx, int64_t lo, int64_t hi),
                       void* ctx) {
  const int64_t n = end - begin;
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int chunks = static_cast<int>(std::min<int64_t>(num_threads(), max_chunks));
  // Chunk c covers [begin + c*n/chunks, begin + (c+1)*n/chunks): contiguous and balanced.
  auto chunk = [&](int c) {
    const int64_t lo = begin + n * c / chunks, hi = begin + n * (c + 1) / chunks;
    if (hi > lo)
      body(ctx, lo, hi);
  };
#ifdef ATTNLAB_THREADS
  if (chunks > 1) {
    const std::function<void(int)> task = chunk;
    if (pool().run(chunks, task))
      return;
  }
#endif
  for (int c = 0; c < chunks; ++c) chunk(c);
}

}  // namespace detail
}  // namespace attnlab
