#include "experiments/support/kind_flags.hpp"

#include <algorithm>
#include <map>

#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/model_registry.hpp"

namespace attnlab::cli {
namespace {

// "favor kinds" when every kind of a family declares the option, else the kinds by name.
std::string declared_by(const std::vector<KindOptionSet>& kinds, const std::string& name) {
  std::map<std::string, std::pair<int, int>> per_family;  // family -> (declaring, all)
  std::vector<std::string> families, some;
  for (const auto& k : kinds) {
    auto& counts = per_family[k.family];
    if (counts.second++ == 0)
      families.push_back(k.family);
    counts.first += k.options->find(name) != nullptr;
  }
  for (const auto& family : families) {
    const auto [declaring, all] = per_family[family];
    if (declaring == all) {
      some.push_back(family + " kinds");
    } else if (declaring > 0) {
      for (const auto& k : kinds)
        if (k.family == family && k.options->find(name) != nullptr)
          some.push_back(k.kind);
    }
  }
  std::string out;
  for (const auto& s : some) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

KindFlags::KindFlags(Parser& parser,
                     const std::vector<KindOptionSet>& kinds,
                     const std::vector<std::string>& skip) {
  for (const auto& k : kinds) {
    for (const OptionSpec& spec : k.options->specs()) {
      if (std::find(names_.begin(), names_.end(), spec.name) != names_.end() ||
          std::find(skip.begin(), skip.end(), spec.name) != skip.end())
        continue;
      names_.push_back(spec.name);
      const std::string help = spec.help + " [" + spec.value_name + "; default " +
                               spec.get(k.options->defaults()) + "; " +
                               declared_by(kinds, spec.name) + "]";
      parser.options().add_options()(spec.name.c_str(), po::value<std::string>(), help.c_str());
    }
  }
}

KindFlags KindFlags::for_models(Parser& parser) {
  std::vector<KindOptionSet> kinds;
  for (const auto& k : rec::model_kinds()) kinds.push_back({k.name, k.family, &k.options});
  return KindFlags(parser, kinds);
}

KindFlags KindFlags::for_attention(Parser& parser, const std::vector<std::string>& skip) {
  std::vector<KindOptionSet> kinds;
  for (const auto& k : nn::attention_kinds()) kinds.push_back({k.name, k.family, &k.options});
  return KindFlags(parser, kinds, skip);
}

std::vector<std::pair<std::string, std::string>> KindFlags::given(
    const Parser& parser,
    const std::string& kind,
    const OptionSet& options,
    const std::string& kind_flag) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& name : names_) {
    if (!parser.given(name))
      continue;
    if (options.find(name) == nullptr) {
      throw UsageError("--" + name + ": does not apply to " + kind_flag + " " + kind + " (" +
                       options.describe_names() + ")");
    }
    out.emplace_back(name, parser.get<std::string>(name));
  }
  return out;
}

OptionValues KindFlags::values(const Parser& parser,
                               const std::string& kind,
                               const OptionSet& options,
                               const std::string& kind_flag) const {
  return kind_option_values(options, kind, given(parser, kind, options, kind_flag));
}

OptionValues kind_option_values(const OptionSet& options,
                                const std::string& kind,
                                const std::vector<std::pair<std::string, std::string>>& values) {
  OptionValues out = options.defaults();
  for (const auto& [name, text] : values) {
    try {
      options.set(out, name, text, kind);
    } catch (const ValueError& e) {
      throw UsageError(e.what());
    }
  }
  return out;
}

OptionValues declared_option_values(
    const OptionSet& options,
    const std::string& kind,
    const std::vector<std::pair<std::string, std::string>>& values) {
  std::vector<std::pair<std::string, std::string>> declared;
  for (const auto& v : values)
    if (options.find(v.first) != nullptr)
      declared.push_back(v);
  return kind_option_values(options, kind, declared);
}

}  // namespace attnlab::cli
