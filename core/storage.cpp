#include "core/storage.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ATTNLAB_LARGE_BYPASS 1  // plain malloc: sanitizers see every buffer
#endif

namespace attnlab {
namespace {
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};

void track(int64_t delta) {
  const int64_t now = g_live.fetch_add(delta, std::memory_order_relaxed) + delta;
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

constexpr std::size_t kHugePage = std::size_t(2) << 20;

// Freed large mappings, by size, waiting for reuse.
//
// How much it may hold: the process's large mappings (live + cached) stay within
//   max(peak_live, live + limit),
// where peak_live is the most large-buffer bytes tensors have ever held at once. So the cache
// never makes the process bigger than its own peak need plus `limit` (the bound a plain
// `limit`-sized cache has), but a training step whose buffers exceed `limit` is still recycled
// whole from one step to the next: LISA-Base 8 x 128 at L = 200 spent 48 % of its time zeroing
// fresh pages with a plain 1 GiB cache. A miss that would break the bound evicts cached blocks
// first. limit == 0 turns the cache off.
struct BufferCache {
  std::mutex mutex;
  std::multimap<std::size_t, void*> blocks;
  std::size_t bytes = 0;      // cached
  std::size_t live = 0;       // large mappings held by tensors
  std::size_t peak_live = 0;  // high-water mark of live
  std::size_t limit = default_limit();
  std::size_t budget() const { return limit == 0 ? 0 : std::max(peak_live, live + limit); }
  void add_live(std::size_t n) {
    live += n;
    peak_live = std::max(peak_live, live);
  }
  // Unlinks the largest cached blocks until live + cached <= budget(); the caller unmaps them
  // outside the lock.
  std::vector<std::pair<std::size_t, void*>> evict_over_budget() {
    std::vector<std::pair<std::size_t, void*>> out;
    while (!blocks.empty() && live + bytes > budget()) {
      auto it = std::prev(blocks.end());
      out.emplace_back(it->first, it->second);
      bytes -= it->first;
      blocks.erase(it);
    }
    return out;
  }
  static std::size_t default_limit() {
    if (const char* env = std::getenv("ATTNLAB_BUFFER_CACHE_MB")) {
      try {
        return static_cast<std::size_t>(std::stoull(env)) << 20;
      } catch (...) {  // a malformed value: keep the default
      }
    }
    return std::size_t(1) << 30;
  }
};
BufferCache& cache() {
  static BufferCache* c = new BufferCache;  // never destroyed: tensors may outlive statics
  return *c;
}

void unmap_all(const std::vector<std::pair<std::size_t, void*>>& blocks) {
  for (const auto& [size, p] : blocks) ::munmap(p, size);
}

void* map_large(std::size_t bytes) {
  BufferCache& c = cache();
  std::vector<std::pair<std::size_t, void*>> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.blocks.find(bytes);
    if (it != c.blocks.end()) {
      void* p = it->second;
      c.blocks.erase(it);
      c.bytes -= bytes;
      c.add_live(bytes);
      return p;
    }
    c.add_live(bytes);  // a miss: a new mapping, within the bound once the cache makes room
    evicted = c.evict_over_budget();
  }
  unmap_all(evicted);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.live -= bytes;
    throw std::bad_alloc();
  }
  ::madvise(p, bytes, MADV_HUGEPAGE);  // advisory: ignored where THP is off
  return p;
}

void unmap_large(void* p, std::size_t bytes) {
  BufferCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.live -= bytes;
    if (c.live + c.bytes + bytes <= c.budget()) {
      c.blocks.emplace(bytes, p);
      c.bytes += bytes;
      return;
    }
  }
  ::munmap(p, bytes);
}

void* align_up(void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<void*>((a + kTensorAlignment - 1) & ~(kTensorAlignment - 1));
}
// The machine's physical memory in bytes (0 if unknown).
std::size_t physical_memory_bytes() {
  static const std::size_t bytes = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page)
                                 : std::size_t{0};
  }();
  return bytes;
}

}  // namespace

Storage::Storage(std::size_t nbytes) : nbytes_(nbytes) {
  if (nbytes == 0)
    return;
  // A buffer larger than the machine's memory can only fail (or be overcommitted and fault
  // later): say so with the size instead of a bare std::bad_alloc (sizes typed by users: --dim,
  // --lengths, ...). Same message with or without sanitizers.
  const std::size_t physical = physical_memory_bytes();
  if (physical > 0 && nbytes > physical) {
    throw ValueError("out of memory: a tensor of " + std::to_string(nbytes / 1048576) +
                     " MiB does not fit in this machine's " + std::to_string(physical / 1048576) +
                     " MiB");
  }
  if (nbytes <= kInlineBytes) {
    data_ = align_up(inline_);
#ifndef ATTNLAB_LARGE_BYPASS
  } else if (nbytes >= kLargeBytes) {
    mapped_ = (nbytes + kHugePage - 1) / kHugePage * kHugePage;
    heap_ = map_large(mapped_);
    data_ = heap_;
#endif
  } else {
    // Rounded up to whole 64-byte lines: SIMD kernels may read a full vector past the last
    // element without leaving the allocation.
    const std::size_t padded =
        (nbytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    heap_ = std::malloc(padded + kTensorAlignment);
    if (!heap_)
      throw std::bad_alloc();
    data_ = align_up(heap_);
  }
  track(static_cast<int64_t>(nbytes));
}

Storage::~Storage() {
  if (!data_)
    return;
  if (mapped_) {
    unmap_large(heap_, mapped_);
  } else {
    std::free(heap_);
  }
  track(-static_cast<int64_t>(nbytes_));
}

MemoryStats memory_stats() {
  return {g_live.load(), g_peak.load()};
}

void reset_peak_memory() {
  g_peak.store(g_live.load());
}

void set_buffer_cache_limit(std::size_t bytes) {
  BufferCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.limit = bytes;
  c.peak_live = c.live;  // a new budget: forget the earlier peak, as reset_peak_memory() does
  unmap_all(c.evict_over_budget());
}

std::size_t buffer_cache_bytes() {
  BufferCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.bytes;
}

void release_buffer_cache() {
  BufferCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [size, p] : c.blocks) ::munmap(p, size);
  c.blocks.clear();
  c.bytes = 0;
}

}  // namespace attnlab
