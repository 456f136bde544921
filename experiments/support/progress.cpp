#include "experiments/support/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace attnlab::cli {

Progress::Progress(int64_t total, std::string label)
    : total_(std::max<int64_t>(total, 1)),
      label_(std::move(label)),
      enabled_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (enabled_ && done_ > 0)
    std::fprintf(stderr, "\n");
}

void Progress::clear() {
  if (enabled_ && done_ > 0)
    std::fprintf(stderr, "\r%s\r", std::string(160, ' ').c_str());
  done_ = 0;
}

void Progress::step(int64_t n, const std::string& note) {
  done_ = std::min(total_, done_ + n);
  if (!enabled_)
    return;
  const auto now = std::chrono::steady_clock::now();
  // Redraw at most 10 times a second (and always at the end): drawing is not free on slow ttys.
  if (done_ < total_ && now - last_draw_ < std::chrono::milliseconds(100))
    return;
  last_draw_ = now;
  draw(note);
}

void Progress::draw(const std::string& note) {
  constexpr int kWidth = 30;
  const double frac = static_cast<double>(done_) / static_cast<double>(total_);
  const int filled = static_cast<int>(frac * kWidth);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = done_ > 0 ? elapsed * static_cast<double>(total_ - done_) / done_ : 0.0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr,
               "\r%s [%s] %lld/%lld  %.0fs elapsed, ~%.0fs left  %-40.40s",
               label_.c_str(),
               bar.c_str(),
               static_cast<long long>(done_),
               static_cast<long long>(total_),
               elapsed,
               eta,
               note.c_str());
  std::fflush(stderr);
}

}  // namespace attnlab::cli
