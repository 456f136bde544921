// Streaming inference: kernels, blocks and SASRec one position at a time (attention_stream.hpp,
// SASRecStream) against the full causal forward on the same prefix.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/sasrec.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::nn;
using namespace attnlab::rec;

namespace {

const std::vector<std::string> kStreamingKinds = {
    "softmax-fused", "softmax-reference", "favor", "favor-iid", "linear-elu", "cosformer"};

// The kind's default options with those it declares of `options` set (softmax has no features).
OptionValues kind_options(const std::string& kind,
                          const std::vector<std::pair<std::string, std::string>>& options) {
  const AttentionKind& k = attention_kind(kind);
  OptionValues values = k.options.defaults();
  for (const auto& [name, text] : options) {
    if (k.options.find(name) != nullptr)
      k.options.set(values, name, text, kind);
  }
  return values;
}

std::shared_ptr<AttentionKernel> make_kernel(const std::string& kind,
                                             int64_t head_dim,
                                             int64_t features,
                                             uint64_t seed = 0) {
  KernelContext context;
  context.head_dim = head_dim;
  context.seed = seed;
  // cosFormer streams with a fixed horizon M (here above every length of these tests).
  return attention_kind(kind).make(
      kind_options(kind, {{"features", std::to_string(features)}, {"horizon", "64"}}), context);
}

SASRecConfig streaming_config(const std::string& kind,
                              int64_t heads,
                              const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  SASRecConfig c;
  c.num_items = 30;
  c.max_length = 16;
  c.dim = 16;
  c.blocks = 2;
  c.heads = heads;
  c.attention = kind;
  auto options = extra;
  options.emplace_back("features", "32");
  options.emplace_back("horizon", std::to_string(c.max_length));  // cosFormer: a fixed M
  c.kernel = attention_kind(kind).factory(kind_options(kind, options));
  c.seed = 5;
  return c;
}

std::vector<int64_t> history(int64_t n, uint64_t seed) {
  const Tensor ids = randint({n}, 1, 31, RngKey{seed, 3});
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(ids.at<int64_t>({i}));
  return out;
}

// SASRec::hidden on the unpadded prefix history[0..t), last row [D].
Tensor prefix_hidden(SASRec& model, const std::vector<int64_t>& items, int64_t t) {
  ag::NoGradGuard no_grad;
  const Tensor ids =
      from_vector(std::vector<int64_t>(items.begin(), items.begin() + t), Shape{1, t});
  const Tensor h = model.hidden(ids).value();
  return slice(h, 1, t - 1, t).reshape({model.config().dim});
}

// Pushes every item and compares each hidden row with the prefix forward.
void check_stream_matches_prefixes(SASRec& model, double rtol, double atol) {
  const std::vector<int64_t> items = history(model.config().max_length, 11);
  SASRecStream stream = model.begin_stream();
  for (int64_t t = 1; t <= static_cast<int64_t>(items.size()); ++t) {
    const Tensor got = stream.push(items[t - 1]);
    CAPTURE(t);
    CHECK_CLOSE(got, prefix_hidden(model, items, t), rtol, atol);
  }
  CHECK(stream.length() == model.config().max_length);
}

}  // namespace

TEST_SUITE("layers_streaming") {
  // float32: the stream and the fused kernels add the same terms in different orders (a softmax
  // over the whole row against tiled online-softmax; axpy against SIMD FMA sweeps), each a few
  // ulps per term over <= 16 terms, then two blocks and three LayerNorms of O(1) rows: a few
  // hundred float32 ulps (6e-8) of the O(1) outputs. float64 checks the algebra itself.
  TEST_CASE("SASRec streams reproduce hidden on every prefix for every streaming kind") {
    for (const std::string& kind : kStreamingKinds) {
      for (int64_t heads : {1, 2}) {
        CAPTURE(kind);
        CAPTURE(heads);
        SASRec model(streaming_config(kind, heads));
        model.eval();
        check_stream_matches_prefixes(model, 1e-4, 2e-5);
        model.to(kFloat64);
        check_stream_matches_prefixes(model, 1e-10, 1e-11);
      }
    }
  }

  TEST_CASE("the kernel stream equals the last row of the full causal kernel at every length") {
    for (const std::string& kind : kStreamingKinds) {
      for (int64_t heads : {1, 2}) {
        CAPTURE(kind);
        CAPTURE(heads);
        auto kernel = make_kernel(kind, 8, 16, 3);
        kernel->eval();
        const int64_t l = 12;
        // Keys of growing norm make the FAVOR+ running max rise (the state is rescaled).
        const Tensor q = testing::random_tensor({1, heads, l, 8}, kFloat64, 1, -2, 2);
        const Tensor k = mul(testing::random_tensor({1, heads, l, 8}, kFloat64, 2, -1, 1),
                             add(arange(l, kFloat64).reshape({1, 1, l, 1}), 1.0));
        const Tensor v = testing::random_tensor({1, heads, l, 5}, kFloat64, 3);
        kernel->to(kFloat64);
        auto stream = kernel->begin_stream(heads);
        AttentionMask causal;
        causal.causal = true;
        for (int64_t t = 1; t <= l; ++t) {
          auto row = [&](const Tensor& x) {
            return slice(x, 2, t - 1, t).reshape({heads, x.size(3)});
          };
          const Tensor got = stream->step(row(q), row(k), row(v));
          ag::NoGradGuard no_grad;
          auto prefix = [&](const Tensor& x) {
            return ag::constant(slice(x, 2, 0, t));
          };
          const Tensor full = kernel->attend(prefix(q), prefix(k), prefix(v), causal).value();
          CAPTURE(t);
          CHECK_CLOSE(got, row(full), 1e-10, 1e-12);
        }
        CHECK(stream->length() == l);
        CHECK(stream->state_bytes() > 0);
      }
    }
  }

  TEST_CASE("state memory: the cache grows with the history and the FAVOR+ state does not") {
    auto bytes_after = [](const std::string& kind, int64_t steps) {
      auto kernel = make_kernel(kind, 4, 8);
      kernel->eval();
      auto stream = kernel->begin_stream(2);
      for (int64_t t = 0; t < steps; ++t) stream->step(ones({2, 4}), ones({2, 4}), ones({2, 4}));
      return stream->state_bytes();
    };
    CHECK(bytes_after("softmax-fused", 10) == 2 * 10 * (4 + 4) * 4);
    CHECK(bytes_after("favor", 10) == bytes_after("favor", 3));
    CHECK(bytes_after("linear-elu", 10) == bytes_after("linear-elu", 3));
  }

  TEST_CASE("bad streaming use gets a clear error") {
    SUBCASE("a kernel without a streaming form names itself") {
      SASRecConfig c = streaming_config("favor", 1, {{"key-stabilizer", "global"}});
      SASRec model(c);
      model.eval();
      CHECK_THROWS_WITH_AS(model.begin_stream(), doctest::Contains("global key max"), ValueError);
    }
    SUBCASE("the default: no streaming form") {
      class Plain : public AttentionKernel {
       public:
        Plain() : AttentionKernel("Plain") {}
        Var attend(const Var& q, const Var&, const Var&, const AttentionMask&) override {
          return q;
        }
        std::string describe() const override { return "Plain()"; }
      };
      Plain plain;
      CHECK_THROWS_WITH_AS(
          plain.begin_stream(1), doctest::Contains("Plain() has no streaming form"), ValueError);
    }
    SUBCASE("training mode is refused, at the start and at a push") {
      SASRec model(streaming_config("softmax-fused", 1));
      CHECK_THROWS_WITH_AS(model.begin_stream(), doctest::Contains("eval()"), ValueError);
      model.eval();
      SASRecStream stream = model.begin_stream();
      stream.push(1);
      model.train();
      CHECK_THROWS_WITH_AS(stream.push(2), doctest::Contains("training mode"), ValueError);
    }
    SUBCASE("a history longer than max_length and unknown items are refused") {
      SASRec model(streaming_config("favor", 1));
      model.eval();
      SASRecStream stream = model.begin_stream();
      CHECK_THROWS_WITH_AS(
          stream.push(0), doctest::Contains("item must be in [1, 30]"), ValueError);
      CHECK_THROWS_WITH_AS(stream.push(31), doctest::Contains("got 31"), ValueError);
      for (int64_t t = 0; t < 16; ++t) stream.push(1 + t);
      CHECK_THROWS_WITH_AS(stream.push(1), doctest::Contains("max_length = 16"), ValueError);
    }
    SUBCASE("step shapes are checked") {
      auto kernel = make_attention_kernel("softmax-fused", {});
      kernel->eval();
      auto stream = kernel->begin_stream(2);
      CHECK_THROWS_WITH_AS(stream->step(ones({3, 4}), ones({2, 4}), ones({2, 4})),
                           doctest::Contains("heads = 2"),
                           ShapeError);
      for (const char* kind : {"softmax-fused", "linear-elu"}) {
        auto k = make_attention_kernel(kind, {});
        k->eval();
        auto st = k->begin_stream(1);
        st->step(ones({1, 4}), ones({1, 4}), ones({1, 4}));
        CHECK_THROWS_WITH_AS(st->step(ones({1, 4}), ones({1, 4}), ones({1, 5})),
                             doctest::Contains("head widths changed"),
                             ShapeError);
      }
    }
  }
}
