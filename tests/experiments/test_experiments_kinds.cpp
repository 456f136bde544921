// `attnlab kinds`: the registry as a table; docs/kinds.md is its markdown form and must be
// regenerated when a kind changes (`attnlab kinds --markdown > docs/kinds.md`).
#include <doctest/doctest.h>

#include <string>

#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/model_registry.hpp"
#include "tests/cli_test_helpers.hpp"

using attnlab_test::read_text;
using attnlab_test::run_cli;

TEST_SUITE("experiments.kinds") {
  TEST_CASE("attnlab kinds lists every registered kind with its family and options") {
    const auto r = run_cli("kinds");
    REQUIRE(r.status == 0);
    for (const auto& kind : attnlab::rec::model_kinds()) {
      CAPTURE(kind.name);
      CHECK(r.out.find(kind.name + " ") != std::string::npos);
    }
    CHECK(r.out.find("features=256") != std::string::npos);
    CHECK(r.out.find("codebooks=8x16") != std::string::npos);
  }

  TEST_CASE("attnlab --list is attnlab kinds") {
    const auto list = run_cli("--list"), kinds = run_cli("kinds");
    CHECK(list.status == 0);
    CHECK(list.out == kinds.out);
  }

  TEST_CASE("bench attention takes the chosen kinds' own options and refuses the others") {
    const auto ok = run_cli(
        "bench attention --quick --kind favor --feature-norm fixed --impl reference "
        "--thread-counts 1 --no-crossover");
    CAPTURE(ok.out);
    CHECK(ok.status == 0);
    const auto none = run_cli("bench attention --quick --kind softmax-fused --feature-norm fixed");
    CHECK(none.status == 2);
    CHECK(none.out.find("--feature-norm: no kind of --kind softmax-fused has this option") !=
          std::string::npos);
    const auto bad = run_cli("bench attention --quick --kind favor --impl fast");
    CHECK(bad.status == 2);
    CHECK(bad.out.find("--impl: 'fast' is unknown (known: fused, reference)") != std::string::npos);
  }

  TEST_CASE("docs/kinds.md is the registry's table (regenerate: attnlab kinds --markdown)") {
    const std::string path = std::string(ATTNLAB_SOURCE_DIR) + "/docs/kinds.md";
    const std::string doc = read_text(path);
    CAPTURE(path);
    REQUIRE(!doc.empty());
    const auto r = run_cli("kinds --markdown");
    REQUIRE(r.status == 0);
    CHECK_MESSAGE(doc == r.out,
                  "docs/kinds.md is out of date: attnlab kinds --markdown > docs/kinds.md");
  }

  TEST_CASE("gradcheck runs every kind's cases from the registry") {
    const auto r = run_cli("gradcheck --list --filter kind/");
    REQUIRE(r.status == 0);
    for (const auto& kind : attnlab::nn::attention_kinds()) {
      CAPTURE(kind.name);
      CHECK(r.out.find("kind/" + kind.name + "/causal") != std::string::npos);
    }
  }
}
