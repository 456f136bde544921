// The data of a plot: a CSV table as text cells (read from a file, or taken from a Table), the
// rows a plot keeps (--where) and its series (one per distinct value of the group columns).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "experiments/support/svg_plot.hpp"
#include "experiments/support/table.hpp"

namespace attnlab::cli {

struct TextTable {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;  // one cell per column
};

// RFC 4180 as Table::csv writes it: comma-separated, CRLF or LF line ends, fields in double quotes
// when they hold a comma, a quote ("" inside) or a line break. IOError naming `source` (and the
// line) for an unterminated quote, a row with another number of fields than the header, or no
// header.
TextTable parse_csv(const std::string& text, const std::string& source);
// parse_csv of a file's text; IOError when it cannot be read.
TextTable read_csv(const std::string& path);
// A Table's cells as text, as Table::csv prints them, but with a number whose printed decimals
// change it by more than 0.1 % at 9 significant digits (so 0.0004 printed as "0.000" stays > 0 on
// a log axis).
TextTable text_table(const Table& table);

// A cell as a number: the whole cell (spaces around allowed) must be one finite number; anything
// else ("-", "", "nan", "inf", words) gives NaN, a missing value.
double cell_number(const std::string& cell);

struct SeriesQuery {
  std::string x, y;                                        // columns
  std::vector<std::string> group;                          // one series per distinct combination
  std::vector<std::pair<std::string, std::string>> where;  // keep rows whose cells equal these
};

// The series of `query` in first-appearance order, named "col=value col=value" (the y column when
// there is no group). ValueError (naming `source`) for an unknown column, no row left after
// `where`, or no numeric x in the rows left.
std::vector<SvgSeries> select_series(const TextTable& table,
                                     const SeriesQuery& query,
                                     const std::string& source);

}  // namespace attnlab::cli
