#include "experiments/support/train_report.hpp"

#include <cstdio>

#include "core/core.hpp"
#include "experiments/support/table.hpp"

namespace attnlab::cli {
namespace {

void add_metrics(JsonLine& line, const std::string& prefix, const rec::RankingMetrics& m) {
  line.fixed(prefix + "_hr10", m.hr10, 6).fixed(prefix + "_ndcg10", m.ndcg10, 6);
  line.fixed(prefix + "_tie_rate", m.tie_rate, 6)
      .integer(prefix + "_non_finite_users", m.non_finite_users);
  if (m.full_hr10 >= 0) {
    line.fixed(prefix + "_full_hr10", m.full_hr10, 6)
        .fixed(prefix + "_full_ndcg10", m.full_ndcg10, 6)
        .fixed(prefix + "_full_tie_rate", m.full_tie_rate, 6);
  }
}

}  // namespace

std::string epoch_log_line(const rec::EpochLog& e) {
  JsonLine line;
  line.integer("epoch", e.epoch)
      .fixed("loss", e.loss, 6)
      .fixed("seconds", e.seconds, 3)
      .fixed("sequences_per_second", e.sequences_per_second, 1);
  if (e.evaluated)
    add_metrics(line, "valid", e.valid);
  return line.str();
}

void truncate_epoch_log(const std::string& path, int64_t last_epoch) {
  // No log yet (the first run had no --log) stays so.
  keep_lines_atomic(path, "", [&](const std::string& line) {
    long long epoch = 0;
    return std::sscanf(line.c_str(), "{\"epoch\": %lld,", &epoch) == 1 && epoch >= 1 &&
           epoch <= last_epoch && line.back() == '}';
  });
}

TrainingReport::TrainingReport(std::string log_path, bool resume, bool progress_bar)
    : log_path_(std::move(log_path)), resume_(resume), progress_bar_(progress_bar) {}

rec::TrainCallbacks TrainingReport::callbacks(
    std::function<void(const rec::EpochLog&)> on_evaluation) {
  rec::TrainCallbacks c;
  c.on_start = [this](int64_t resumed_epoch) {
    start(resumed_epoch);
  };
  c.on_batch = [this](const rec::BatchReport& b) {
    batch(b);
  };
  if (on_evaluation) {
    c.on_evaluation = [this, on_evaluation](const rec::EpochLog& e) {
      clear_bar();
      on_evaluation(e);
    };
  }
  c.on_epoch = [this](const rec::EpochLog& e) {
    epoch(e);
  };
  return c;
}

void TrainingReport::clear_bar() {
  if (bar_)
    bar_->clear();
  bar_.reset();
}

// The log: new, or on --resume cut back to the checkpoint's epoch and appended to.
void TrainingReport::start(int64_t resumed_epoch) {
  if (log_path_.empty())
    return;
  remove_stale_temp_files(log_path_);  // of a run killed in the middle of a truncation
  if (resume_)
    truncate_epoch_log(log_path_, resumed_epoch);
  log_.open(log_path_, resume_ ? std::ios::app : std::ios::trunc);
  ATTNLAB_CHECK(log_.good(), IOError, "train: cannot open the log '", log_path_, "'");
}

void TrainingReport::batch(const rec::BatchReport& b) {
  if (!progress_bar_)
    return;
  if (b.batch == 1) {
    bar_ = std::make_unique<Progress>(
        b.batches, "epoch " + std::to_string(b.epoch) + "/" + std::to_string(b.epochs));
  }
  char note[64];
  std::snprintf(note, sizeof note, "loss %.4f  %.0f seq/s", b.mean_loss, b.sequences_per_second);
  bar_->step(1, note);
}

// Before the epoch's checkpoint: a kill between the two leaves a log line past the checkpoint,
// which the resumed run truncates and repeats (never a missing line).
void TrainingReport::epoch(const rec::EpochLog& e) {
  clear_bar();
  if (!log_.is_open())
    return;
  log_ << epoch_log_line(e) << "\n";
  log_.flush();
}

}  // namespace attnlab::cli
