// Plots of result tables through gnuplot, when it is installed (Debian: gnuplot-nox). The gnuplot
// script is always written next to the CSV it reads, so a plot can be re-made or edited later;
// without gnuplot the study prints a one-line notice and goes on.
#pragma once

#include <string>
#include <vector>

#include "experiments/support/table.hpp"

namespace attnlab::cli {

struct PlotSpec {
  std::string title;
  std::string x;                   // column for the x axis
  std::string y;                   // column for the y axis
  std::vector<std::string> group;  // one line per distinct combination of these columns
  bool log_x = false, log_y = false;
  std::string x_label, y_label;  // default: the column names
  std::string data;              // stem of the CSV to read (default: the plot's own stem)
};

// Writes <dir>/<stem>.gp for the table already written as <dir>/<data>.csv (Table::write; data
// defaults to stem) and, if gnuplot is on the PATH, renders <dir>/<stem>.png. Returns true if the
// PNG was made.
bool plot(const Table& table,
          const std::string& dir,
          const std::string& stem,
          const PlotSpec& spec);

bool gnuplot_available();

}  // namespace attnlab::cli
