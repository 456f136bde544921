// cosFormer attention (layers/attention/cosformer/cosformer_attention.cpp,
// docs/derivations/cosformer.md): the linear kernel against the O(L^2) definition composed here
// from primitive ops (value and gradient, causal and bidirectional, key padding, odd sizes, cross
// attention), gradcheck in float64, the horizon (prefix consistency, refusal below the length),
// refused distance decay, the kind in the factory, and `attnlab train --attention cosformer` on
// tiny synthetic data.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/attention_registry.hpp"
#include "tests/cli_test_helpers.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

constexpr double kPi = 3.14159265358979323846;

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 31}, dt, lo, hi);
}

// The kind built by name through the registry, with its two options set as the CLI sets them.
std::shared_ptr<AttentionKernel> cosformer(double epsilon, int64_t horizon = 0) {
  std::ostringstream eps;
  eps.precision(17);
  eps << epsilon;
  return make_attention_kernel(
      "cosformer", {}, {{"normalizer-epsilon", eps.str()}, {"horizon", std::to_string(horizon)}});
}

// Row b keeps its first l - 2b - 1 keys (at least one); with leave_one_empty the last row has none.
Tensor padding(int64_t batch, int64_t l, bool leave_one_empty = false) {
  Tensor p = zeros({batch, l});
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t real =
        leave_one_empty && b == batch - 1 ? 0 : std::max<int64_t>(1, l - 2 * b - 1);
    for (int64_t j = 0; j < real; ++j) p.set({b, j}, 1);
  }
  return p;
}

// The definition, O(L^2): the weights matrix
//   W_ij = relu(q_i) . relu(k_j) cos(pi/2 (i - j) / M) [j <= i if causal] [key j is real]
// and out_i = sum_j W_ij v_j / (sum_j W_ij + eps), with M = max(Lq, Lk) unless given.
Var reference(const Var& q,
              const Var& k,
              const Var& v,
              const AttentionMask& mask,
              double eps,
              int64_t horizon = 0) {
  const int64_t b = q.size(0), lq = q.size(2), lk = k.size(2);
  const double m = static_cast<double>(horizon > 0 ? horizon : std::max(lq, lk));
  Tensor reweight = zeros({b, 1, lq, lk}, kFloat64);
  for (int64_t x = 0; x < b; ++x) {
    for (int64_t i = 0; i < lq; ++i) {
      for (int64_t j = 0; j < lk; ++j) {
        const bool seen = !mask.causal || j <= i;
        const bool real = !mask.key_padding.defined() || mask.key_padding.get({x, j}) != 0;
        if (seen && real)
          reweight.set({x, 0, i, j}, std::cos(kPi / 2 * static_cast<double>(i - j) / m));
      }
    }
  }
  const Var w = matmul(relu(q), relu(k), false, true) * constant(reweight.to(q.dtype()));
  return matmul(w, v) / (sum(w, -1, true) + eps);
}

struct Result {
  Tensor out, dq, dk, dv;
};

template <class F>
Result run(F&& attention, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g) {
  Var vq = param(q), vk = param(k), vv = param(v);
  Var out = attention(vq, vk, vv);
  out.backward(g);
  return {out.value(), vq.grad(), vk.grad(), vv.grad()};
}

}  // namespace

TEST_SUITE("layers.cosformer") {
  TEST_CASE_TEMPLATE(
      "linear kernel equals the O(L^2) definition in value and gradient", T, float, double) {
    const DType dt = dtype_of<T>();
    const double tol = dt == kFloat32 ? 1e-4 : 1e-11;
    const double eps = 1e-6;
    struct Size {
      int64_t b, h, lq, lk, d, dv;
    };
    uint64_t seed = 1;
    for (Size z : {Size{1, 1, 1, 1, 3, 2},
                   Size{2, 3, 9, 9, 5, 7},
                   Size{2, 2, 33, 33, 8, 16},
                   Size{1, 2, 7, 19, 6, 3},
                   Size{2, 1, 19, 7, 4, 5}}) {
      for (int causal = 0; causal < 2; ++causal) {
        if (causal && z.lq != z.lk)
          continue;
        for (int pad = 0; pad < 2; ++pad) {
          CAPTURE(z.lq);
          CAPTURE(z.lk);
          CAPTURE(causal);
          CAPTURE(pad);
          const Tensor q = rnd({z.b, z.h, z.lq, z.d}, seed++, dt);
          const Tensor k = rnd({z.b, z.h, z.lk, z.d}, seed++, dt);
          const Tensor v = rnd({z.b, z.h, z.lk, z.dv}, seed++, dt);
          const Tensor g = rnd({z.b, z.h, z.lq, z.dv}, seed++, dt);
          AttentionMask mask;
          mask.causal = causal;
          if (pad)
            mask.key_padding = padding(z.b, z.lk);
          auto kernel = cosformer(eps);
          const Result lin = run(
              [&](const Var& a, const Var& b, const Var& c) {
                return kernel->attend(a, b, c, mask);
              },
              q,
              k,
              v,
              g);
          const Result ref = run(
              [&](const Var& a, const Var& b, const Var& c) {
                return reference(a, b, c, mask, eps);
              },
              q,
              k,
              v,
              g);
          CHECK_CLOSE(lin.out, ref.out, tol, tol);
          CHECK_CLOSE(lin.dq, ref.dq, tol, tol);
          CHECK_CLOSE(lin.dk, ref.dk, tol, tol);
          CHECK_CLOSE(lin.dv, ref.dv, tol, tol);
        }
      }
    }
  }

  TEST_CASE("gradcheck in float64 for q k v - causal and bidirectional with key padding") {
    for (int causal = 0; causal < 2; ++causal) {
      CAPTURE(causal);
      AttentionMask mask;
      mask.causal = causal;
      mask.key_padding = padding(2, 6);
      auto kernel = cosformer(1e-6);
      auto f = [&](const std::vector<Var>& in) {
        return kernel->attend(in[0], in[1], in[2], mask);
      };
      const auto r = gradcheck(f,
                               {rnd({2, 2, 6, 4}, 101, kFloat64, -1, 2),
                                rnd({2, 2, 6, 4}, 102, kFloat64, -1, 2),
                                rnd({2, 2, 6, 3}, 103, kFloat64)});
      CHECK_MESSAGE(r.ok, r.report());
    }
  }

  TEST_CASE("padded keys contribute nothing and a row without real keys gives zeros") {
    AttentionMask mask;
    mask.causal = true;
    mask.key_padding = padding(2, 5, /*leave_one_empty=*/true);
    const Tensor q = rnd({2, 1, 5, 4}, 111, kFloat64), k = rnd({2, 1, 5, 4}, 112, kFloat64);
    Tensor v = rnd({2, 1, 5, 3}, 113, kFloat64);
    auto kernel = cosformer(1e-6);
    const Tensor out = kernel->attend(constant(q), constant(k), constant(v), mask).value();
    // Any value at a padded key, even a huge one, leaves the output unchanged.
    v.set({0, 0, 4, 0}, 1e30);
    const Tensor again = kernel->attend(constant(q), constant(k), constant(v), mask).value();
    CHECK(testing::bitwise_equal(out, again));
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t c = 0; c < 3; ++c) CHECK(out.get({1, 0, i, c}) == 0.0);
    CHECK_FALSE(has_nonfinite(out));
  }

  TEST_CASE("a fixed horizon makes causal outputs independent of the sequence length") {
    // With M fixed, a prefix of the sequence gives the first rows of the full output exactly
    // (up to rounding); with M = the length (the default) it does not.
    const int64_t l = 12, prefix = 7;
    const Tensor q = rnd({1, 2, l, 4}, 121, kFloat64, -0.5, 1.5);
    const Tensor k = rnd({1, 2, l, 4}, 122, kFloat64, -0.5, 1.5);
    const Tensor v = rnd({1, 2, l, 3}, 123, kFloat64);
    AttentionMask mask;
    mask.causal = true;
    auto first = [](const Tensor& x, int64_t n) {
      return constant(slice(x, 2, 0, n));
    };
    for (int64_t horizon : {int64_t{0}, l}) {
      CAPTURE(horizon);
      auto kernel = cosformer(0.0, horizon);
      const Tensor full = kernel->attend(first(q, l), first(k, l), first(v, l), mask).value();
      const Tensor part =
          kernel->attend(first(q, prefix), first(k, prefix), first(v, prefix), mask).value();
      const std::string diff = testing::compare(part, slice(full, 2, 0, prefix), 1e-12, 1e-12);
      CHECK(diff.empty() == (horizon > 0));
      CHECK_CLOSE(full,
                  reference(first(q, l), first(k, l), first(v, l), mask, 0.0, horizon).value(),
                  1e-12,
                  1e-12);
    }
  }

  TEST_CASE("bad input - horizon below the length and distance decay and bad options") {
    const Var q(rnd({1, 1, 6, 4}, 131, kFloat64)), k(rnd({1, 1, 6, 4}, 132, kFloat64));
    const Var v(rnd({1, 1, 6, 2}, 133, kFloat64));
    CHECK_THROWS_WITH_AS(
        cosformer(1e-6, 5)->attend(q, k, v, {}), doctest::Contains("horizon M = 5"), ValueError);
    AttentionMask decay;
    decay.causal = true;
    decay.decay = 0.1;
    CHECK_THROWS_WITH_AS(
        cosformer(1e-6)->attend(q, k, v, decay), doctest::Contains("distance decay"), ValueError);
    AttentionMask causal;
    causal.causal = true;
    const Var short_q(rnd({1, 1, 4, 4}, 134, kFloat64));
    CHECK_THROWS_WITH_AS(
        cosformer(1e-6)->attend(short_q, k, v, causal), doctest::Contains("equal"), ShapeError);
    CHECK_THROWS_AS(cosformer(-1.0), ValueError);
    CHECK_THROWS_AS(cosformer(1e-6, -3), ValueError);
  }

  TEST_CASE("streaming needs a fixed horizon - stays within it - and is inference only") {
    // With M = the sequence length (horizon 0) every new item would change all past weights.
    auto by_length = make_attention_kernel("cosformer");
    by_length->eval();
    CHECK_THROWS_AS(by_length->begin_stream(1), ValueError);
    auto fixed = make_attention_kernel("cosformer", {}, {{"horizon", "2"}});
    CHECK_THROWS_AS(fixed->begin_stream(1), ValueError);  // training mode
    fixed->eval();
    auto stream = fixed->begin_stream(1);
    const Tensor x = ones({1, 4});
    stream->step(x, x, x);
    stream->step(x, x, x);
    CHECK_THROWS_WITH_AS(
        stream->step(x, x, x), doctest::Contains("beyond the horizon M = 2"), ValueError);
  }

  TEST_CASE("the registry entry - listed and built by name with its capabilities and options") {
    CHECK(attention_kind_names().find("cosformer") != std::string::npos);
    const AttentionKind& kind = attention_kind("cosformer");
    CHECK(kind.family == "cosformer");
    CHECK(kind.capabilities.causal);
    CHECK(kind.capabilities.bidirectional);
    CHECK(kind.capabilities.key_padding);
    CHECK_FALSE(kind.capabilities.distance_decay);
    CHECK_FALSE(kind.capabilities.dropout);
    CHECK_FALSE(kind.capabilities.random_features);
    CHECK(kind.options.default_text("normalizer-epsilon") == "1e-06");
    CHECK(kind.options.default_text("horizon") == "0");
    auto kernel = make_attention_kernel("cosformer");
    CHECK(kernel->describe() == "CosformerKernel(eps=1e-06, horizon=length)");
    CHECK(cosformer(0.0, 20)->describe() == "CosformerKernel(eps=0, horizon=20)");
    const Var q(rnd({1, 1, 5, 4}, 141, kFloat32)), k(rnd({1, 1, 5, 4}, 142, kFloat32));
    const Var v(rnd({1, 1, 5, 2}, 143, kFloat32));
    AttentionMask mask;
    mask.causal = true;
    CHECK_CLOSE(
        kernel->attend(q, k, v, mask).value(), reference(q, k, v, mask, 1e-6).value(), 1e-5, 1e-6);
    CHECK_THROWS_WITH_AS(make_attention_kernel("cosformer", {}, {{"features", "8"}}),
                         doctest::Contains("not an option of cosformer"),
                         ValueError);
  }

  TEST_CASE("the registry's gradcheck cases pass and its cost is linear attention on 2d features") {
    const AttentionKind& kind = attention_kind("cosformer");
    REQUIRE(kind.gradcheck_cases);
    const auto cases = kind.gradcheck_cases();
    CHECK(cases.size() == 3);
    for (const auto& c : cases) {
      CAPTURE(c.name);
      const auto r = gradcheck(c.fn, c.inputs);
      CHECK_MESSAGE(r.ok, r.report());
    }
    // elu + 1 is the same sums on d features, cosFormer's are 2d wide: twice the FLOPs, the same
    // bytes, and both linear in the length.
    const AttentionKind& elu = attention_kind("linear-elu");
    REQUIRE(kind.cost);
    REQUIRE(elu.cost);
    for (int causal = 0; causal < 2; ++causal) {
      AttentionShape s;
      s.batch_heads = 2;
      s.lq = s.lk = 512;
      s.d = s.dv = 64;
      s.causal = causal;
      const AttentionCost c = kind.cost(s, kind.options.defaults());
      const AttentionCost e = elu.cost(s, elu.options.defaults());
      CHECK(c.total_flops() == doctest::Approx(2 * e.total_flops()));
      CHECK(c.forward_bytes == doctest::Approx(e.forward_bytes));
      s.lq = s.lk = 1024;
      CHECK(kind.cost(s, kind.options.defaults()).total_flops() ==
            doctest::Approx(2 * c.total_flops()));
    }
  }

  TEST_CASE("attnlab train --attention cosformer on tiny synthetic data") {
    const auto r = attnlab_test::run_cli(
        "train --attention cosformer --synthetic-users 40 --synthetic-items 30 "
        "--synthetic-max-length 20 --maxlen 16 --dim 8 --blocks 1 --epochs 1 --eval-every 1 "
        "--batch 16");
    CAPTURE(r.out);
    CHECK(r.status == 0);
    CHECK(r.out.find("attention=cosformer") != std::string::npos);
    CHECK(r.out.find("epoch 1: loss") != std::string::npos);
  }
}
