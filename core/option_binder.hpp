// Options bound to names once: a family's options struct T is described field by field (name,
// member, help, optional check) by an OptionBinder<T>; the result, an OptionSet, sets and reads
// those fields from text without knowing T (the registry's kinds hold one each, the CLI builds
// its flags from them). Defaults are those of the T value the binder starts from.
//
//   struct MyOptions { int64_t features = 64; std::optional<double> epsilon; Norm norm{}; };
//   OptionSet set = OptionBinder<MyOptions>()
//       .bind("features", &MyOptions::features, "random features m", option_checks::Positive{})
//       .bind("epsilon", &MyOptions::epsilon, "added to every feature (auto: the kind's)")
//       .bind("norm", &MyOptions::norm, "row norms");       // an enum with enum_names(Norm)
//   OptionValues v = set.defaults();
//   set.set(v, "features", "128", "my-kind");              // ValueError on a bad value or name
//   const MyOptions& o = v.as<MyOptions>();
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "core/enum_names.hpp"
#include "core/error.hpp"

namespace attnlab {

// One options struct behind a type-erased handle.
class OptionValues {
 public:
  OptionValues() = default;
  template <class T, class = std::enable_if_t<!std::is_same_v<std::decay_t<T>, OptionValues>>>
  explicit OptionValues(T value) : value_(std::move(value)) {}
  bool empty() const { return !value_.has_value(); }
  template <class T>
  const T& as() const {
    const T* p = std::any_cast<T>(&value_);
    ATTNLAB_CHECK(p != nullptr,
                  ValueError,
                  "OptionValues::as: holds ",
                  type_name(),
                  ", not the requested ",
                  typeid(T).name());
    return *p;
  }
  template <class T>
  T& as() {
    return const_cast<T&>(static_cast<const OptionValues&>(*this).as<T>());
  }
  std::string type_name() const { return value_.has_value() ? value_.type().name() : "nothing"; }

 private:
  std::any value_;
};

// One named option of an options struct.
struct OptionSpec {
  std::string name;        // the flag without "--"
  std::string help;        // one line
  std::string value_name;  // "INT", "FLOAT", "BOOL", "TEXT" or "a|b|c" for enums
  // Parses `text` into the field; ValueError "--name: ..." for a bad value.
  std::function<void(OptionValues&, const std::string& text)> set;
  // The field's current value as text (what `set` accepts).
  std::function<std::string(const OptionValues&)> get;
};

class OptionSet {
 public:
  OptionSet() = default;
  OptionSet(OptionValues defaults, std::vector<OptionSpec> specs)
      : defaults_(std::move(defaults)), specs_(std::move(specs)) {}

  // A copy of the defaults (the struct the binder started from).
  OptionValues defaults() const { return defaults_; }
  const std::vector<OptionSpec>& specs() const { return specs_; }
  bool empty() const { return specs_.empty(); }
  const OptionSpec* find(const std::string& name) const {
    for (const auto& s : specs_)
      if (s.name == name)
        return &s;
    return nullptr;
  }
  // Sets option `name` of `values` from text. ValueError for a bad value, or for a name `owner`
  // (the kind) does not declare: "--tau: not an option of favor (its options: --features, ...)".
  void set(OptionValues& values,
           const std::string& name,
           const std::string& text,
           const std::string& owner) const {
    const OptionSpec* spec = find(name);
    if (spec == nullptr)
      throw ValueError("--" + name + ": not an option of " + owner + " (" + describe_names() + ")");
    spec->set(values, text);
  }
  // "its options: --a, --b" or "it has no options".
  std::string describe_names() const {
    if (specs_.empty())
      return "it has no options";
    return "its options: " + names();
  }
  // "--a, --b" (empty without options).
  std::string names() const {
    std::string out;
    for (const auto& s : specs_) out += (out.empty() ? "--" : ", --") + s.name;
    return out;
  }
  // The default of `name` as text ("" when not declared).
  std::string default_text(const std::string& name) const {
    const OptionSpec* spec = find(name);
    return spec ? spec->get(defaults_) : "";
  }

 private:
  OptionValues defaults_;
  std::vector<OptionSpec> specs_;
};

// The number that is the whole of `text` ("0.2", "1e-3", "nan"), or nothing ("", "0.2x", "abc").
inline std::optional<double> parse_number(const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size())
      return v;
  } catch (const std::exception&) {  // not a number, or out of range
  }
  return std::nullopt;
}

// ---- value codecs: text <-> field ---------------------------------------------------------------
template <class V, class Enable = void>
struct OptionCodec;

template <class V>
struct OptionCodec<V, std::enable_if_t<std::is_integral_v<V> && !std::is_same_v<V, bool>>> {
  static const char* value_name() { return "INT"; }
  static V parse(const std::string& text, const std::string& flag) {
    try {
      size_t used = 0;
      const long long v = std::stoll(text, &used);
      if (used == text.size())
        return static_cast<V>(v);
    } catch (const std::exception&) {
    }
    throw ValueError(flag + ": expected an integer, got '" + text + "'");
  }
  static std::string format(V v) { return std::to_string(v); }
};

template <class V>
struct OptionCodec<V, std::enable_if_t<std::is_floating_point_v<V>>> {
  static const char* value_name() { return "FLOAT"; }
  static V parse(const std::string& text, const std::string& flag) {
    if (const std::optional<double> v = parse_number(text))
      return static_cast<V>(*v);
    throw ValueError(flag + ": expected a number, got '" + text + "'");
  }
  static std::string format(V v) {
    std::ostringstream os;
    os << v;
    return os.str();
  }
};

template <>
struct OptionCodec<bool> {
  static const char* value_name() { return "BOOL"; }
  static bool parse(const std::string& text, const std::string& flag) {
    if (text == "true" || text == "1" || text == "yes" || text == "on")
      return true;
    if (text == "false" || text == "0" || text == "no" || text == "off")
      return false;
    throw ValueError(flag + ": expected true or false, got '" + text + "'");
  }
  static std::string format(bool v) { return v ? "true" : "false"; }
};

template <>
struct OptionCodec<std::string> {
  static const char* value_name() { return "TEXT"; }
  static std::string parse(const std::string& text, const std::string&) { return text; }
  static std::string format(const std::string& v) { return v; }
};

// Enums with a name table found by ADL: const EnumNames<E>& enum_names(E).
template <class E>
struct OptionCodec<E, std::enable_if_t<std::is_enum_v<E>>> {
  static std::string value_name() { return enum_names(E{}).known("|"); }
  static E parse(const std::string& text, const std::string& flag) {
    return enum_names(E{}).parse(text, flag);
  }
  static std::string format(E v) { return enum_names(E{}).name(v); }
};

// Unset optionals read and print as "auto" (an empty text is accepted too).
template <class V>
struct OptionCodec<std::optional<V>> {
  static std::string value_name() { return std::string(OptionCodec<V>::value_name()) + "|auto"; }
  static std::optional<V> parse(const std::string& text, const std::string& flag) {
    if (text.empty() || text == "auto")
      return std::nullopt;
    return OptionCodec<V>::parse(text, flag);
  }
  static std::string format(const std::optional<V>& v) {
    return v ? OptionCodec<V>::format(*v) : "auto";
  }
};

// ---- checks: a callable V -> "" (fine) or what is wrong ----------------------------------------
namespace option_checks {
struct None {
  template <class V>
  std::string operator()(const V&) const {
    return "";
  }
};
struct Positive {
  template <class V>
  std::string operator()(const V& v) const {
    return v > 0 ? "" : "must be positive";
  }
};
struct NonNegative {
  template <class V>
  std::string operator()(const V& v) const {
    return v >= 0 ? "" : "must be >= 0";
  }
};
}  // namespace option_checks

template <class T>
class OptionBinder {
 public:
  explicit OptionBinder(T defaults = T{}) : defaults_(std::move(defaults)) {}

  // Binds field `member` to option `name`. `check(value)` returns "" or what is wrong.
  template <class V, class Check = option_checks::None>
  OptionBinder& bind(const std::string& name, V T::*member, std::string help, Check check = {}) {
    const std::string flag = "--" + name;
    OptionSpec spec;
    spec.name = name;
    spec.help = std::move(help);
    spec.value_name = OptionCodec<V>::value_name();
    spec.set = [member, flag, check](OptionValues& values, const std::string& text) {
      V v = OptionCodec<V>::parse(text, flag);
      const std::string problem = check(v);
      if (!problem.empty())
        throw ValueError(flag + ": " + problem + ", got '" + text + "'");
      values.as<T>().*member = std::move(v);
    };
    spec.get = [member](const OptionValues& values) {
      return OptionCodec<V>::format(values.as<T>().*member);
    };
    specs_.push_back(std::move(spec));
    return *this;
  }

  // An option whose text maps onto fields in another way (e.g. "8x16" -> two fields). `set`
  // throws ValueError naming --name on a bad text.
  OptionBinder& bind_text(const std::string& name,
                          std::string help,
                          std::string value_name,
                          std::function<void(T&, const std::string&)> set,
                          std::function<std::string(const T&)> get) {
    OptionSpec spec;
    spec.name = name;
    spec.help = std::move(help);
    spec.value_name = std::move(value_name);
    spec.set = [set](OptionValues& values, const std::string& text) {
      set(values.as<T>(), text);
    };
    spec.get = [get](const OptionValues& values) {
      return get(values.as<T>());
    };
    specs_.push_back(std::move(spec));
    return *this;
  }

  OptionSet build() const { return OptionSet(OptionValues(defaults_), specs_); }
  operator OptionSet() const { return build(); }  // NOLINT: a binder is its set once bound

 private:
  T defaults_;
  std::vector<OptionSpec> specs_;
};

// An options struct with no options (kinds whose only settings come from the context).
struct NoOptions {};

}  // namespace attnlab
