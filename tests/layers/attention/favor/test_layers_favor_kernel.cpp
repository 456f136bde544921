// FavorKernel: the factory kinds, inspectability (labelled Q', K', N, D, W and their gradients),
// redraws through the kernel, and FAVOR+ inside MultiHeadAttention and a TransformerBlock.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/multihead_attention.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/attention/transformer_block.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 19}, dt, lo, hi);
}

// The registry's kernel `kind` for head width d, with the given options where the kind has them.
std::shared_ptr<AttentionKernel> favor_kernel(
    const std::string& kind,
    int64_t d,
    const std::vector<std::pair<std::string, std::string>>& options = {},
    uint64_t seed = 0) {
  const AttentionKind& info = attention_kind(kind);
  std::vector<std::pair<std::string, std::string>> declared;
  for (const auto& o : options)
    if (info.options.find(o.first) != nullptr)
      declared.push_back(o);
  KernelContext ctx;
  ctx.head_dim = d;
  ctx.seed = seed;
  return make_attention_kernel(kind, ctx, declared);
}

}  // namespace

TEST_SUITE("layers.favor_kernel") {
  TEST_CASE("the factory builds every FAVOR+ kind and the kernels run") {
    Tensor q = rnd({2, 2, 9, 8}, 1, kFloat32), k = rnd({2, 2, 9, 8}, 2, kFloat32),
           v = rnd({2, 2, 9, 8}, 3, kFloat32);
    for (const char* kind :
         {"favor", "favor-iid", "favor-hyp", "favor-trig", "favor-relu", "linear-elu"}) {
      CAPTURE(kind);
      auto kernel = favor_kernel(kind, 8, {{"features", "16"}});
      auto favor = std::dynamic_pointer_cast<FavorKernel>(kernel);
      REQUIRE(favor);
      for (int causal = 0; causal < 2; ++causal) {
        AttentionMask mask;
        mask.causal = causal;
        Tensor out = kernel->attend(constant(q), constant(k), constant(v), mask).value();
        CHECK(out.shape() == Shape{2, 2, 9, 8});
        CHECK_FALSE(has_nonfinite(out));
      }
      if (std::string(kind) != "linear-elu")
        CHECK(favor->projection().shape() == Shape{16, 8});
      else
        CHECK_THROWS_AS(favor->projection(), ValueError);
    }
    auto relu = std::dynamic_pointer_cast<FavorKernel>(favor_kernel("favor-relu", 8));
    CHECK(relu->options().features.epsilon == 1e-3);
    CHECK(relu->options().features.map == FeatureMap::Generalized);
    auto iid = std::dynamic_pointer_cast<FavorKernel>(favor_kernel("favor-iid", 8));
    CHECK_FALSE(iid->options().orthogonal);
    CHECK(std::dynamic_pointer_cast<FavorKernel>(favor_kernel("favor", 8, {{"epsilon", "1e-6"}}))
              ->options()
              .features.epsilon == 1e-6);
    CHECK_THROWS_WITH_AS(favor_kernel("favour", 8), doctest::Contains("favor-relu"), ValueError);
  }

  TEST_CASE("inspectability - labelled Q' K' N D and W with their gradients after backward") {
    auto kernel =
        std::dynamic_pointer_cast<FavorKernel>(favor_kernel("favor", 4, {{"features", "6"}}));
    kernel->to(kFloat64);
    kernel->trace_gradients = true;
    Var q = param(rnd({1, 2, 5, 4}, 10, kFloat64)), k = param(rnd({1, 2, 5, 4}, 11, kFloat64)),
        v = param(rnd({1, 2, 5, 3}, 12, kFloat64));
    AttentionMask mask;
    mask.causal = true;
    Var out = kernel->attend(q, k, v, mask);
    const FavorTrace t = kernel->last_trace();  // a copy: the next call replaces the trace
    CHECK(t.q_features.label() == "q_features");
    CHECK(t.k_features.label() == "k_features");
    CHECK(t.normalizer.label() == "normalizer");
    CHECK(t.projection.label() == "projection");
    CHECK(t.q_features.shape() == Shape{1, 2, 5, 6});
    CHECK(t.normalizer.shape() == Shape{1, 2, 5});
    // out = N / D: the trace values are what the output was computed from.
    CHECK_CLOSE(out.value(), t.numerator.value() / unsqueeze(t.normalizer.value(), -1), 1e-14, 0);
    Tensor g = rnd({1, 2, 5, 3}, 13, kFloat64);
    out.backward(g);
    for (const Var* x :
         {&t.q_features, &t.k_features, &t.numerator, &t.normalizer, &t.projection}) {
      CAPTURE(x->label());
      REQUIRE(x->has_grad());
      CHECK(x->grad().shape() == x->shape());
    }
    // dL/dD = -sum_c g N / D^2 per row.
    Tensor d = t.normalizer.value(), n = t.numerator.value();
    Tensor want = -sum(g * n, -1) / (d * d);
    CHECK_CLOSE(t.normalizer.grad(), want, 1e-12, 1e-14);
    // dL/dW agrees with the composed reference's.
    FavorAttentionOptions o;
    o.impl = FavorImpl::Reference;
    Var w = param(kernel->projection().clone());
    favor_attention(constant(q.value()), constant(k.value()), constant(v.value()), w, mask, o)
        .backward(g);
    CHECK_CLOSE(t.projection.grad(), w.grad(), 1e-10, 1e-12);
    // Hooks work on the labelled Vars before backward (no retain flag needed).
    kernel->trace_gradients = false;
    Var out2 = kernel->attend(q, k, v, mask);
    Tensor seen;
    kernel->last_trace().k_features.register_hook([&](const Tensor& gr) {
      seen = gr;
      return gr;
    });
    out2.backward(g);
    CHECK(seen.shape() == Shape{1, 2, 5, 6});
    CHECK_CLOSE(seen, t.k_features.grad(), 1e-12, 1e-14);
    // keep_trace = false keeps nothing.
    kernel->keep_trace = false;
    kernel->attend(q, k, v, mask);
    CHECK_FALSE(kernel->last_trace().q_features.defined());
  }

  TEST_CASE("redraws through the kernel follow the policy and replay exactly") {
    auto kernel = std::dynamic_pointer_cast<FavorKernel>(favor_kernel(
        "favor", 4, {{"features", "8"}, {"redraw", "every-n"}, {"redraw-interval", "2"}}, 5));
    Var q = constant(rnd({1, 1, 6, 4}, 20, kFloat32));
    std::vector<Tensor> outs, ws;
    for (int i = 0; i < 4; ++i) {
      outs.push_back(kernel->attend(q, q, q, {}).value());
      ws.push_back(kernel->projection().clone());
    }
    CHECK(testing::bitwise_equal(ws[0], ws[1]));
    CHECK_FALSE(testing::bitwise_equal(ws[1], ws[2]));
    CHECK(testing::bitwise_equal(outs[0], outs[1]));
    kernel->random_features().set_calls(2);  // replay call 2
    CHECK(testing::bitwise_equal(kernel->attend(q, q, q, {}).value(), outs[2]));
    kernel->eval();
    const Tensor w = kernel->projection().clone();
    for (int i = 0; i < 3; ++i) kernel->attend(q, q, q, {});
    CHECK(testing::bitwise_equal(kernel->projection(), w));
    // The projection is a named buffer of the kernel (saved with the model).
    bool found = false;
    for (const auto& [name, t] : kernel->named_buffers())
      found = found || name == "features.projection";
    CHECK(found);
  }

  TEST_CASE("FAVOR+ inside MultiHeadAttention and a TransformerBlock passes gradcheck in float64") {
    for (const char* kind : {"favor", "favor-hyp", "linear-elu"}) {
      for (int causal = 0; causal < 2; ++causal) {
        CAPTURE(kind);
        CAPTURE(causal);
        // Fixed features: the check runs in eval mode.
        auto kernel = favor_kernel(kind, 4, {{"features", "8"}, {"redraw", "every-call"}});
        Generator init(7);
        MultiHeadAttentionOptions mo;
        mo.heads = 2;
        auto mha = std::make_shared<MultiHeadAttention>(8, kernel, init, mo);
        TransformerBlockOptions bo;
        bo.dim = 8;
        bo.ffn_hidden = 12;
        bo.dropout = 0;
        TransformerBlock block(mha, bo, init, std::make_shared<Generator>(1));
        block.to(kFloat64);
        block.eval();
        AttentionMask mask;
        mask.causal = causal;
        mask.key_padding = ones({2, 5});
        mask.key_padding.set({1, 4}, 0);
        GradcheckOptions o;
        o.params = block.parameters();
        o.fast_mode = true;
        o.fast_trials = 3;
        const auto r =
            gradcheck([&](const std::vector<Var>& x) { return block.forward(x[0], mask); },
                      {rnd({2, 5, 8}, 30, kFloat64)},
                      o);
        CHECK_MESSAGE(r.ok, r.report());
        // The MHA alone, in slow mode.
        GradcheckOptions s;
        s.params = mha->parameters();
        const auto r2 =
            gradcheck([&](const std::vector<Var>& x) { return mha->forward(x[0], mask); },
                      {rnd({2, 5, 8}, 31, kFloat64)},
                      s);
        CHECK_MESSAGE(r2.ok, r2.report());
      }
    }
  }

  TEST_CASE("kernel errors name the problem") {
    auto kernel = favor_kernel("favor", 8, {{"features", "4"}});
    Var q = constant(zeros({1, 1, 3, 6}));
    CHECK_THROWS_WITH_AS(kernel->attend(q, q, q, {}),
                         doctest::Contains("head_dim = 8], got [1, 1, 3, 6]"),
                         ShapeError);
    FavorOptions bad;
    bad.projections = 0;
    CHECK_THROWS_AS(FavorKernel{bad}, ValueError);
    FavorOptions neg;
    neg.features.epsilon = -1e-3;
    CHECK_THROWS_AS(FavorKernel{neg}, ValueError);
  }
}
