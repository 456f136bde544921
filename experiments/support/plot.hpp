// Plots of result tables. Every plot is always written as a self-contained SVG (svg_plot.hpp: no
// dependency), plus a gnuplot script next to the CSV it reads, so the plot can be re-made or
// edited in gnuplot later; when gnuplot is installed (Debian: gnuplot-nox) the script is also
// rendered to a PNG. Without gnuplot the study prints a one-line notice and goes on.
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
  int log_x_base = 2, log_y_base = 10;  // the bases of log axes: 2 or 10
  std::string x_label, y_label;         // default: the column names
  std::string data;                     // stem of the CSV to read (default: the plot's own stem)
};

// Writes <dir>/<stem>.svg (from `table` itself) and <dir>/<stem>.gp (for the table already written
// as <dir>/<data>.csv by Table::write; data defaults to stem) and, if gnuplot is on the PATH,
// renders <dir>/<stem>.png. Returns true if the PNG was made. A plot the SVG renderer refuses (a
// value <= 0 on a log axis, nothing numeric to draw) is a one-line notice on
// stderr, not an error: the study's tables are written already and matter more than the plot.
// An unknown column is a ValueError (a mistake in the study's code).
bool plot(const Table& table,
          const std::string& dir,
          const std::string& stem,
          const PlotSpec& spec);

bool gnuplot_available();

}  // namespace attnlab::cli
