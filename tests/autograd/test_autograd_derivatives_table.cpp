// autograd/derivatives.md is the one table of backward formulas. This test reads the sources and
// fails when an op has no row there: every `Var name(...)` of autograd/ops.hpp, every custom op
// (the name() of each ag::Function subclass in autograd/ and layers/), every op name recorded
// with OpRecorder in layers/ and every output layers/ flags as not differentiable. It also fails
// when a row names an op that does not exist, or a file that does not exist or does not define
// the op.
#include <doctest/doctest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const std::string kRoot = ATTNLAB_SOURCE_DIR;
const std::string kTable = "autograd/derivatives.md";

std::string read_text(const std::string& relative) {
  std::ifstream in(kRoot + "/" + relative);
  REQUIRE_MESSAGE(in.good(), "cannot read ", relative);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

bool is_ident(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos)
    return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::string join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The source without its `//` comment lines (so examples in comments do not count).
std::string code_lines(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (trim(line).rfind("//", 0) != 0)
      out += line + "\n";
  }
  return out;
}

// Every .cpp and .hpp under `folder`, subfolders included (layers/ is split by concern).
std::vector<std::string> sources_in(const std::string& folder) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(kRoot + "/" + folder)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".cpp" || ext == ".hpp"))
      files.push_back(fs::relative(e.path(), kRoot).generic_string());
  }
  return files;
}

std::set<std::string> all_matches(const std::string& text, const std::regex& re, int group = 1) {
  std::set<std::string> found;
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it)
    found.insert((*it)[group].str());
  return found;
}

// ---- what the sources define --------------------------------------------------------------------

std::set<std::string> ops_hpp_functions() {
  static const std::regex decl(R"((?:^|\n)Var (\w+)\()");
  return all_matches(code_lines(read_text("autograd/ops.hpp")), decl);
}

// Every string literal of each `name() const override { return ...; }` (a ternary gives two),
// and for `return kName;` the literal of the file's `constexpr const char* kName = "..."` (or
// `const char* const`, `char kName[]`). A name that resolves to no literal is kept as
// "<unresolved NAME in FILE>", so that the row check fails on it instead of skipping the op.
std::set<std::string> function_subclass_names() {
  static const std::regex literal(R"re("(\w+)")re");
  static const std::regex constant(R"(return\s+([A-Za-z_]\w*)\s*$)");
  std::set<std::string> names;
  for (const char* folder : {"autograd", "layers"}) {
    for (const auto& file : sources_in(folder)) {
      const std::string code = code_lines(read_text(file));
      for (auto at = code.find("name() const override"); at != std::string::npos;
           at = code.find("name() const override", at + 1)) {
        const std::string body = code.substr(at, code.find(';', at) - at);
        for (const auto& n : all_matches(body, literal)) names.insert(n);
        for (const auto& c : all_matches(body, constant)) {
          const std::regex definition("char\\s*(?:\\*\\s*(?:const\\s+)?)?" + c +
                                      R"re((?:\[\])?\s*=\s*"(\w+)")re");
          const auto value = all_matches(code, definition);
          if (value.empty())
            names.insert("<unresolved " + c + " in " + file + ">");
          names.insert(value.begin(), value.end());
        }
      }
    }
  }
  return names;
}

// Top-level functions of a file: Google style closes each with a `}` in column 0.
std::vector<std::string> top_level_chunks(const std::string& code) {
  std::vector<std::string> chunks;
  std::size_t start = 0;
  for (auto at = code.find("\n}"); at != std::string::npos; at = code.find("\n}", at + 1)) {
    chunks.push_back(code.substr(start, at - start));
    start = at + 2;
  }
  chunks.push_back(code.substr(start));
  return chunks;
}

// Op names recorded with OpRecorder in layers/: a literal given to OpRecorder directly, a literal
// given as first argument to a helper `f(const char* op, ...)` that records, or the literal of
// `const char* op = "..."` in a function that records or calls such a helper with `op`.
std::set<std::string> recorded_layer_ops() {
  static const std::regex direct(R"re(OpRecorder\s+\w+\(\s*"(\w+)")re");
  static const std::regex helper_decl(R"((?:^|\n)(?:\w+ )?\w+ (\w+)\(const char\* op,)");
  static const std::regex op_var(R"re(const char\* op = "(\w+)")re");
  std::set<std::string> names;
  for (const auto& file : sources_in("layers")) {
    const std::string code = code_lines(read_text(file));
    if (code.find("OpRecorder") == std::string::npos)
      continue;
    const auto chunks = top_level_chunks(code);
    std::set<std::string> helpers;
    for (const auto& chunk : chunks) {
      if (chunk.find("OpRecorder") != std::string::npos)
        for (const auto& h : all_matches(chunk, helper_decl)) helpers.insert(h);
    }
    for (const auto& chunk : chunks) {
      for (const auto& n : all_matches(chunk, direct)) names.insert(n);
      static const std::regex records_op(R"(OpRecorder\s+\w+\(\s*op,)");
      bool records = std::regex_search(chunk, records_op);
      for (const auto& h : helpers) {
        const std::regex literal_call("[^\\w]" + h + R"re(\(\s*"(\w+)")re");
        for (const auto& n : all_matches(chunk, literal_call)) names.insert(n);
        records = records || std::regex_search(chunk, std::regex("[^\\w]" + h + R"(\(\s*op,)"));
      }
      if (records)
        for (const auto& n : all_matches(chunk, op_var)) names.insert(n);
    }
  }
  return names;
}

// Outputs that layers/ flag as not differentiable (ag::non_differentiable("name", ...)): they
// get a row too, so that a reader of Tape::report() finds every name.
std::set<std::string> flagged_layer_outputs() {
  static const std::regex flagged(R"re(non_differentiable\(\s*"(\w+)")re");
  std::set<std::string> names;
  for (const auto& file : sources_in("layers")) {
    for (const auto& n : all_matches(code_lines(read_text(file)), flagged)) names.insert(n);
  }
  return names;
}

// ---- what the table says ------------------------------------------------------------------------

struct Row {
  int line = 0;
  std::vector<std::string> cells;
  std::set<std::string> ops;  // the identifiers of the op column outside parentheses
};

// Cells of a `| a | b |` line; `\|` is a literal bar inside a cell.
std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  for (std::size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
      cell += '|';
      ++i;
    } else if (line[i] == '|') {
      cells.push_back(trim(cell));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return cells;
}

std::set<std::string> op_names(const std::string& cell) {
  std::set<std::string> names;
  int depth = 0;
  for (std::size_t i = 0; i < cell.size();) {
    const char c = cell[i];
    if (c == '(' || c == '[')
      ++depth;
    else if (c == ')' || c == ']')
      --depth;
    if (is_ident(c)) {
      std::size_t j = i;
      while (j < cell.size() && is_ident(cell[j])) ++j;
      if (depth == 0)
        names.insert(cell.substr(i, j - i));
      i = j;
    } else {
      ++i;
    }
  }
  return names;
}

std::vector<Row> table_rows() {
  std::istringstream in(read_text(kTable));
  std::vector<Row> rows;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.rfind("|", 0) != 0 || line.rfind("|---", 0) == 0 || line.rfind("| op |", 0) == 0)
      continue;
    Row row;
    row.line = n;
    row.cells = split_cells(line);
    if (!row.cells.empty())
      row.ops = op_names(row.cells.front());
    rows.push_back(row);
  }
  return rows;
}

std::set<std::string> rows_naming(const std::vector<Row>& rows) {
  std::set<std::string> named;
  for (const auto& r : rows) named.insert(r.ops.begin(), r.ops.end());
  return named;
}

std::set<std::string> without_row(const std::set<std::string>& ops, const std::vector<Row>& rows) {
  const auto named = rows_naming(rows);
  std::set<std::string> missing;
  for (const auto& op : ops) {
    if (!named.count(op))
      missing.insert(op);
  }
  return missing;
}

// The file defines the op: a function `Var name(` or the op's name as a string literal.
bool defines(const std::string& code, const std::string& op) {
  return code.find("Var " + op + "(") != std::string::npos ||
         code.find('"' + op + '"') != std::string::npos;
}

}  // namespace

TEST_SUITE("autograd.derivatives_table") {
  TEST_CASE("the scans find the ops they are meant to find") {
    // Guards the parsers below: a scan that silently finds nothing would make every check pass.
    const auto decl = ops_hpp_functions();
    for (const char* op : {"add", "matmul", "transpose", "squeeze", "decayed_scan"})
      CHECK_MESSAGE(decl.count(op), std::string(op), " not found in autograd/ops.hpp");
    const auto custom = function_subclass_names();
    // The last is named through a constant (`return kOp;`), not a literal in name().
    for (const char* op :
         {"favor_causal", "codeword_select", "codeword_select_st", "lisa_item_histogram_attention"})
      CHECK_MESSAGE(
          custom.count(op), std::string(op), " not found among the ag::Function subclasses");
    CHECK_FALSE(custom.count("square"));  // function.hpp's comment example is not an op
    const auto recorded = recorded_layer_ops();
    for (const char* op : {"bce_with_logits", "softmax_cross_entropy", "masked_mean"})
      CHECK_MESSAGE(
          recorded.count(op), std::string(op), " not found among the ops recorded in layers/");
    CHECK(flagged_layer_outputs().count("codeword_select_hard"));
    CHECK(table_rows().size() > 40);
  }

  TEST_CASE("every op declared in autograd/ops.hpp has a row") {
    const auto missing = without_row(ops_hpp_functions(), table_rows());
    CHECK_MESSAGE(
        missing.empty(), "ops.hpp functions without a row in ", kTable, ": ", join(missing));
  }

  TEST_CASE("every custom op has a row") {
    const auto rows = table_rows();
    const auto fn = without_row(function_subclass_names(), rows);
    CHECK_MESSAGE(fn.empty(), "ag::Function subclasses without a row in ", kTable, ": ", join(fn));
    const auto rec = without_row(recorded_layer_ops(), rows);
    CHECK_MESSAGE(
        rec.empty(), "ops recorded in layers/ without a row in ", kTable, ": ", join(rec));
    const auto flag = without_row(flagged_layer_outputs(), rows);
    CHECK_MESSAGE(
        flag.empty(), "flagged outputs of layers/ without a row in ", kTable, ": ", join(flag));
  }

  TEST_CASE("every row names real ops and a file that defines them") {
    std::set<std::string> known = ops_hpp_functions();
    for (const auto& op : function_subclass_names()) known.insert(op);
    for (const auto& op : recorded_layer_ops()) known.insert(op);
    for (const auto& op : flagged_layer_outputs()) known.insert(op);
    for (const auto& row : table_rows()) {
      CAPTURE(row.line);
      REQUIRE_MESSAGE(row.cells.size() == 5u,
                      kTable,
                      ":",
                      row.line,
                      ": a row has 5 cells (op | forward | backward | saves | file)");
      const std::string& file = row.cells.back();
      const bool exists = fs::is_regular_file(kRoot + "/" + file);
      CHECK_MESSAGE(exists, kTable, ":", row.line, ": file '", file, "' does not exist");
      const std::string code = exists ? read_text(file) : "";
      for (const auto& op : row.ops) {
        CHECK_MESSAGE(known.count(op), kTable, ":", row.line, ": '", op, "' is not an op");
        if (exists)
          CHECK_MESSAGE(
              defines(code, op), kTable, ":", row.line, ": ", file, " does not define '", op, "'");
      }
    }
  }
}
