#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/multihead_attention.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"
#include "layers/attention/softmax/softmax_kernel.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 3}, dt, lo, hi);
}

// Padding pattern: batch b keeps its first (lk - 2b - 1) keys (at least one).
Tensor padding(int64_t batch, int64_t lk, bool leave_one_empty = false) {
  Tensor p = zeros({batch, lk}, kFloat32);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t real =
        leave_one_empty && b == batch - 1 ? 0 : std::max<int64_t>(1, lk - 2 * b - 1);
    for (int64_t j = 0; j < real; ++j) p.set({b, j}, 1);
  }
  return p;
}

// Value and all three gradients of sum(out * g) for one implementation.
struct Result {
  Tensor out, dq, dk, dv;
};
Result run(SoftmaxImpl impl,
           const Tensor& q,
           const Tensor& k,
           const Tensor& v,
           const Tensor& g,
           const AttentionMask& mask,
           const AttentionDropout& drop = {}) {
  Var vq = param(q), vk = param(k), vv = param(v);
  Var out = softmax_attention(vq, vk, vv, mask, impl, 0.0, drop);
  out.backward(g);
  return {out.value(), vq.grad(), vk.grad(), vv.grad()};
}

}  // namespace

TEST_SUITE("layers.softmax_attention") {
  TEST_CASE_TEMPLATE(
      "fused equals reference in value and gradient for every mask", T, float, double) {
    const DType dt = dtype_of<T>();
    const double tol = dt == kFloat32 ? 2e-5 : 1e-12;
    struct Size {
      int64_t b, h, lq, lk, d, dv;
    };
    uint64_t seed = 1;
    for (Size z : {Size{1, 1, 1, 1, 4, 4},
                   Size{2, 3, 5, 5, 3, 3},
                   Size{1, 2, 67, 67, 17, 9},
                   Size{2, 1, 130, 130, 16, 16},
                   Size{1, 1, 7, 70, 8, 8},
                   Size{2, 2, 70, 7, 5, 6}}) {
      for (int causal = 0; causal < 2; ++causal) {
        for (int pad = 0; pad < 2; ++pad) {
          for (double decay : {0.0, 0.3}) {
            CAPTURE(z.lq);
            CAPTURE(z.lk);
            CAPTURE(causal);
            CAPTURE(pad);
            CAPTURE(decay);
            Tensor q = rnd({z.b, z.h, z.lq, z.d}, seed++, dt, -2, 2);
            Tensor k = rnd({z.b, z.h, z.lk, z.d}, seed++, dt, -2, 2);
            Tensor v = rnd({z.b, z.h, z.lk, z.dv}, seed++, dt);
            Tensor g = rnd({z.b, z.h, z.lq, z.dv}, seed++, dt);
            AttentionMask m;
            m.causal = causal;
            m.decay = decay;
            if (pad)
              m.key_padding = padding(z.b, z.lk);
            const Result ref = run(SoftmaxImpl::Reference, q, k, v, g, m);
            const Result fus = run(SoftmaxImpl::Fused, q, k, v, g, m);
            CHECK_CLOSE(fus.out, ref.out, tol, tol);
            CHECK_CLOSE(fus.dq, ref.dq, tol, tol);
            CHECK_CLOSE(fus.dk, ref.dk, tol, tol);
            CHECK_CLOSE(fus.dv, ref.dv, tol, tol);
            CHECK_FALSE(has_nonfinite(fus.out));
            CHECK_FALSE(has_nonfinite(fus.dq));
          }
        }
      }
    }
  }

  TEST_CASE("attention dropout: the fused kernel recomputes exactly the reference's mask") {
    Tensor q = rnd({2, 2, 33, 8}, 1, kFloat64), k = rnd({2, 2, 33, 8}, 2, kFloat64),
           v = rnd({2, 2, 33, 8}, 3, kFloat64), g = rnd({2, 2, 33, 8}, 4, kFloat64);
    AttentionMask m;
    m.causal = true;
    const AttentionDropout drop{0.3, RngKey{7, 1}};
    const Result ref = run(SoftmaxImpl::Reference, q, k, v, g, m, drop);
    const Result fus = run(SoftmaxImpl::Fused, q, k, v, g, m, drop);
    CHECK_CLOSE(fus.out, ref.out, 1e-12, 1e-12);
    CHECK_CLOSE(fus.dq, ref.dq, 1e-12, 1e-12);
    CHECK_CLOSE(fus.dk, ref.dk, 1e-12, 1e-12);
    CHECK_CLOSE(fus.dv, ref.dv, 1e-12, 1e-12);
    // And it differs from no dropout.
    CHECK(max_abs_diff(fus.out, run(SoftmaxImpl::Fused, q, k, v, g, m).out) > 1e-3);
  }

  TEST_CASE("both implementations pass gradcheck in float64") {
    for (SoftmaxImpl impl : {SoftmaxImpl::Reference, SoftmaxImpl::Fused}) {
      for (int causal = 0; causal < 2; ++causal) {
        CAPTURE(causal);
        AttentionMask m;
        m.causal = causal;
        m.key_padding = padding(2, 6);
        m.decay = 0.2;
        const auto f = [impl, m](const std::vector<Var>& x) {
          return softmax_attention(x[0], x[1], x[2], m, impl);
        };
        const auto r = gradcheck(f,
                                 {rnd({2, 1, 6, 3}, 10, kFloat64),
                                  rnd({2, 1, 6, 3}, 11, kFloat64),
                                  rnd({2, 1, 6, 2}, 12, kFloat64)});
        CHECK_MESSAGE(r.ok, r.report());
      }
    }
  }

  TEST_CASE("causal: output i does not depend on inputs after i") {
    Tensor q = rnd({1, 2, 40, 8}, 20, kFloat32), k = rnd({1, 2, 40, 8}, 21, kFloat32),
           v = rnd({1, 2, 40, 8}, 22, kFloat32);
    AttentionMask m;
    m.causal = true;
    for (SoftmaxImpl impl : {SoftmaxImpl::Reference, SoftmaxImpl::Fused}) {
      Tensor base = softmax_attention(constant(q), constant(k), constant(v), m, impl).value();
      const int64_t t = 17;  // change everything at positions > t
      Tensor q2 = q.clone(), k2 = k.clone(), v2 = v.clone();
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t i = t + 1; i < 40; ++i)
          for (int64_t c = 0; c < 8; ++c) {
            q2.set({0, h, i, c}, 5.0);
            k2.set({0, h, i, c}, -3.0);
            v2.set({0, h, i, c}, 100.0);
          }
      Tensor changed = softmax_attention(constant(q2), constant(k2), constant(v2), m, impl).value();
      CHECK_CLOSE(slice(changed, 2, 0, t + 1), slice(base, 2, 0, t + 1), 0, 0);
      CHECK(max_abs_diff(slice(changed, 2, t + 1, 40), slice(base, 2, t + 1, 40)) >
            1e-2);  // later ones do
    }
  }

  TEST_CASE("padded keys change nothing - the result equals attention over the real keys") {
    const int64_t lk = 12, real = 7;
    Tensor q = rnd({1, 1, 5, 4}, 30, kFloat64), k = rnd({1, 1, lk, 4}, 31, kFloat64),
           v = rnd({1, 1, lk, 4}, 32, kFloat64);
    AttentionMask m;
    m.key_padding = zeros({1, lk});
    for (int64_t j = 0; j < real; ++j) m.key_padding.set({0, j}, 1);
    for (SoftmaxImpl impl : {SoftmaxImpl::Reference, SoftmaxImpl::Fused}) {
      Tensor out = softmax_attention(constant(q), constant(k), constant(v), m, impl).value();
      Tensor k2 = k.clone(), v2 = v.clone();
      for (int64_t j = real; j < lk; ++j)
        for (int64_t c = 0; c < 4; ++c) {
          k2.set({0, 0, j, c}, 50.0);
          v2.set({0, 0, j, c}, -1e6);
        }
      CHECK_CLOSE(
          softmax_attention(constant(q), constant(k2), constant(v2), m, impl).value(), out, 0, 0);
      Tensor trimmed =
          softmax_attention(
              constant(q), constant(slice(k, 2, 0, real)), constant(slice(v, 2, 0, real)), {}, impl)
              .value();
      CHECK_CLOSE(out, trimmed, 1e-13, 1e-13);
    }
  }

  TEST_CASE("a fully masked row gives zeros and zero gradients / never NaN") {
    // Batch 1 has no real key at all; with causal and Lq > Lk the first queries see no key either.
    Tensor q = rnd({2, 1, 6, 4}, 40, kFloat32), k = rnd({2, 1, 4, 4}, 41, kFloat32),
           v = rnd({2, 1, 4, 4}, 42, kFloat32), g = ones({2, 1, 6, 4});
    AttentionMask m;
    m.causal = true;
    m.key_padding = padding(2, 4, /*leave_one_empty=*/true);
    for (SoftmaxImpl impl : {SoftmaxImpl::Reference, SoftmaxImpl::Fused}) {
      const Result r = run(impl, q, k, v, g, m);
      CHECK_FALSE(has_nonfinite(r.out));
      CHECK_FALSE(has_nonfinite(r.dq));
      CHECK_FALSE(has_nonfinite(r.dk));
      CHECK_FALSE(has_nonfinite(r.dv));
      // Batch 1: all zeros. Batch 0, queries 0 and 1 sit before the first key (offset -2): zeros.
      CHECK(max_abs_diff(slice(r.out, 0, 1, 2), zeros({1, 1, 6, 4})) == 0);
      CHECK(max_abs_diff(slice(r.out, 2, 0, 2), zeros({2, 1, 2, 4})) == 0);
      CHECK(max_abs_diff(slice(r.dq, 0, 1, 2), zeros({1, 1, 6, 4})) == 0);
    }
  }

  TEST_CASE("large logits stay finite and agree") {
    Tensor q = rnd({1, 1, 50, 8}, 50, kFloat32, -100, 100),
           k = rnd({1, 1, 50, 8}, 51, kFloat32, -100, 100), v = rnd({1, 1, 50, 8}, 52, kFloat32),
           g = rnd({1, 1, 50, 8}, 53, kFloat32);
    AttentionMask m;
    m.causal = true;
    const Result ref = run(SoftmaxImpl::Reference, q, k, v, g, m);
    const Result fus = run(SoftmaxImpl::Fused, q, k, v, g, m);
    CHECK_FALSE(has_nonfinite(fus.out));
    CHECK_FALSE(has_nonfinite(fus.dq));
    CHECK_CLOSE(fus.out, ref.out, 1e-4, 1e-4);
  }

  TEST_CASE("the reference exposes scores and weights with their gradients") {
    Var q = param(rnd({1, 1, 4, 2}, 60, kFloat64)), k = param(rnd({1, 1, 4, 2}, 61, kFloat64)),
        v = param(rnd({1, 1, 4, 2}, 62, kFloat64));
    AttentionMask m;
    m.causal = true;
    AttentionTrace trace;
    Var out = softmax_attention(q, k, v, m, SoftmaxImpl::Reference, 0.0, {}, &trace);
    trace.weights.retain_grad();
    trace.scores.retain_grad();
    sum(out).backward();
    CHECK(trace.weights.label() == "weights");
    CHECK(trace.weights.value().get({0, 0, 0, 0}) == doctest::Approx(1.0));  // first row: one key
    CHECK(trace.weights.value().get({0, 0, 0, 1}) == 0);
    CHECK(std::isinf(trace.scores.value().get({0, 0, 0, 3})));
    CHECK(trace.weights.grad().shape() == Shape{1, 1, 4, 4});
    CHECK(trace.scores.grad().get({0, 0, 1, 3}) == 0);  // masked: no gradient
    CHECK_THROWS_WITH_AS(softmax_attention(q, k, v, m, SoftmaxImpl::Fused, 0.0, {}, &trace),
                         doctest::Contains("needs the reference"),
                         ValueError);
  }

  TEST_CASE("bad shapes and masks give clear errors") {
    Var q = param(zeros({1, 2, 4, 8})), k = param(zeros({1, 2, 5, 8})),
        v = param(zeros({1, 2, 4, 8}));
    CHECK_THROWS_WITH_AS(softmax_attention(q, k, v),
                         doctest::Contains("k and v must have the same length"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(softmax_attention(q, param(zeros({1, 2, 4, 7})), v),
                         doctest::Contains("same head_dim"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(softmax_attention(param(zeros({2, 4, 8})), v, v),
                         doctest::Contains("[batch, heads"),
                         ShapeError);
    AttentionMask m;
    m.key_padding = ones({1, 5});
    CHECK_THROWS_WITH_AS(softmax_attention(q, v, v, m),
                         doctest::Contains("key_padding must be [batch, key_length] = [1, 4]"),
                         ShapeError);
    m = {};
    m.decay = -1;
    CHECK_THROWS_AS(softmax_attention(q, v, v, m), ValueError);
  }
}

TEST_SUITE("layers.multihead_attention") {
  TEST_CASE("MultiHeadAttention gradchecks in float64 with both kernels") {
    for (SoftmaxImpl impl : {SoftmaxImpl::Reference, SoftmaxImpl::Fused}) {
      Generator init(5);
      MultiHeadAttentionOptions opt;
      opt.heads = 2;
      MultiHeadAttention mha(4, std::make_shared<SoftmaxKernel>(impl), init, opt);
      mha.to(kFloat64);
      AttentionMask m;
      m.causal = true;
      m.key_padding = padding(2, 3);
      GradcheckOptions o;
      o.params = mha.parameters();
      const auto r = gradcheck([&](const std::vector<Var>& x) { return mha.forward(x[0], m); },
                               {rnd({2, 3, 4}, 70, kFloat64)},
                               o);
      CHECK_MESSAGE(r.ok, r.report());
    }
  }

  TEST_CASE("heads split and merge - the reference and fused layers agree") {
    Generator init1(9), init2(9);
    MultiHeadAttentionOptions opt;
    opt.heads = 4;
    MultiHeadAttention a(16, std::make_shared<SoftmaxKernel>(SoftmaxImpl::Reference), init1, opt);
    MultiHeadAttention b(16, std::make_shared<SoftmaxKernel>(SoftmaxImpl::Fused), init2, opt);
    Var x = constant(rnd({2, 9, 16}, 80, kFloat32));
    AttentionMask m;
    m.causal = true;
    CHECK_CLOSE(a.forward(x, m).value(), b.forward(x, m).value(), 1e-5, 1e-6);
    Var t = constant(arange(24, kFloat32).reshape({1, 2, 12}));
    CHECK(split_heads(t, 3).shape() == Shape{1, 3, 2, 4});
    CHECK(split_heads(t, 3).value().get({0, 1, 0, 0}) == 4);
    CHECK_CLOSE(merge_heads(split_heads(t, 3)).value(), t.value(), 0, 0);
    // One head: a reshape sharing the input's bytes, the same values and gradient as the
    // permuted form.
    Var one = param(arange(24, kFloat32).reshape({2, 3, 4}));
    Var s1 = split_heads(one, 1);
    CHECK(s1.shape() == Shape{2, 1, 3, 4});
    CHECK_CLOSE(
        s1.value(), attnlab::permute(one.value().reshape({2, 3, 1, 4}), {0, 2, 1, 3}), 0, 0);
    CHECK(s1.value().data<float>() == one.value().data<float>());
    Var m1 = merge_heads(s1 * 2.0);
    CHECK(m1.shape() == Shape{2, 3, 4});
    ag::sum(m1 * constant(arange(24, kFloat32).reshape({2, 3, 4}))).backward();
    CHECK_CLOSE(one.grad(), attnlab::mul(arange(24, kFloat32).reshape({2, 3, 4}), 2.0), 0, 0);
    CHECK(a.parameter_count() == 4 * (16 * 16 + 16));
    CHECK_THROWS_AS(MultiHeadAttention(10, std::make_shared<SoftmaxKernel>(), init1, opt),
                    ValueError);
  }
}
