// The registry of attention and model kinds: lookup and its errors, options bound once (values,
// names, enums), every kind built, run and gradient-checked through the registry, the cost model
// against the benchmarks' former formulas, and models built through the registry identical to
// the defaults they replaced.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "core/enum_names.hpp"
#include "core/option_binder.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"
#include "layers/attention/softmax/softmax_kernel.hpp"
#include "layers/recommender/lisa_model.hpp"
#include "layers/recommender/model_registry.hpp"
#include "layers/recommender/sasrec.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::nn;
using namespace attnlab::rec;

namespace {

Tensor registry_input(const Shape& s, uint64_t seed) {
  return rand(s, RngKey{seed, 41}, kFloat32, -1.0, 1.0);
}

std::vector<std::string> names_of(const std::vector<AttentionKind>& kinds) {
  std::vector<std::string> names;
  for (const auto& k : kinds) names.push_back(k.name);
  return names;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The benchmarks' FLOP formulas before the cost model (bench_attention.cpp): exact attention
// 4 L^2 d forward + 10 L^2 d backward, halved when causal; FAVOR+ 12 L m d (projections) +
// 12 L F d, F = m, 2m for hyp/trig, d for elu+1 (no projections).
double old_exact_flops(int64_t bh, int64_t l, int64_t d, bool causal) {
  const double per = 14.0 * static_cast<double>(l) * l * d * bh;
  return causal ? per / 2 : per;
}
double old_favor_flops(const std::string& kind, int64_t bh, int64_t l, int64_t d, int64_t m) {
  const bool two_sided = kind == "favor-hyp" || kind == "favor-trig";
  const double f = static_cast<double>(kind == "linear-elu" ? d : (two_sided ? 2 * m : m));
  const double projections = kind == "linear-elu" ? 0.0 : 3.0 * 4.0 * l * m * d;
  const double attention = 3.0 * 4.0 * l * f * d;
  return (projections + attention) * static_cast<double>(bh);
}

struct Counted {
  int calls = 0;
};

// A user's kernel: softmax attention that counts its calls.
class CountingKernel : public AttentionKernel {
 public:
  explicit CountingKernel(std::shared_ptr<Counted> counter)
      : AttentionKernel("CountingKernel"), counter_(std::move(counter)) {}
  Var attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) override {
    ++counter_->calls;
    return softmax_attention(q, k, v, mask);
  }

 private:
  std::shared_ptr<Counted> counter_;
};

}  // namespace

TEST_SUITE("layers.attention_registry") {
  TEST_CASE("every built-in attention kind and model kind is registered") {
    const auto names = names_of(attention_kinds());
    for (const char* k : {"softmax-reference",
                          "softmax-fused",
                          "favor",
                          "favor-iid",
                          "favor-hyp",
                          "favor-trig",
                          "favor-relu",
                          "linear-elu"})
      CHECK_MESSAGE(contains(names, k), k);
    std::vector<std::string> models;
    for (const auto& m : model_kinds()) models.push_back(m.name);
    for (const auto& a : names) CHECK_MESSAGE(contains(models, a), a);
    for (const char* m : {"lisa-base", "lisa-soft", "lisa-mini"})
      CHECK_MESSAGE(contains(models, m), m);
    CHECK(find_model_kind("lisa-base")->stacked == false);
    CHECK(find_model_kind("favor")->stacked == true);
    // One family's kinds stay together, whatever order the linker put their files in.
    const auto& kinds = attention_kinds();
    for (size_t i = 1; i < kinds.size(); ++i) CHECK(kinds[i - 1].family <= kinds[i].family);
  }

  TEST_CASE("an unknown kind is a ValueError listing the kinds") {
    CHECK(find_attention_kind("favour") == nullptr);
    CHECK_THROWS_WITH_AS(attention_kind("favour"),
                         doctest::Contains("attention kind 'favour' is unknown (known: "),
                         ValueError);
    CHECK_THROWS_WITH_AS(attention_kind("favour"), doctest::Contains("softmax-fused"), ValueError);
    CHECK_THROWS_WITH_AS(model_kind("lisa-huge"), doctest::Contains("lisa-mini"), ValueError);
    CHECK_THROWS_AS(make_attention_kernel("nope"), ValueError);
  }

  TEST_CASE("options - values and names and enums are checked with the flag name") {
    const AttentionKind& favor = attention_kind("favor");
    OptionValues v = favor.options.defaults();
    favor.options.set(v, "features", "32", "favor");
    favor.options.set(v, "feature-norm", "fixed", "favor");
    favor.options.set(v, "redraw", "never", "favor");
    CHECK(v.as<FavorOptions>().projections == 32);
    CHECK(v.as<FavorOptions>().norm == FeatureNorm::Fixed);
    CHECK(v.as<FavorOptions>().redraw.policy == RedrawPolicy::Never);
    CHECK(favor.options.defaults().as<FavorOptions>().projections == 256);  // defaults untouched
    CHECK_THROWS_WITH_AS(favor.options.set(v, "features", "many", "favor"),
                         "--features: expected an integer, got 'many'",
                         ValueError);
    CHECK_THROWS_WITH_AS(favor.options.set(v, "features", "0", "favor"),
                         "--features: must be >= 1, got '0'",
                         ValueError);
    CHECK_THROWS_WITH_AS(favor.options.set(v, "feature-norm", "unit", "favor"),
                         "--feature-norm: 'unit' is unknown (known: chi, fixed, sqrt-d)",
                         ValueError);
    CHECK_THROWS_WITH_AS(favor.options.set(v, "tau", "0.5", "favor"),
                         doctest::Contains("--tau: not an option of favor (its options: "
                                           "--features"),
                         ValueError);
    const AttentionKind& exact = attention_kind("softmax-fused");
    OptionValues none = exact.options.defaults();
    CHECK_THROWS_WITH_AS(exact.options.set(none, "features", "8", "softmax-fused"),
                         "--features: not an option of softmax-fused (it has no options)",
                         ValueError);
    // linear-elu has no random projections: no --features.
    CHECK(attention_kind("linear-elu").options.find("features") == nullptr);
    CHECK(attention_kind("favor-relu").capabilities.random_features);
    CHECK_FALSE(attention_kind("linear-elu").capabilities.random_features);
  }

  TEST_CASE("LISA's options bind to LISAConfig directly: --tau crosses one struct") {
    const ModelKind& mini = model_kind("lisa-mini");
    OptionValues v = mini.options.defaults();
    mini.options.set(v, "tau", "0.5", "lisa-mini");
    mini.options.set(v, "codebooks", "4x8", "lisa-mini");
    mini.options.set(v, "target-codebooks", "2x32", "lisa-mini");
    mini.options.set(v, "selection", "gumbel-st", "lisa-mini");
    const LISAConfig& c = v.as<LISAConfig>();
    CHECK(c.tau == 0.5);
    CHECK(c.tau_end == 0.5);
    CHECK(c.codebooks == 4);
    CHECK(c.codewords == 8);
    CHECK(c.target_codebooks == 2);
    CHECK(c.target_codewords == 32);
    CHECK(c.selection == Selection::GumbelStraightThrough);
    CHECK(c.variant == LisaVariant::Mini);
    CHECK_FALSE(mini.options.defaults().as<LISAConfig>().selection.has_value());
    CHECK_THROWS_WITH_AS(mini.options.set(v, "codebooks", "8by16", "lisa-mini"),
                         "--codebooks: expected BxW such as 8x16, got '8by16'",
                         ValueError);
    CHECK_THROWS_WITH_AS(mini.options.set(v, "tau", "0", "lisa-mini"),
                         "--tau: must be positive, got '0'",
                         ValueError);
    CHECK_THROWS_WITH_AS(mini.options.set(v, "selection", "hard", "lisa-mini"),
                         doctest::Contains("--selection: hard codes have no gradient"),
                         ValueError);
    CHECK(model_kind("lisa-base").options.find("target-codebooks") == nullptr);
    CHECK(model_kind("lisa-soft").options.defaults().as<LISAConfig>().regularizer == 1e-2);
  }

  TEST_CASE("enum name tables - name and parse with the flag and help") {
    const auto& names = enum_names(RedrawPolicy{});
    CHECK(std::string(names.name(RedrawPolicy::EveryCall)) == "every-call");
    CHECK(names.parse("every-n", "--redraw") == RedrawPolicy::EveryNCalls);
    CHECK_THROWS_WITH_AS(names.parse("sometimes", "--redraw"),
                         "--redraw: 'sometimes' is unknown (known: never, every-n, every-call)",
                         ValueError);
    CHECK(names.help().find("every-call (at every training call)") != std::string::npos);
    CHECK(OptionCodec<std::optional<double>>::parse("auto", "--x") == std::nullopt);
    CHECK(*OptionCodec<std::optional<double>>::parse("0.5", "--x") == 0.5);
    CHECK(OptionCodec<std::optional<double>>::format(std::nullopt) == "auto");
    CHECK_THROWS_WITH_AS(OptionCodec<bool>::parse("maybe", "--orthogonal"),
                         "--orthogonal: expected true or false, got 'maybe'",
                         ValueError);
  }

  TEST_CASE("every kind builds through the registry and runs forward with its masks") {
    const Tensor q = registry_input({2, 2, 7, 8}, 1), k = registry_input({2, 2, 7, 8}, 2),
                 v = registry_input({2, 2, 7, 4}, 3);
    const Tensor pad =
        from_vector(std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, {2, 7});
    for (const auto& kind : attention_kinds()) {
      CAPTURE(kind.name);
      KernelContext ctx;
      ctx.head_dim = 8;
      auto kernel = kind.make_default(ctx);
      REQUIRE(kernel != nullptr);
      for (int causal = 0; causal < 2; ++causal) {
        if (!(causal ? kind.capabilities.causal : kind.capabilities.bidirectional))
          continue;
        AttentionMask mask;
        mask.causal = causal == 1;
        if (kind.capabilities.key_padding)
          mask.key_padding = pad;
        const Tensor out = kernel->attend(Var(q), Var(k), Var(v), mask).value();
        CHECK(out.shape() == Shape{2, 2, 7, 4});
        CHECK_FALSE(has_nonfinite(out));
      }
    }
  }

  // Sizes the input checks accept but no training run makes: no batch, no positions, values of
  // width 0, and queries with no keys at all (bidirectional). Each kind either answers with the
  // right shapes, forward and backward (queries without keys get zeros), or refuses with a
  // clear error; nothing crashes, at one and two threads. (The fused exact backward and the
  // causal FAVOR+ sweep divided by zero on a batch of 0, FAVOR+'s also on values of width 0.)
  TEST_CASE("every kind on empty sizes - batch 0 and length 0 and value width 0 and no keys") {
    struct Sizes {
      int64_t b, lq, lk, dv;
    };
    for (int threads : {1, 2}) {
      testing::ThreadCountGuard guard(threads);
      for (const auto& kind : attention_kinds()) {
        KernelContext ctx;
        ctx.head_dim = 8;
        auto kernel = kind.make_default(ctx);
        REQUIRE(kernel != nullptr);
        for (Sizes z :
             {Sizes{0, 7, 7, 4}, Sizes{2, 0, 0, 4}, Sizes{2, 7, 7, 0}, Sizes{2, 7, 0, 4}}) {
          for (int causal = 0; causal < 2; ++causal) {
            if (!(causal ? kind.capabilities.causal : kind.capabilities.bidirectional))
              continue;
            if (causal && z.lq != z.lk)
              continue;
            CAPTURE(threads);
            CAPTURE(kind.name);
            CAPTURE(z.b);
            CAPTURE(z.lq);
            CAPTURE(z.lk);
            CAPTURE(z.dv);
            CAPTURE(causal);
            AttentionMask mask;
            mask.causal = causal == 1;
            Var q = ag::param(registry_input({z.b, 2, z.lq, 8}, 1));
            Var k = ag::param(registry_input({z.b, 2, z.lk, 8}, 2));
            Var v = ag::param(registry_input({z.b, 2, z.lk, z.dv}, 3));
            try {
              Var out = kernel->attend(q, k, v, mask);
              CHECK(out.shape() == Shape({z.b, 2, z.lq, z.dv}));
              CHECK_FALSE(has_nonfinite(out.value()));
              out.backward(ones(out.shape(), kFloat32));
              for (const Var* x : {&q, &k, &v}) {
                CHECK(x->grad().shape() == x->shape());
                CHECK_FALSE(has_nonfinite(x->grad()));
              }
              if (z.lk == 0) {  // no keys: nothing to attend to, nothing flows back to q
                CHECK(max_abs_diff(out.value(), zeros_like(out.value())) == 0);
                CHECK(max_abs_diff(q.grad(), zeros_like(q.grad())) == 0);
              }
            } catch (const Error& e) {
              // A refusal must say what it refuses.
              CHECK(std::string(e.what()).size() > 10);
            }
          }
        }
      }
    }
  }

  TEST_CASE("every kind's gradcheck cases pass (float64)") {
    int checked = 0;
    for (const auto& kind : attention_kinds()) {
      const auto cases = gradcheck_cases(kind);
      CHECK_MESSAGE(!cases.empty(), kind.name);
      for (const auto& c : cases) {
        CAPTURE(c.name);
        ag::GradcheckOptions o;
        if (c.module) {
          c.module->to(kFloat64);
          c.module->eval();
          o.params = c.module->parameters();
        }
        const ag::GradcheckResult r = ag::gradcheck(c.fn, c.inputs, o);
        CHECK_MESSAGE(r.ok, r.report());
        ++checked;
      }
    }
    CHECK(checked >= 2 * static_cast<int>(attention_kinds().size()));
  }

  TEST_CASE("the cost model equals the benchmarks' former FLOP formulas") {
    for (const auto& kind : attention_kinds()) {
      // Only the families the benchmarks had formulas for; a later kind has none to match.
      if (kind.family != "softmax" && kind.family != "favor")
        continue;
      CAPTURE(kind.name);
      REQUIRE(kind.cost);
      for (int64_t m : {16, 256}) {
        for (int causal = 0; causal < 2; ++causal) {
          AttentionShape s;
          s.batch_heads = 3;
          s.lq = s.lk = 1024;
          s.d = s.dv = 64;
          s.causal = causal == 1;
          OptionValues options = kind.options.defaults();
          if (kind.options.find("features") != nullptr)
            kind.options.set(options, "features", std::to_string(m), kind.name);
          const double expected = kind.family == "softmax"
                                      ? old_exact_flops(3, 1024, 64, s.causal)
                                      : old_favor_flops(kind.name, 3, 1024, 64, m);
          CHECK(kind.cost(s, options).total_flops() == doctest::Approx(expected).epsilon(1e-12));
        }
      }
    }
  }

  TEST_CASE("kernels built through the registry equal the former factory's defaults") {
    // What make_attention_kernel("favor-relu", {seed 9, head_dim 16}) built before the registry.
    FavorOptions old;
    old.features.map = FeatureMap::Generalized;
    old.features.fn = GeneralizedFn::ReLU;
    old.features.epsilon = 1e-3;
    old.head_dim = 16;
    old.projections = 256;
    old.seed = 9;
    old.redraw = RedrawOptions{RedrawPolicy::EveryNCalls, 1000};
    FavorKernel reference(old);
    KernelContext ctx;
    ctx.head_dim = 16;
    ctx.seed = 9;
    auto built =
        std::dynamic_pointer_cast<FavorKernel>(attention_kind("favor-relu").make_default(ctx));
    REQUIRE(built != nullptr);
    CHECK(built->describe() == reference.describe());
    CHECK(max_abs_diff(built->projection(), reference.projection()) == 0.0);
    CHECK(built->options().features.epsilon == 1e-3);
    auto iid =
        std::dynamic_pointer_cast<FavorKernel>(attention_kind("favor-iid").make_default(ctx));
    CHECK_FALSE(iid->options().orthogonal);
  }

  TEST_CASE("SASRec takes a kernel factory: a user's kernel enters by construction") {
    auto counter = std::make_shared<Counted>();
    SASRecConfig c;
    c.num_items = 20;
    c.max_length = 6;
    c.dim = 8;
    c.blocks = 2;
    c.attention = "counting";
    c.kernel = [counter](const KernelContext& ctx) {
      CHECK(ctx.head_dim == 8);
      return std::make_shared<CountingKernel>(counter);
    };
    SASRec model(c);
    const Tensor ids =
        from_vector(std::vector<int64_t>{0, 0, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}, {2, 6});
    model.hidden(ids);
    CHECK(counter->calls == 2);
    CHECK(model.describe().find("attention=counting") != std::string::npos);
    c.ffn_hidden = 0;  // unset means dim; 0 is an error, not a sentinel
    CHECK_THROWS_WITH_AS(
        std::make_shared<SASRec>(c), doctest::Contains("ffn_hidden must be positive"), ValueError);
  }

  TEST_CASE("models built through the registry equal SASRec and LISA built directly") {
    for (const char* name : {"softmax-fused", "favor", "lisa-soft"}) {
      CAPTURE(name);
      const ModelKind& kind = model_kind(name);
      ModelContext ctx;
      ctx.num_items = 30;
      ctx.max_length = 8;
      ctx.dim = 16;
      ctx.seed = 4;
      auto through_registry = kind.make(kind.options.defaults(), ctx);
      std::shared_ptr<SequenceRecommender> direct;
      if (kind.stacked) {
        SASRecConfig c;  // the name alone: the kind's defaults
        c.num_items = 30;
        c.max_length = 8;
        c.dim = 16;
        c.seed = 4;
        c.attention = name;
        direct = std::make_shared<SASRec>(c);
      } else {
        LISAConfig c;
        c.num_items = 30;
        c.max_length = 8;
        c.dim = 16;
        c.dropout = 0.2;
        c.seed = 4;
        c.variant = LisaVariant::Soft;
        c.regularizer = 1e-2;
        direct = std::make_shared<LISA>(c);
      }
      const auto a = through_registry->state_dict(), b = direct->state_dict();
      REQUIRE(a.size() == b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        CAPTURE(a[i].first);
        CHECK(a[i].first == b[i].first);
        CHECK(max_abs_diff(a[i].second, b[i].second) == 0.0);
      }
    }
  }
}
