// The studies of `attnlab approx` (approx.cpp: the command and the FAVOR+ study;
// approx_lisa.cpp: the LISA study).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/support/cli.hpp"

namespace attnlab::approx {

struct LisaStudyOptions {
  std::vector<std::string> codebooks;   // "BxW" each
  std::vector<std::string> selections;  // soft, st, gumbel-soft, gumbel-st
  std::vector<double> taus;
  int64_t length = 256;
  int64_t dim = 32;
  int64_t samples = 3;
  double decay = 0.1;
};

// Runs the LISA study and prints / writes its table (approx_lisa.csv in --out).
int run_lisa_study(const cli::Parser& parser, const LisaStudyOptions& options);

}  // namespace attnlab::approx
