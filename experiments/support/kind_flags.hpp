// The flags of the kinds' own options, built from the registry: one flag per option name that any
// kind declares (the union; its help lists each distinct text and each default with the kinds it
// belongs to), and for the chosen kind the values it was given. A flag the chosen kind does not
// declare is a one-line UsageError naming the kind and its options, never silently ignored (a
// "--tau 0.5" softmax run would otherwise be reported as a tau study).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/option_binder.hpp"
#include "experiments/support/cli.hpp"

namespace attnlab::cli {

// A kind and its options, as the flag builder sees it.
struct KindOptionSet {
  std::string kind, family;
  const OptionSet* options;
};

class KindFlags {
 public:
  // Adds the union of `kinds`' options to `parser` (string-valued, no defaults: a kind's defaults
  // come from its options struct). Call before parser.parse().
  // Names in `skip` are left out (a command's own flag of that name, e.g. bench attention's
  // list-valued --features, handles them).
  KindFlags(Parser& parser,
            const std::vector<KindOptionSet>& kinds,
            const std::vector<std::string>& skip = {});
  // Every model kind's options (train, sweep, demo).
  static KindFlags for_models(Parser& parser);
  // Every attention kind's options (bench attention).
  static KindFlags for_attention(Parser& parser, const std::vector<std::string>& skip = {});

  // The kind options given on the command line or in the --config file, as (name, text).
  // UsageError "--tau: does not apply to --attention favor (its options: --features, ...)" for
  // one that `options` (kind `kind`, chosen by `kind_flag`) does not declare.
  std::vector<std::pair<std::string, std::string>> given(const Parser& parser,
                                                         const std::string& kind,
                                                         const OptionSet& options,
                                                         const std::string& kind_flag) const;
  // given(), applied over the kind's defaults; UsageError for a bad value.
  OptionValues values(const Parser& parser,
                      const std::string& kind,
                      const OptionSet& options,
                      const std::string& kind_flag) const;
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
};

// (name, text) pairs applied over `options`' defaults; UsageError (one line, naming the flag)
// for an option kind `kind` does not declare or a bad value.
OptionValues kind_option_values(const OptionSet& options,
                                const std::string& kind,
                                const std::vector<std::pair<std::string, std::string>>& values);

// The same for settings a study applies to several kinds at once ("features 16" for the FAVOR+
// kinds, "codebooks 4x8" for LISA): only those `options` declares are applied.
OptionValues declared_option_values(const OptionSet& options,
                                    const std::string& kind,
                                    const std::vector<std::pair<std::string, std::string>>& values);

}  // namespace attnlab::cli
