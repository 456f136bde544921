// What `attnlab train` (and demo) show and write while a recommender trains, supplied to the
// trainer as callbacks (rec::TrainCallbacks): the progress bar (cli::Progress, on stderr when it is
// a terminal) and the JSON-lines epoch log (--log; one object per epoch, written with
// cli::JsonLine before the epoch's checkpoint, cut back to the checkpoint's epoch on --resume).
#pragma once

#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "experiments/support/progress.hpp"
#include "layers/recommender/seqrec_trainer.hpp"

namespace attnlab::cli {

// One epoch's log line: {"epoch": 3, "loss": 0.693147, "seconds": 1.234,
// "sequences_per_second": 812.5[, "valid_hr10": ..., ...]} (no newline).
std::string epoch_log_line(const rec::EpochLog& e);

class TrainingReport {
 public:
  // `log_path` "" writes no log; `resume`: the log is cut back to the resumed epoch, then appended.
  TrainingReport(std::string log_path, bool resume, bool progress_bar);
  // The callbacks: the bar per batch, the log line per epoch; `on_evaluation` (may be empty) runs
  // after each validation, the bar cleared first.
  rec::TrainCallbacks callbacks(std::function<void(const rec::EpochLog&)> on_evaluation = {});

 private:
  void start(int64_t resumed_epoch);
  void batch(const rec::BatchReport& b);
  void epoch(const rec::EpochLog& e);
  void clear_bar();
  std::string log_path_;
  bool resume_, progress_bar_;
  std::ofstream log_;
  std::unique_ptr<Progress> bar_;  // the current epoch's bar
};

// On --resume the log keeps exactly the epochs up to the checkpoint: a run killed after its last
// checkpoint had logged epochs that the resumed run repeats, and a kill in the middle of a write
// leaves a torn last line. Lines that are not a whole {"epoch": N, ...} object are dropped.
void truncate_epoch_log(const std::string& path, int64_t last_epoch);

}  // namespace attnlab::cli
