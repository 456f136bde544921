#include "experiments/support/plot_data.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace attnlab::cli {
namespace {

// Splits CSV text into rows of fields (quotes removed); `line` counts physical lines for errors.
std::vector<std::vector<std::string>> csv_records(const std::string& text,
                                                  const std::string& source) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false, any = false;
  int line = 1, quote_line = 0;
  auto end_record = [&] {
    fields.push_back(field);
    records.push_back(fields);
    fields.clear();
    field.clear();
    any = false;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        line += c == '\n';
        field += c;
      }
    } else if (c == '"') {
      quoted = any = true;
      quote_line = line;
    } else if (c == ',') {
      fields.push_back(field);
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')
        ++i;
      ++line;
      end_record();
    } else {
      field += c;
      any = true;
    }
  }
  ATTNLAB_CHECK(!quoted,
                IOError,
                "csv: ",
                source,
                ": the quote opened on line ",
                quote_line,
                " is never closed");
  if (any || !field.empty() || !fields.empty())
    end_record();
  return records;
}

std::size_t column_index(const TextTable& t, const std::string& name, const std::string& source) {
  const auto it = std::find(t.columns.begin(), t.columns.end(), name);
  if (it != t.columns.end())
    return static_cast<std::size_t>(it - t.columns.begin());
  std::string names;
  for (const auto& c : t.columns) names += (names.empty() ? "'" : ", '") + c + "'";
  throw ValueError("plot: no column '" + name + "' in " + source + " (columns: " + names + ")");
}

}  // namespace

TextTable parse_csv(const std::string& text, const std::string& source) {
  auto records = csv_records(text, source);
  // Blank lines (a trailing newline's empty record included) are no rows.
  records.erase(std::remove_if(records.begin(),
                               records.end(),
                               [](const auto& r) { return r.size() == 1 && r[0].empty(); }),
                records.end());
  ATTNLAB_CHECK(!records.empty(), IOError, "csv: ", source, ": empty (no header line)");
  TextTable t;
  t.columns = records[0];
  for (std::size_t r = 1; r < records.size(); ++r) {
    ATTNLAB_CHECK(records[r].size() == t.columns.size(),
                  IOError,
                  "csv: ",
                  source,
                  ": data row ",
                  r,
                  " has ",
                  records[r].size(),
                  " fields, the header ",
                  t.columns.size());
    t.rows.push_back(std::move(records[r]));
  }
  return t;
}

TextTable read_csv(const std::string& path) {
  return parse_csv(read_file(path), path);
}

TextTable text_table(const Table& table) {
  TextTable t;
  t.columns = table.columns();
  for (std::size_t r = 0; r < table.rows(); ++r) {
    std::vector<std::string> cells;
    for (const Cell& c : table.row(r)) {
      // The printed text ("0.500", as in the CSV and the legend) unless its rounding changed the
      // value by more than 0.1 % (0.0004 printed as "0.000"): then 9 significant digits.
      std::string text = c.str();
      const double printed = cell_number(text);
      if (c.is_number && std::isfinite(c.number) &&
          !(std::fabs(printed - c.number) <= 1e-3 * std::fabs(c.number))) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.9g", c.number);
        text = buf;
      }
      cells.push_back(std::move(text));
    }
    t.rows.push_back(std::move(cells));
  }
  return t;
}

double cell_number(const std::string& cell) {
  const std::size_t begin = cell.find_first_not_of(" \t");
  if (begin == std::string::npos)
    return NAN;
  const std::string text = cell.substr(begin, cell.find_last_not_of(" \t") + 1 - begin);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(v) ? v : NAN;
}

std::vector<SvgSeries> select_series(const TextTable& table,
                                     const SeriesQuery& query,
                                     const std::string& source) {
  const std::size_t xi = column_index(table, query.x, source);
  const std::size_t yi = column_index(table, query.y, source);
  std::vector<std::size_t> gi;
  for (const auto& g : query.group) gi.push_back(column_index(table, g, source));
  std::vector<std::pair<std::size_t, std::string>> filters;
  for (const auto& [column, value] : query.where)
    filters.emplace_back(column_index(table, column, source), value);
  std::vector<SvgSeries> series;
  std::size_t kept = 0, numeric_x = 0;
  for (const auto& row : table.rows) {
    if (!std::all_of(filters.begin(), filters.end(), [&](const auto& f) {
          return row[f.first] == f.second;
        }))
      continue;
    ++kept;
    std::string name;
    for (std::size_t j = 0; j < gi.size(); ++j)
      name += (j ? " " : "") + query.group[j] + "=" + row[gi[j]];
    if (gi.empty())
      name = query.y;
    auto it = std::find_if(
        series.begin(), series.end(), [&](const SvgSeries& s) { return s.name == name; });
    if (it == series.end())
      it = series.insert(series.end(), SvgSeries{name, {}, {}});
    it->x.push_back(cell_number(row[xi]));
    it->y.push_back(cell_number(row[yi]));
    numeric_x += std::isfinite(it->x.back()) ? 1 : 0;
  }
  ATTNLAB_CHECK(kept > 0,
                ValueError,
                "plot: no row of ",
                source,
                " is left to plot",
                query.where.empty() ? " (the table is empty)" : " after --where");
  ATTNLAB_CHECK(numeric_x > 0,
                ValueError,
                "plot: column '",
                query.x,
                "' of ",
                source,
                " has no numeric value in the ",
                kept,
                " rows plotted");
  return series;
}

}  // namespace attnlab::cli
