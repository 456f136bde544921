#include "experiments/support/kind_flags.hpp"

#include <algorithm>
#include <functional>
#include <map>

#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/model_registry.hpp"

namespace attnlab::cli {
namespace {

// "favor kinds" when every kind of a family is chosen by `chosen`, else the chosen kinds by name.
std::string describe_kinds(const std::vector<KindOptionSet>& kinds,
                           const std::function<bool(const KindOptionSet&)>& chosen) {
  std::map<std::string, std::pair<int, int>> per_family;  // family -> (chosen, all)
  std::vector<std::string> families, some;
  for (const auto& k : kinds) {
    auto& counts = per_family[k.family];
    if (counts.second++ == 0)
      families.push_back(k.family);
    counts.first += chosen(k);
  }
  for (const auto& family : families) {
    const auto [declaring, all] = per_family[family];
    if (declaring == all) {
      some.push_back(family + " kinds");
    } else if (declaring > 0) {
      for (const auto& k : kinds)
        if (k.family == family && chosen(k))
          some.push_back(k.kind);
    }
  }
  std::string out;
  for (const auto& s : some) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void add_unique(std::vector<std::string>& list, const std::string& item) {
  if (std::find(list.begin(), list.end(), item) == list.end())
    list.push_back(item);
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : separator) + s;
  return out;
}

// The help line of option `name` from every kind that declares it. Kinds may declare one name
// with different texts and defaults (FAVOR+'s --epsilon is 0 for favor, 1e-3 for favor-relu):
// each default is listed with the kinds it belongs to, and each distinct text once.
std::string kind_option_help(const std::vector<KindOptionSet>& kinds, const std::string& name) {
  std::vector<std::string> texts, value_names, defaults;
  auto default_of = [&](const KindOptionSet& k) {
    const OptionSpec* spec = k.options->find(name);
    return spec == nullptr ? std::string() : spec->get(k.options->defaults());
  };
  for (const auto& k : kinds) {
    if (const OptionSpec* spec = k.options->find(name)) {
      add_unique(texts, spec->help);
      add_unique(value_names, spec->value_name);
      add_unique(defaults, default_of(k));
    }
  }
  std::string per_default;
  if (defaults.size() == 1) {  // "default 256; favor kinds"
    per_default = "default " + defaults[0] + "; " + describe_kinds(kinds, [&](const auto& k) {
                    return k.options->find(name) != nullptr;
                  });
  } else {  // "default 0: favor, favor-iid; default 0.001: favor-relu"
    for (const auto& d : defaults) {
      const std::string who = describe_kinds(kinds, [&](const KindOptionSet& k) {
        return k.options->find(name) != nullptr && default_of(k) == d;
      });
      per_default += (per_default.empty() ? "" : "; ") + std::string("default ") + d + ": " + who;
    }
  }
  return join(texts, " / ") + " [" + join(value_names, " / ") + "; " + per_default + "]";
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
      const std::string help = kind_option_help(kinds, spec.name);
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
