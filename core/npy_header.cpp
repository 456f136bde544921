// The .npy header: a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// It comes from the file, so it is read by a small strict scanner, never by anything eval-like:
// every malformed header ends in an IOError, in time linear in its length.
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/npy_detail.hpp"

namespace attnlab {
namespace npy_detail {

[[noreturn]] void fail(const char* op, const std::string& source, const std::string& problem) {
  throw IOError(detail::concat(op, ": ", source, ": ", problem));
}

// Header text for messages: at most 160 characters, non-printable bytes escaped.
std::string printable(const char* p, std::size_t n) {
  static const char hex[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n && i < 160; ++i) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (c >= 0x20 && c < 0x7f) {
      s += static_cast<char>(c);
    } else {
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    }
  }
  if (n > 160)
    s += "...";
  return s;
}

// A recursive-descent scanner over the fixed grammar
//   dict  := '{' [ key ':' value { ',' key ':' value } [','] ] '}'
//   key   := 'descr' | 'fortran_order' | 'shape'    (single or double quotes)
//   value := string | True | False | '(' [ int { ',' int } [','] ] ')'
// with Python's whitespace anywhere between tokens. The only nesting is one tuple level.
class HeaderParser {
 public:
  HeaderParser(const char* text,
               std::size_t size,
               bool allow_long_suffix,
               const char* op,
               const std::string& source)
      : p_(text), n_(size), allow_long_(allow_long_suffix), op_(op), source_(source) {}

  NpyHeader parse() {
    NpyHeader h;
    bool has_descr = false, has_fortran = false, has_shape = false;
    skip_ws();
    if (!eat('{'))
      error("header is not a dict literal");
    for (;;) {
      skip_ws();
      if (eat('}'))
        break;
      if (!at_quote())
        error("expected a quoted key or '}'");
      const std::string key = parse_string();
      skip_ws();
      if (!eat(':'))
        error("expected ':' after key '" + key + "'");
      skip_ws();
      if (key == "descr") {
        if (has_descr)
          error("duplicate key 'descr'");
        has_descr = true;
        if (!at_quote()) {
          fail(op_,
               source_,
               "unsupported descr " + printable(p_ + i_, bracketed_length()) +
                   " (structured and nested dtypes are not supported); " + kSupportedDescrs);
        }
        h.descr = parse_string();
      } else if (key == "fortran_order") {
        if (has_fortran)
          error("duplicate key 'fortran_order'");
        has_fortran = true;
        const std::string word = parse_word();
        if (word != "True" && word != "False")
          error("'fortran_order' must be True or False");
        h.fortran_order = word == "True";
      } else if (key == "shape") {
        if (has_shape)
          error("duplicate key 'shape'");
        has_shape = true;
        const std::size_t start = i_;
        h.shape = parse_shape();
        h.shape_text.assign(p_ + start, i_ - start);
      } else {
        error("unexpected key '" + key + "' (expected 'descr', 'fortran_order', 'shape')");
      }
      skip_ws();
      if (eat(','))
        continue;
      if (eat('}'))
        break;
      error("expected ',' or '}'");
    }
    skip_ws();
    if (i_ != n_)
      error("unexpected text after the dict");
    if (!has_descr)
      error("missing key 'descr'");
    if (!has_fortran)
      error("missing key 'fortran_order'");
    if (!has_shape)
      error("missing key 'shape'");
    return h;
  }

 private:
  [[noreturn]] void error(const std::string& problem) const {
    fail(op_,
         source_,
         detail::concat(
             "bad header: ", problem, " at offset ", i_, " of \"", printable(p_, n_), "\""));
  }
  bool eat(char c) {
    if (i_ < n_ && p_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  // Length of the bracketed value at i_ (e.g. a structured descr list), for messages only.
  std::size_t bracketed_length() const {
    int depth = 0;
    for (std::size_t j = i_; j < n_; ++j) {
      const char c = p_[j];
      if (c == '(' || c == '[' || c == '{')
        ++depth;
      if ((c == ')' || c == ']' || c == '}') && --depth <= 0)
        return j + 1 - i_;
    }
    return n_ - i_;
  }
  bool at_quote() const { return i_ < n_ && (p_[i_] == '\'' || p_[i_] == '"'); }
  void skip_ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r' ||
                       p_[i_] == '\f' || p_[i_] == '\v'))
      ++i_;
  }
  // A string without escapes (numpy never writes any into these values).
  std::string parse_string() {
    const char quote = p_[i_++];
    const std::size_t start = i_;
    while (i_ < n_ && p_[i_] != quote) {
      if (p_[i_] == '\\' || p_[i_] == '\n')
        error("unsupported character in a string");
      ++i_;
    }
    if (i_ == n_)
      error("unterminated string");
    ++i_;
    return std::string(p_ + start, i_ - 1 - start);
  }
  std::string parse_word() {
    const std::size_t start = i_;
    while (i_ < n_ && (std::isalnum(static_cast<unsigned char>(p_[i_])) || p_[i_] == '_')) ++i_;
    return std::string(p_ + start, i_ - start);
  }
  // Python ints as numpy writes them; a trailing 'L' comes from Python 2 era files, which
  // numpy still accepts in version 1.0 and 2.0 headers. Values outside int64 are rejected here.
  int64_t parse_int() {
    bool negative = false;
    if (i_ < n_ && (p_[i_] == '-' || p_[i_] == '+'))
      negative = p_[i_++] == '-';
    skip_ws();
    const std::size_t start = i_;
    uint64_t v = 0;
    bool overflow = false;
    while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') {
      const uint64_t digit = static_cast<uint64_t>(p_[i_] - '0');
      if (v > (UINT64_MAX - digit) / 10)
        overflow = true;
      v = v * 10 + digit;
      ++i_;
    }
    if (i_ == start)
      error("expected an integer in 'shape'");
    if (i_ - start > 1 && p_[start] == '0')
      error("integer with a leading zero in 'shape'");
    if (allow_long_ && i_ < n_ && (p_[i_] == 'L' || p_[i_] == 'l'))
      ++i_;
    if (overflow || v > static_cast<uint64_t>(INT64_MAX)) {
      fail(op_,
           source_,
           "dimension " + std::string(negative ? "-" : "") + std::string(p_ + start, i_ - start) +
               " in shape does not fit in 64 bits");
    }
    return negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  }
  std::vector<int64_t> parse_shape() {
    if (!eat('('))
      error("'shape' must be a tuple of integers");
    std::vector<int64_t> dims;
    bool trailing_comma = false;
    for (;;) {
      skip_ws();
      if (eat(')'))
        break;
      if (!dims.empty() && !trailing_comma)
        error("expected ',' or ')' in 'shape'");
      if (i_ == n_)
        error("unterminated 'shape' tuple");
      // The rank is checked later; this bound only stops a long header from growing the vector.
      if (dims.size() > 64)
        error("'shape' has too many dimensions");
      dims.push_back(parse_int());
      skip_ws();
      trailing_comma = eat(',');
    }
    // "(3)" is the integer 3 in Python, not a tuple: numpy rejects it, so do we.
    if (dims.size() == 1 && !trailing_comma)
      error("'shape' (n) is not a tuple; write (n,)");
    return dims;
  }

  const char* p_;
  std::size_t n_;
  std::size_t i_ = 0;
  bool allow_long_;
  const char* op_;
  const std::string& source_;
};

NpyHeader parse_npy_header(const char* text,
                           std::size_t size,
                           bool allow_long_suffix,
                           const char* op,
                           const std::string& source) {
  return HeaderParser(text, size, allow_long_suffix, op, source).parse();
}

}  // namespace npy_detail
}  // namespace attnlab
