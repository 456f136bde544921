#include "core/pool.hpp"

#include <cstdlib>
#include <mutex>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ATTNLAB_POOL_BYPASS 1
#endif

namespace attnlab::detail {
namespace {

constexpr std::size_t kClassBytes = 64;      // block sizes are multiples of one cache line
constexpr std::size_t kClasses = 32;         // up to 2 KiB; larger requests go to malloc
constexpr std::size_t kSlabBytes = 1 << 18;  // blocks are carved from 256 KiB slabs
constexpr std::size_t kRefill = 256;         // blocks taken from the global reserve at once

std::size_t size_class(std::size_t bytes) {
  return (bytes + kClassBytes - 1) / kClassBytes - 1;
}

#ifndef ATTNLAB_POOL_BYPASS
// Blocks are never given back to malloc: a block may be freed on another thread than the one
// that carved it, so slabs must outlive every thread. Free blocks of finished threads wait here
// for other threads; the pool's footprint is therefore the peak of live blocks, not more.
struct GlobalReserve {
  std::mutex mutex;
  std::vector<void*> lists[kClasses];
};
GlobalReserve& reserve() {
  static GlobalReserve* r = new GlobalReserve;  // never destroyed: threads may exit after main
  return *r;
}

// Per-class free lists plus the slab being carved. Consecutive allocations of one class are
// adjacent in memory, so a graph's nodes sit together and the backward sweep streams through
// them (worth ~40% of the tape's per-op time on a 40,000-node graph).
struct FreeLists {
  std::vector<void*> lists[kClasses];
  char* slab_next[kClasses] = {};
  char* slab_end[kClasses] = {};
};

// Trivially destructible thread-locals stay valid for the whole life of the thread; the owner
// object hands the free blocks to the global reserve when the thread finishes.
thread_local FreeLists* t_lists = nullptr;
thread_local bool t_lists_dead = false;

struct FreeListsOwner {
  FreeLists lists;
  FreeListsOwner() { t_lists = &lists; }
  ~FreeListsOwner() {
    GlobalReserve& r = reserve();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (std::size_t c = 0; c < kClasses; ++c) {
      r.lists[c].insert(r.lists[c].end(), lists.lists[c].begin(), lists.lists[c].end());
      // The unused rest of the current slab is abandoned (at most one slab per class).
    }
    t_lists = nullptr;
    t_lists_dead = true;
  }
};

FreeLists* free_lists() {
  if (!t_lists && !t_lists_dead) {
    thread_local FreeListsOwner owner;
  }
  return t_lists;
}

void* carve(FreeLists& l, std::size_t c) {
  {
    GlobalReserve& r = reserve();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto& global = r.lists[c];
    if (!global.empty()) {
      const std::size_t take = global.size() < kRefill ? global.size() : kRefill;
      l.lists[c].insert(l.lists[c].end(), global.end() - take, global.end());
      global.resize(global.size() - take);
    }
  }
  if (!l.lists[c].empty()) {
    void* p = l.lists[c].back();
    l.lists[c].pop_back();
    return p;
  }
  const std::size_t block = (c + 1) * kClassBytes;
  // Compared as a distance: `slab_next + block` on the initial null pointer would be undefined.
  if (l.slab_next[c] == nullptr ||
      static_cast<std::size_t>(l.slab_end[c] - l.slab_next[c]) < block) {
    char* slab = static_cast<char*>(std::malloc(kSlabBytes));
    if (!slab)
      throw std::bad_alloc();
    l.slab_next[c] = slab;
    l.slab_end[c] = slab + kSlabBytes;
  }
  void* p = l.slab_next[c];
  l.slab_next[c] += block;
  return p;
}
#endif

}  // namespace

void* pool_allocate(std::size_t bytes) {
#ifndef ATTNLAB_POOL_BYPASS
  const std::size_t c = size_class(bytes);
  if (c < kClasses) {
    if (FreeLists* lists = free_lists()) {
      auto& list = lists->lists[c];
      if (!list.empty()) {
        void* p = list.back();
        list.pop_back();
        return p;
      }
      return carve(*lists, c);
    }
    // This thread is shutting down (a static destructor allocating): use the global reserve.
    GlobalReserve& r = reserve();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (!r.lists[c].empty()) {
      void* p = r.lists[c].back();
      r.lists[c].pop_back();
      return p;
    }
    void* p = std::malloc((c + 1) * kClassBytes);  // joins the pool when freed
    if (!p)
      throw std::bad_alloc();
    return p;
  }
#endif
  void* p = std::malloc(bytes);
  if (!p)
    throw std::bad_alloc();
  return p;
}

void pool_deallocate(void* p, std::size_t bytes) noexcept {
#ifndef ATTNLAB_POOL_BYPASS
  const std::size_t c = size_class(bytes);
  if (c < kClasses) {
    try {
      if (FreeLists* lists = free_lists()) {
        lists->lists[c].push_back(p);
      } else {
        GlobalReserve& r = reserve();
        std::lock_guard<std::mutex> lock(r.mutex);
        r.lists[c].push_back(p);
      }
    } catch (...) {  // out of memory growing a list: the block is lost, not corrupted
    }
    return;
  }
#endif
  (void)bytes;
  std::free(p);
}

}  // namespace attnlab::detail
