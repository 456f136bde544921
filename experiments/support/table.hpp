// Results tables: what every study prints on stdout and writes to --out as CSV and JSON lines.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace attnlab::cli {

// One cell: text, or a number printed with a fixed number of decimals (JSON keeps it a number).
struct Cell {
  Cell(const char* t) : text(t) {}             // NOLINT: implicit on purpose
  Cell(std::string t) : text(std::move(t)) {}  // NOLINT
  Cell(double v, int decimals = 3) : number(v), is_number(true), decimals(decimals) {}  // NOLINT
  Cell(int v) : Cell(static_cast<int64_t>(v)) {}                                        // NOLINT
  Cell(int64_t v) : number(static_cast<double>(v)), is_number(true), decimals(0) {}     // NOLINT
  // A number printed in scientific notation with `digits` after the point (errors, tolerances).
  static Cell sci(double v, int digits = 2) {
    Cell c(v, digits);
    c.scientific = true;
    return c;
  }
  std::string text;
  double number = 0;
  bool is_number = false;
  int decimals = 0;
  bool scientific = false;
  std::string str() const;  // as printed
};

// One JSON object on one line, built field by field: the CLI's one JSON-lines writer (results
// tables and the training log). Keys and texts are escaped.
class JsonLine {
 public:
  JsonLine& integer(const std::string& key, int64_t value);
  // printf's %.<decimals>f (a fixed format: the training log's numbers).
  JsonLine& fixed(const std::string& key, double value, int decimals);
  // The shortest text that reads back as the same double; null when not finite (JSON has no NaN).
  JsonLine& number(const std::string& key, double value);
  JsonLine& text(const std::string& key, const std::string& value);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  JsonLine& field(const std::string& key, const std::string& json_value);
  std::string body_;
};

class Table {
 public:
  explicit Table(std::vector<std::string> columns);
  void add_row(std::vector<Cell> cells);  // one cell per column
  std::size_t rows() const { return rows_.size(); }
  const std::vector<Cell>& row(std::size_t i) const { return rows_.at(i); }
  const std::vector<std::string>& columns() const { return columns_; }

  void print(std::ostream& os) const;  // aligned; numbers right-aligned
  std::string csv() const;             // RFC 4180
  std::string jsonl() const;           // one JSON object per row
  // Writes <dir>/<stem>.csv and <dir>/<stem>.jsonl atomically (creates dir if needed).
  void write(const std::string& dir, const std::string& stem) const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<Cell>> rows_;
};

// Creates a directory (and its parents) if missing; IOError on failure.
void make_directories(const std::string& dir);

}  // namespace attnlab::cli
