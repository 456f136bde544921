#include "experiments/support/shadow_log.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/core.hpp"
#include "core/file_io.hpp"

namespace attnlab::cli {
namespace {

const char* const kHeader =
    "step,epoch,batch,what,name,cosine,relative_error,approx_norm,exact_norm";

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

void add_row(std::ostringstream& os,
             const rec::ShadowRecord& r,
             const char* what,
             const rec::Agreement& a) {
  os << r.step << "," << r.epoch << "," << r.batch << "," << what << "," << a.name << ","
     << number(a.cosine) << "," << number(a.relative_error) << "," << number(a.approx_norm) << ","
     << number(a.exact_norm) << "\n";
}

}  // namespace

void truncate_shadow_log(const std::string& path, int64_t epoch) {
  const int columns = 9;
  keep_lines_atomic(path, std::string(kHeader) + "\n", [&](const std::string& line) {
    long long step = 0, line_epoch = 0;
    const bool whole = std::count(line.begin(), line.end(), ',') == columns - 1 && !line.empty() &&
                       line.back() != ',';
    return whole && std::sscanf(line.c_str(), "%lld,%lld,", &step, &line_epoch) == 2 &&
           line_epoch >= 1 && line_epoch < epoch;
  });
}

ShadowLog::ShadowLog(std::string path, bool resume) : path_(std::move(path)), resume_(resume) {}

void ShadowLog::open(int64_t first_epoch) {
  const bool existing = resume_ && std::ifstream(path_).good();
  if (existing)
    truncate_shadow_log(path_, first_epoch);
  out_.open(path_, existing ? std::ios::app : std::ios::trunc);
  ATTNLAB_CHECK(out_.good(), IOError, "train: cannot open the shadow log '", path_, "'");
  if (!existing)
    out_ << kHeader << "\n";
}

void ShadowLog::write(const rec::ShadowRecord& r) {
  if (path_.empty())
    return;
  if (!out_.is_open())
    open(r.epoch);
  std::ostringstream os;
  os << r.step << "," << r.epoch << "," << r.batch << ",loss,loss,,"
     << number(r.loss_relative_error) << "," << number(r.loss) << "," << number(r.exact_loss)
     << "\n";
  add_row(os, r, "all", r.all);
  for (const auto& a : r.layers) add_row(os, r, "layer", a);
  for (const auto& a : r.modules) add_row(os, r, "module", a);
  for (const auto& a : r.parameters) add_row(os, r, "parameter", a);
  for (const auto& a : r.attention) add_row(os, r, "attention", a);
  for (const auto& a : r.attention_local) add_row(os, r, "attention_local", a);
  out_ << os.str() << std::flush;
  ATTNLAB_CHECK(out_.good(), IOError, "train: cannot write the shadow log '", path_, "'");
}

}  // namespace attnlab::cli
