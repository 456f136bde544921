// One name table per enum: its names, parser, help list and "known: ..." error come from a single
// list of {value, name, help} rows, so that adding a value is one row.
//
//   const EnumNames<RedrawPolicy>& enum_names(RedrawPolicy) {        // found by ADL
//     static const EnumNames<RedrawPolicy> table{
//         {RedrawPolicy::Never, "never", "draw once"}, ...};
//     return table;
//   }
//   enum_names(RedrawPolicy{}).parse("every-n", "--redraw");  // ValueError naming the flag
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace attnlab {

template <class E>
struct EnumName {
  E value;
  const char* name;
  const char* help = "";
};

template <class E>
class EnumNames {
 public:
  EnumNames(std::initializer_list<EnumName<E>> rows) : rows_(rows) {}

  const char* name(E value) const {
    for (const auto& r : rows_)
      if (r.value == value)
        return r.name;
    return "?";
  }
  // `what` names the flag or option ("--redraw", "FeatureNorm") in the error.
  E parse(const std::string& text, const std::string& what) const {
    for (const auto& r : rows_)
      if (text == r.name)
        return r.value;
    throw ValueError(what + ": '" + text + "' is unknown (known: " + known() + ")");
  }
  bool contains(const std::string& text) const {
    for (const auto& r : rows_)
      if (text == r.name)
        return true;
    return false;
  }
  // "a, b, c"
  std::string known(const char* separator = ", ") const {
    std::string out;
    for (const auto& r : rows_) out += (out.empty() ? "" : separator) + std::string(r.name);
    return out;
  }
  // "a (help), b (help), c" for --help texts.
  std::string help() const {
    std::string out;
    for (const auto& r : rows_) {
      out += (out.empty() ? "" : ", ") + std::string(r.name);
      if (r.help[0] != '\0')
        out += std::string(" (") + r.help + ")";
    }
    return out;
  }
  const std::vector<EnumName<E>>& rows() const { return rows_; }

 private:
  std::vector<EnumName<E>> rows_;
};

}  // namespace attnlab
