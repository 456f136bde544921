// Storage: one 64-byte-aligned buffer, shared between tensors (reshape shares it; clone copies).
// Every allocation goes through here, so the live and peak byte counts of all tensors are known:
// tests use them to prove memory is released, benchmarks to report peak memory per kernel.
//
// Three size classes:
//   - up to kInlineBytes: inside the Storage object itself (one allocation instead of two for the
//     scalars and tiny tensors that dominate a tape's bookkeeping);
//   - up to kLargeBytes: malloc, aligned by hand (glibc's memalign path is several times slower);
//   - larger: mmap with MADV_HUGEPAGE, and freed blocks are kept in a bounded cache for reuse.
//     First-touch page faults are the dominant cost of a fresh buffer on VMs (measured here:
//     230 ms to fill a new 64 MiB buffer with 4 KiB pages, 5 ms with huge pages, 0 from the
//     cache), and training loops allocate the same shapes every step.
#pragma once

#include <cstddef>
#include <cstdint>

namespace attnlab {

constexpr std::size_t kTensorAlignment = 64;

class Storage {
 public:
  static constexpr std::size_t kInlineBytes = 64;
  static constexpr std::size_t kLargeBytes = std::size_t(1) << 20;

  explicit Storage(std::size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }

 private:
  void* data_ = nullptr;
  void* heap_ = nullptr;    // what to free (null for inline buffers)
  std::size_t mapped_ = 0;  // > 0: heap_ is a large mapping of this many bytes
  std::size_t nbytes_ = 0;
  // Room for kInlineBytes at a 64-byte boundary wherever the object itself lands.
  unsigned char inline_[kInlineBytes + kTensorAlignment - 1];
};

struct MemoryStats {
  int64_t live_bytes;  // bytes held by tensors right now
  int64_t peak_bytes;  // high-water mark of live_bytes since the last reset_peak_memory()
};
MemoryStats memory_stats();
// Sets the peak to the current live bytes, so that the next peak measures one region of code.
void reset_peak_memory();

// The cache of freed large buffers: its byte limit (default 1 GiB, or the environment variable
// ATTNLAB_BUFFER_CACHE_MB; 0 turns the cache off), current size, and a way to return everything
// to the OS. Live plus cached large buffers stay within max(peak live, live + limit): the cache
// holds at most `limit` beyond what the process has already needed at once, and a training step
// larger than `limit` is still recycled whole. set_buffer_cache_limit also forgets the earlier
// peak (the bound restarts from the live bytes). Cached bytes are not tensor bytes:
// memory_stats() does not count them, the process's RSS does.
void set_buffer_cache_limit(std::size_t bytes);
std::size_t buffer_cache_bytes();
void release_buffer_cache();

}  // namespace attnlab
