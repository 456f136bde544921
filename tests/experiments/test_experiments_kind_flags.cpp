// The kinds' own flags (experiments/support/kind_flags.hpp) as a command builds them: one flag per
// option name, whose help names every default with its kinds, and a kind option that takes a
// flag's name refused with a one-line error instead of making the flag "ambiguous".
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/option_binder.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/kind_flags.hpp"

using namespace attnlab;

namespace {

struct EpsilonOptions {
  double epsilon = 0.0;
};
struct DimOptions {
  int64_t dim = 4;
};

OptionSet epsilon_options(double value, const char* help) {
  return OptionBinder<EpsilonOptions>(EpsilonOptions{value})
      .bind("epsilon", &EpsilonOptions::epsilon, help);
}

// The help text of `name` as --help prints it.
std::string help_of(cli::Parser& p, const std::string& name) {
  const auto* option = p.options().find_nothrow(name, false);
  REQUIRE(option != nullptr);
  return option->description();
}

bool parses(cli::Parser& p, std::vector<std::string> words) {
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return p.parse(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_SUITE("experiments.kind_flags") {
  TEST_CASE("a shared option lists each default with its kinds") {
    const OptionSet zero = epsilon_options(0.0, "added to every feature");
    const OptionSet small = epsilon_options(1e-3, "added to the normaliser");
    cli::Parser p("probe", "");
    const cli::KindFlags flags(p,
                               {{"favor", "favor", &zero},
                                {"favor-iid", "favor", &zero},
                                {"favor-relu", "favor", &small},
                                {"relu-linear", "mine", &small}});
    // Before: "added to every feature [FLOAT; default 0; favor kinds, mine kinds]", the first
    // declaration's text and default for all four.
    CHECK(help_of(p, "epsilon") ==
          "added to every feature / added to the normaliser [FLOAT; default 0: favor, favor-iid; "
          "default 0.001: favor-relu, mine kinds]");
    CHECK(flags.names() == std::vector<std::string>{"epsilon"});
  }

  TEST_CASE("an option every kind declares alike keeps the short help") {
    const OptionSet a = epsilon_options(0.0, "added to every feature");
    cli::Parser p("probe", "");
    const cli::KindFlags flags(p, {{"x", "fam", &a}, {"y", "fam", &a}});
    CHECK(help_of(p, "epsilon") == "added to every feature [FLOAT; default 0; fam kinds]");
  }

  TEST_CASE("a kind option named like a flag is a one-line error naming both") {
    const OptionSet dim = OptionBinder<DimOptions>().bind("dim", &DimOptions::dim, "probe: width");
    cli::Parser own("train", "");
    own.options().add_options()("dim", cli::po::value<int64_t>(), "hidden size");
    const cli::KindFlags flags(own, {{"probe-dim", "probe", &dim}});
    CHECK_THROWS_WITH_AS(parses(own, {"train", "--dim", "8"}),
                         "--dim is declared twice for 'train': 'hidden size' and 'probe: width "
                         "[INT; default 4; probe kinds]' (an option, a kind's included, must not "
                         "take the name of another flag)",
                         ValueError);
    // The common flags too (--seed, --threads, --out, ...).
    struct SeedOptions {
      int64_t seed = 1;
    };
    const OptionSet seed =
        OptionBinder<SeedOptions>().bind("seed", &SeedOptions::seed, "probe: its own seed");
    cli::Parser common("train", "");
    const cli::KindFlags seed_flags(common, {{"probe-seed", "probe", &seed}});
    CHECK_THROWS_WITH_AS(parses(common, {"train"}),
                         doctest::Contains("--seed is declared twice for 'train'"),
                         ValueError);
  }
}
