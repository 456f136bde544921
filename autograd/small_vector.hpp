// SmallVec and Span: the per-node containers of the engine. Most nodes have one or two inputs and
// one output; keeping those inline (no heap allocation) and the containers compact (16 bytes of
// bookkeeping each) is most of what makes recording an op cheap (see `attnlab bench tape`).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

namespace attnlab::ag {

// A read-only view of a contiguous sequence (std::span is C++20).
template <class T>
class Span {
 public:
  Span() = default;
  Span(const T* data, std::size_t size) : data_(data), size_(size) {}
  Span(const std::vector<T>& v) : data_(v.data()), size_(v.size()) {}  // NOLINT: implicit
  const T& operator[](std::size_t i) const { return data_[i]; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  std::vector<T> vec() const { return std::vector<T>(begin(), end()); }

 private:
  const T* data_ = nullptr;
  std::size_t size_ = 0;
};

// A vector whose first N elements live inline; beyond N all elements move to one heap array.
// T must be default-constructible and movable.
template <class T, std::size_t N>
class SmallVec {
 public:
  SmallVec() = default;
  SmallVec(std::initializer_list<T> init) {
    for (const T& v : init) push_back(v);
  }
  SmallVec(SmallVec&& o) noexcept { take(std::move(o)); }
  SmallVec& operator=(SmallVec&& o) noexcept {
    if (this != &o) {
      clear();
      take(std::move(o));
    }
    return *this;
  }
  SmallVec(const SmallVec& o) {
    for (const T& v : o) push_back(v);
  }
  SmallVec& operator=(const SmallVec& o) {
    if (this != &o) {
      clear();
      for (const T& v : o) push_back(v);
    }
    return *this;
  }
  ~SmallVec() = default;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return heap_ ? heap_.get() : inline_.data(); }
  const T* data() const { return heap_ ? heap_.get() : inline_.data(); }
  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }
  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  Span<T> span() const { return {data(), size_}; }

  void push_back(T v) {
    if (size_ == capacity())
      grow();
    data()[size_++] = std::move(v);
  }
  void assign(std::size_t n, const T& value) {
    clear();
    for (std::size_t i = 0; i < n; ++i) push_back(value);
  }
  void clear() {
    for (std::size_t i = 0; i < size_ && i < N; ++i) inline_[i] = T();
    heap_.reset();
    heap_capacity_ = 0;
    size_ = 0;
  }

 private:
  std::size_t capacity() const { return heap_ ? heap_capacity_ : N; }
  void grow() {
    const std::size_t cap = 2 * capacity() + 1;
    std::unique_ptr<T[]> bigger(new T[cap]);
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move(data()[i]);
    if (!heap_) {
      for (std::size_t i = 0; i < size_ && i < N; ++i) inline_[i] = T();
    }
    heap_ = std::move(bigger);
    heap_capacity_ = static_cast<uint32_t>(cap);
  }
  void take(SmallVec&& o) {
    if (o.heap_) {
      heap_ = std::move(o.heap_);
      heap_capacity_ = o.heap_capacity_;
    } else {
      for (std::size_t i = 0; i < o.size_; ++i) inline_[i] = std::move(o.inline_[i]);
    }
    size_ = o.size_;
    o.clear();
  }

  std::array<T, N> inline_{};
  std::unique_ptr<T[]> heap_;
  uint32_t heap_capacity_ = 0;
  uint32_t size_ = 0;
};

}  // namespace attnlab::ag
