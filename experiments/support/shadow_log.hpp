// The shadow-gradient log of `attnlab train --shadow KIND --shadow-log FILE`: a CSV in long form,
// one row per compared quantity of every shadow step (layers/recommender/gradient_shadow.hpp):
//   step,epoch,batch,what,name,cosine,relative_error,approx_norm,exact_norm
// `what` is loss (approx_norm and exact_norm hold the two losses, cosine is empty), all (every
// gradient as one vector), layer, module, parameter, attention (a layer's output, end to end) or
// attention_local (the approximation on the exact model's inputs to that layer). The rows of
// a shadow step are flushed together. On --resume the file keeps only the rows of the epochs
// before the first one the resumed run repeats (and drops a line torn by a kill).
#pragma once

#include <fstream>
#include <string>

#include "layers/recommender/gradient_shadow.hpp"

namespace attnlab::cli {

class ShadowLog {
 public:
  ShadowLog(std::string path, bool resume);
  // Opens the file on the first record (cut back to the epochs before it on --resume).
  void write(const rec::ShadowRecord& r);

 private:
  void open(int64_t first_epoch);
  std::string path_;
  bool resume_;
  std::ofstream out_;
};

// The rows of `path` (a shadow log) of epochs before `epoch`, header first; torn lines dropped.
void truncate_shadow_log(const std::string& path, int64_t epoch);

}  // namespace attnlab::cli
