#include "experiments/support/plot.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "experiments/support/plot_data.hpp"
#include "experiments/support/svg_plot.hpp"

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

// The distinct combinations of the group columns, in first-appearance order, as printed in the
// CSV the script reads (parsed as CSV: a quoted cell with a comma stays one cell).
std::vector<std::vector<std::string>> group_keys(const Table& table,
                                                 const std::vector<std::size_t>& gi) {
  std::vector<std::vector<std::string>> groups;
  for (const auto& row : parse_csv(table.csv(), "the table").rows) {
    std::vector<std::string> key;
    for (std::size_t g : gi) key.push_back(row[g]);
    if (std::find(groups.begin(), groups.end(), key) == groups.end())
      groups.push_back(key);
  }
  return groups;
}

std::string gnuplot_script(const Table& table, const std::string& stem, const PlotSpec& spec) {
  const std::size_t xi = column_index(table, spec.x), yi = column_index(table, spec.y);
  std::vector<std::size_t> gi;
  for (const auto& g : spec.group) gi.push_back(column_index(table, g));
  const auto groups = group_keys(table, gi);
  std::ostringstream gp;
  gp << "# Made by attnlab; re-render with: gnuplot " << stem << ".gp\n"
     << "set datafile separator \",\"\nset terminal pngcairo size 900,600 noenhanced\n"
     << "set output " << quote(stem + ".png") << "\nset title " << quote(spec.title) << "\n"
     << "set xlabel " << quote(spec.x_label.empty() ? spec.x : spec.x_label) << "\n"
     << "set ylabel " << quote(spec.y_label.empty() ? spec.y : spec.y_label) << "\n"
     << "set key left top\nset grid\n";
  if (spec.log_x)
    gp << "set logscale x " << spec.log_x_base << "\n";
  if (spec.log_y)
    gp << "set logscale y " << spec.log_y_base << "\n";
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
  return gp.str();
}

// Writes <dir>/<stem>.svg; false (and a notice) when the renderer refuses the data.
bool write_svg_plot(const Table& table,
                    const std::string& dir,
                    const std::string& stem,
                    const PlotSpec& spec) {
  SvgChart chart;
  chart.title = spec.title;
  chart.x = {
      spec.x_label.empty() ? spec.x : spec.x_label, spec.x, spec.log_x ? spec.log_x_base : 0};
  chart.y = {
      spec.y_label.empty() ? spec.y : spec.y_label, spec.y, spec.log_y ? spec.log_y_base : 0};
  const std::string path = dir + "/" + stem + ".svg";
  try {
    chart.series = select_series(text_table(table), {spec.x, spec.y, spec.group, {}}, stem);
    write_svg(path, chart);
    return true;
  } catch (const ValueError& e) {
    std::cerr << "note: no plot " << path << ": " << e.what() << "\n";
    return false;
  }
}

}  // namespace

bool gnuplot_available() {
  return std::system("command -v gnuplot > /dev/null 2>&1") == 0;
}

bool plot(const Table& table,
          const std::string& dir,
          const std::string& stem,
          const PlotSpec& spec) {
  const std::string script = gnuplot_script(table, stem, spec);  // checks the columns first
  const bool svg = write_svg_plot(table, dir, stem, spec);
  write_file_atomic(dir + "/" + stem + ".gp", script);
  if (!gnuplot_available()) {
    std::cerr << "note: " << (svg ? "wrote " + dir + "/" + stem + ".svg; " : std::string())
              << "gnuplot is not installed, so no " << stem << ".png (" << dir << "/" << stem
              << ".gp renders it where gnuplot is)\n";
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
