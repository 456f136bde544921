#include "experiments/support/plot.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace attnlab::cli {
namespace {

std::size_t column_index(const Table& t, const std::string& name) {
  const auto& cols = t.columns();
  const auto it = std::find(cols.begin(), cols.end(), name);
  ATTNLAB_CHECK(it != cols.end(), ValueError, "plot: no column '", name, "' in the table");
  return static_cast<std::size_t>(it - cols.begin());
}

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) o += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return o + "\"";
}

}  // namespace

bool gnuplot_available() {
  return std::system("command -v gnuplot > /dev/null 2>&1") == 0;
}

bool plot(const Table& table,
          const std::string& dir,
          const std::string& stem,
          const PlotSpec& spec) {
  const std::size_t xi = column_index(table, spec.x), yi = column_index(table, spec.y);
  std::vector<std::size_t> gi;
  for (const auto& g : spec.group) gi.push_back(column_index(table, g));
  // The distinct groups, in first-appearance order, read back from the table's CSV text.
  std::vector<std::vector<std::string>> groups;
  std::istringstream csv(table.csv());
  std::string line;
  std::getline(csv, line);  // header
  while (std::getline(csv, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    std::vector<std::string> key;
    for (std::size_t g : gi) key.push_back(g < cells.size() ? cells[g] : "");
    if (std::find(groups.begin(), groups.end(), key) == groups.end())
      groups.push_back(key);
  }
  std::ostringstream gp;
  gp << "# Made by attnlab; re-render with: gnuplot " << stem << ".gp\n"
     << "set datafile separator \",\"\nset terminal pngcairo size 900,600 noenhanced\n"
     << "set output " << quote(stem + ".png") << "\nset title " << quote(spec.title) << "\n"
     << "set xlabel " << quote(spec.x_label.empty() ? spec.x : spec.x_label) << "\n"
     << "set ylabel " << quote(spec.y_label.empty() ? spec.y : spec.y_label) << "\n"
     << "set key left top\nset grid\n";
  if (spec.log_x)
    gp << "set logscale x 2\n";
  if (spec.log_y)
    gp << "set logscale y\n";
  gp << "plot ";
  for (std::size_t k = 0; k < groups.size(); ++k) {
    std::string cond = "1", title;
    for (std::size_t j = 0; j < gi.size(); ++j) {
      cond += " && strcol(" + std::to_string(gi[j] + 1) + ") eq " + quote(groups[k][j]);
      title += (j ? " " : "") + spec.group[j] + "=" + groups[k][j];
    }
    gp << (k ? ", \\\n     " : "") << quote((spec.data.empty() ? stem : spec.data) + ".csv")
       << " every ::1 using " << xi + 1 << ":((" << cond << ") ? $" << yi + 1
       << " : 1/0) with linespoints title " << quote(title.empty() ? spec.y : title);
  }
  gp << "\n";
  write_file_atomic(dir + "/" + stem + ".gp", gp.str());
  if (!gnuplot_available()) {
    std::cerr << "note: gnuplot is not installed; wrote " << dir << "/" << stem
              << ".gp (install gnuplot-nox to get " << stem << ".png)\n";
    return false;
  }
  const std::string cmd = "cd " + quote(dir) + " && gnuplot " + quote(stem + ".gp") + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::cerr << "note: gnuplot failed on " << dir << "/" << stem << ".gp\n";
    return false;
  }
  return true;
}

}  // namespace attnlab::cli
