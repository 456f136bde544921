#include "experiments/support/table.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <sstream>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace attnlab::cli {

std::string Cell::str() const {
  if (!is_number)
    return text;
  if (std::isnan(number))
    return "nan";
  if (std::isinf(number))
    return number > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, scientific ? "%.*e" : "%.*f", decimals, number);
  return buf;
}

Table::Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}

void Table::add_row(std::vector<Cell> cells) {
  ATTNLAB_CHECK(cells.size() == columns_.size(),
                ValueError,
                "Table::add_row: ",
                cells.size(),
                " cells for ",
                columns_.size(),
                " columns");
  rows_.push_back(std::move(cells));
}

void Table::print(std::ostream& os) const {
  std::vector<std::size_t> width(columns_.size());
  for (std::size_t c = 0; c < columns_.size(); ++c) width[c] = columns_[c].size();
  for (const auto& r : rows_) {
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].str().size());
  }
  auto line = [&](const std::vector<std::string>& cells, const std::vector<bool>& right) {
    std::string out;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      out += right[c] ? pad + cells[c] : cells[c] + pad;
      if (c + 1 < cells.size())
        out += "  ";
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    os << out << '\n';
  };
  std::vector<bool> numeric(columns_.size(), false);
  for (const auto& r : rows_) {
    for (std::size_t c = 0; c < r.size(); ++c) numeric[c] = numeric[c] || r[c].is_number;
  }
  line(columns_, numeric);
  std::vector<std::string> rule;
  for (std::size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule, numeric);
  for (const auto& r : rows_) {
    std::vector<std::string> cells;
    for (const Cell& c : r) cells.push_back(c.str());
    line(cells, numeric);
  }
}

namespace {
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos)
    return s;
  std::string o = "\"";
  for (char ch : s) o += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return o + "\"";
}
std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\t':
        o += "\\t";
        break;
      case '\r':
        o += "\\r";
        break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          o += buf;
        } else {
          o += static_cast<char>(ch);
        }
    }
  }
  return o + "\"";
}
// The shortest text that reads back as the same double (0.1, not 0.10000000000000001): JSON
// keeps full precision without the noise digits.
std::string json_number(double v) {
  char buf[64];
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {  // integers as integers, not 1e+03
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  return buf;
}
}  // namespace

std::string Table::csv() const {
  std::ostringstream os;
  for (std::size_t c = 0; c < columns_.size(); ++c) os << (c ? "," : "") << csv_field(columns_[c]);
  os << "\r\n";
  for (const auto& r : rows_) {
    for (std::size_t c = 0; c < r.size(); ++c) os << (c ? "," : "") << csv_field(r[c].str());
    os << "\r\n";
  }
  return os.str();
}

JsonLine& JsonLine::field(const std::string& key, const std::string& json_value) {
  body_ += (body_.empty() ? "" : ", ") + json_string(key) + ": " + json_value;
  return *this;
}
JsonLine& JsonLine::integer(const std::string& key, int64_t value) {
  return field(key, std::to_string(value));
}
JsonLine& JsonLine::fixed(const std::string& key, double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return field(key, buf);
}
JsonLine& JsonLine::number(const std::string& key, double value) {
  return field(key, std::isfinite(value) ? json_number(value) : std::string("null"));
}
JsonLine& JsonLine::text(const std::string& key, const std::string& value) {
  return field(key, json_string(value));
}

std::string Table::jsonl() const {
  std::string out;
  for (const auto& r : rows_) {
    JsonLine line;
    for (std::size_t c = 0; c < r.size(); ++c) {
      if (r[c].is_number)
        line.number(columns_[c], r[c].number);
      else
        line.text(columns_[c], r[c].text);
    }
    out += line.str() + "\n";
  }
  return out;
}

void make_directories(const std::string& dir) {
  if (dir.empty())
    return;
  std::string partial;
  std::stringstream ss(dir);
  std::string part;
  if (dir[0] == '/')
    partial = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty())
      continue;
    partial += part + "/";
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      throw IOError("cannot create directory '" + partial + "': " + std::strerror(errno));
    }
  }
}

void Table::write(const std::string& dir, const std::string& stem) const {
  make_directories(dir);
  write_file_atomic(dir + "/" + stem + ".csv", csv());
  write_file_atomic(dir + "/" + stem + ".jsonl", jsonl());
}

}  // namespace attnlab::cli
