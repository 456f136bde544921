// FAVOR+ attention: fused ops against the composed references (values and gradients, causal and
// bidirectional, masks, odd sizes), gradcheck of the fused ops and of the whole attention with the
// stabilisers (exact cancellation at eps = 0, the frozen-constant version at eps > 0), causality,
// padding, convergence to softmax attention, thread-count independence and memory.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 17}, dt, lo, hi);
}

Tensor padding(int64_t batch, int64_t l, bool leave_one_empty = false) {
  Tensor p = zeros({batch, l});
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t real =
        leave_one_empty && b == batch - 1 ? 0 : std::max<int64_t>(1, l - 2 * b - 1);
    for (int64_t j = 0; j < real; ++j) p.set({b, j}, 1);
  }
  return p;
}

struct Result {
  Tensor out, dq, dk, dv, dw;
};
Result run(FavorImpl impl,
           const Tensor& q,
           const Tensor& k,
           const Tensor& v,
           const Tensor& w,
           const Tensor& g,
           const AttentionMask& mask,
           FavorAttentionOptions o) {
  o.impl = impl;
  Var vq = param(q), vk = param(k), vv = param(v), vw = param(w);
  Var out = favor_attention(vq, vk, vv, vw, mask, o);
  out.backward(g);
  return {out.value(), vq.grad(), vk.grad(), vv.grad(), vw.grad()};
}

// Mean relative error |a - b| / |b| over all elements of b.
double rel_error(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num += std::fabs(a.flat(i) - b.flat(i));
    den += std::fabs(b.flat(i));
  }
  return num / den;
}

}  // namespace

TEST_SUITE("layers.favor_attention") {
  TEST_CASE_TEMPLATE(
      "fused equals reference in value and gradient - maps x masks x sizes", T, float, double) {
    const DType dt = dtype_of<T>();
    const double tol = dt == kFloat32 ? 1e-4 : 1e-10;
    struct Size {
      int64_t b, h, lq, lk, d, dv, m;
    };
    uint64_t seed = 100;
    for (Size z : {Size{1, 1, 1, 1, 4, 4, 4},
                   Size{2, 3, 9, 9, 5, 9, 7},
                   Size{1, 2, 37, 37, 8, 16, 20},
                   Size{2, 1, 70, 70, 16, 33, 64},
                   Size{1, 1, 7, 19, 6, 3, 5}}) {
      for (FeatureMap map : {FeatureMap::Positive,
                             FeatureMap::Hyperbolic,
                             FeatureMap::Trigonometric,
                             FeatureMap::Generalized,
                             FeatureMap::EluPlusOne}) {
        for (int causal = 0; causal < 2; ++causal) {
          if (causal && z.lq != z.lk)
            continue;
          for (int pad = 0; pad < 2; ++pad) {
            for (KeyStabilizer ks : {KeyStabilizer::Auto, KeyStabilizer::None}) {
              CAPTURE(z.lq);
              CAPTURE(z.lk);
              CAPTURE(feature_map_name(map));
              CAPTURE(causal);
              CAPTURE(pad);
              CAPTURE(key_stabilizer_name(ks));
              Tensor q = rnd({z.b, z.h, z.lq, z.d}, seed++, dt, -1, 1);
              Tensor k = rnd({z.b, z.h, z.lk, z.d}, seed++, dt, -1, 1);
              Tensor v = rnd({z.b, z.h, z.lk, z.dv}, seed++, dt);
              Tensor g = rnd({z.b, z.h, z.lq, z.dv}, seed++, dt);
              Tensor w = randn({z.m, z.d}, RngKey{seed++, 0}, dt);
              AttentionMask mask;
              mask.causal = causal;
              if (pad)
                mask.key_padding = padding(z.b, z.lk);
              FavorAttentionOptions o;
              o.features.map = map;
              o.features.epsilon = map == FeatureMap::Generalized ? 1e-3 : 1e-4;
              o.key_stabilizer = ks;
              const Result ref = run(FavorImpl::Reference, q, k, v, w, g, mask, o);
              const Result fus = run(FavorImpl::Fused, q, k, v, w, g, mask, o);
              // Trig features are signed: normalisers near zero amplify differences.
              const double t = map == FeatureMap::Trigonometric ? 50 * tol : tol;
              CHECK_CLOSE(fus.out, ref.out, t, t);
              CHECK_CLOSE(fus.dq, ref.dq, t, t);
              CHECK_CLOSE(fus.dk, ref.dk, t, t);
              CHECK_CLOSE(fus.dv, ref.dv, t, t);
              if (uses_projection(map))
                CHECK_CLOSE(fus.dw, ref.dw, t, t);
              CHECK_FALSE(has_nonfinite(fus.out));
            }
          }
        }
      }
    }
  }

  TEST_CASE("the sums N and D agree too - including the causal log-scale") {
    Tensor qf = rnd({2, 2, 23, 11}, 200, kFloat64, 0, 1),
           kf = rnd({2, 2, 23, 11}, 201, kFloat64, 0, 1);
    Tensor v = rnd({2, 2, 23, 6}, 202, kFloat64);
    Tensor ls = cumsum(rnd({2, 2, 23}, 203, kFloat64, 0, 0.7), 2);  // non-decreasing
    Tensor gn = rnd({2, 2, 23, 6}, 204, kFloat64), gd = rnd({2, 2, 23}, 205, kFloat64);
    for (int causal = 0; causal < 2; ++causal) {
      CAPTURE(causal);
      std::vector<Tensor> got[2];
      for (int fused = 0; fused < 2; ++fused) {
        Var a = param(qf), b = param(kf), c = param(v);
        FavorSums s =
            causal
                ? (fused ? favor_causal(a, b, c, ls) : favor_causal_reference(a, b, c, ls))
                : (fused ? favor_bidirectional(a, b, c) : favor_bidirectional_reference(a, b, c));
        backward({s.numerator, s.normalizer}, {gn, gd});
        got[fused] = {s.numerator.value(), s.normalizer.value(), a.grad(), b.grad(), c.grad()};
      }
      for (int i = 0; i < 5; ++i) CHECK_CLOSE(got[1][i], got[0][i], 1e-12, 1e-12);
    }
  }

  TEST_CASE("gradcheck in float64 of the fused causal and bidirectional ops") {
    Tensor ls = cumsum(rnd({1, 2, 6}, 210, kFloat64, 0, 1), 2);
    for (int causal = 0; causal < 2; ++causal) {
      for (int scaled = 0; scaled < 2; ++scaled) {
        if (scaled && !causal)
          continue;
        CAPTURE(causal);
        CAPTURE(scaled);
        auto f = [&](const std::vector<Var>& in) {
          FavorSums s = causal ? favor_causal(in[0], in[1], in[2], scaled ? ls : Tensor())
                               : favor_bidirectional(in[0], in[1], in[2]);
          return std::vector<Var>{s.numerator, s.normalizer};
        };
        const auto r = gradcheck(f,
                                 {rnd({1, 2, 6, 5}, 211, kFloat64, 0, 1),
                                  rnd({1, 2, 6, 5}, 212, kFloat64, 0, 1),
                                  rnd({1, 2, 6, 3}, 213, kFloat64)});
        CHECK_MESSAGE(r.ok, r.report());
      }
    }
  }

  TEST_CASE("eps = 0 - the detached stabilisers cancel and the whole attention passes gradcheck") {
    const Tensor w = randn({7, 3}, RngKey{220, 0}, kFloat64);
    for (int causal = 0; causal < 2; ++causal) {
      for (FeatureMap map : {FeatureMap::Positive, FeatureMap::Hyperbolic}) {
        CAPTURE(causal);
        CAPTURE(feature_map_name(map));
        AttentionMask mask;
        mask.causal = causal;
        mask.key_padding = padding(2, 5);
        FavorAttentionOptions o;
        o.features.map = map;
        o.features.epsilon = 0;
        auto f = [&](const std::vector<Var>& in) {
          return favor_attention(in[0], in[1], in[2], in[3], mask, o);
        };
        const auto r = gradcheck(f,
                                 {rnd({2, 1, 5, 3}, 221, kFloat64, -2, 2),
                                  rnd({2, 1, 5, 3}, 222, kFloat64, -2, 2),
                                  rnd({2, 1, 5, 2}, 223, kFloat64),
                                  w});
        CHECK_MESSAGE(r.ok, r.report());
      }
    }
  }

  TEST_CASE("eps > 0 - the frozen-constant version passes and the unfrozen one misses a path") {
    // favor_feature_maps.md 4: with eps > 0 the shift no longer cancels, so the detached gradient
    // is exact only for the function with the shifts frozen (passed as Given constants).
    const Tensor w = randn({6, 3}, RngKey{230, 0}, kFloat64);
    const Tensor q = rnd({1, 1, 5, 3}, 231, kFloat64, -2, 2),
                 k = rnd({1, 1, 5, 3}, 232, kFloat64, -2, 2), v = rnd({1, 1, 5, 2}, 233, kFloat64);
    for (int causal = 0; causal < 2; ++causal) {
      CAPTURE(causal);
      AttentionMask mask;
      mask.causal = causal;
      FavorAttentionOptions o;
      o.features.epsilon = 0.2;  // large, so the dropped path is plainly visible
      FavorTrace trace;
      favor_attention(constant(q), constant(k), constant(v), constant(w), mask, o, &trace);
      FavorAttentionOptions frozen = o;
      frozen.query_shift = trace.query_shift;
      frozen.key_shift = trace.key_shift;
      // Frozen and unfrozen compute the same value at the point itself.
      CHECK_CLOSE(
          favor_attention(constant(q), constant(k), constant(v), constant(w), mask, frozen).value(),
          favor_attention(constant(q), constant(k), constant(v), constant(w), mask, o).value(),
          1e-15,
          1e-15);
      auto make = [&](const FavorAttentionOptions& opt) {
        return [&mask, opt](const std::vector<Var>& in) {
          return favor_attention(in[0], in[1], in[2], in[3], mask, opt);
        };
      };
      const auto ok = gradcheck(make(frozen), {q, k, v, w});
      CHECK_MESSAGE(ok.ok, ok.report());
      const auto missing = gradcheck(make(o), {q, k, v, w});
      CHECK_FALSE(missing.ok);  // the finite differences see c move; the backward does not
    }
  }

  TEST_CASE("causal - output i depends on no input after i whatever the stabiliser and eps") {
    Tensor q = rnd({1, 2, 40, 8}, 240, kFloat32, -2, 2),
           k = rnd({1, 2, 40, 8}, 241, kFloat32, -2, 2), v = rnd({1, 2, 40, 8}, 242, kFloat32);
    Tensor w = randn({32, 8}, RngKey{243, 0}, kFloat32);
    AttentionMask mask;
    mask.causal = true;
    const int64_t t = 17;
    Tensor q2 = q.clone(), k2 = k.clone(), v2 = v.clone();
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = t + 1; i < 40; ++i)
        for (int64_t c = 0; c < 8; ++c) {
          q2.set({0, h, i, c}, 2.0);
          k2.set({0, h, i, c}, 4.0);  // raises the running max: must not reach back
          v2.set({0, h, i, c}, 100.0);
        }
    for (KeyStabilizer ks : {KeyStabilizer::RunningMax, KeyStabilizer::None}) {
      for (double eps : {0.0, 1e-3}) {
        for (FavorImpl impl : {FavorImpl::Fused, FavorImpl::Reference}) {
          CAPTURE(key_stabilizer_name(ks));
          CAPTURE(eps);
          CAPTURE(impl == FavorImpl::Fused);
          FavorAttentionOptions o;
          o.key_stabilizer = ks;
          o.features.epsilon = eps;
          o.impl = impl;
          Tensor base =
              favor_attention(constant(q), constant(k), constant(v), constant(w), mask, o).value();
          Tensor changed =
              favor_attention(constant(q2), constant(k2), constant(v2), constant(w), mask, o)
                  .value();
          // The fused op is exactly causal. The reference factors e^(c_j - c_i) through the last
          // position's shift (to use plain prefix sums), so it is causal up to rounding only.
          const double tol = impl == FavorImpl::Fused ? 0.0 : 1e-6;
          CHECK_CLOSE(slice(changed, 2, 0, t + 1), slice(base, 2, 0, t + 1), tol, tol);
          CHECK(max_abs_diff(slice(changed, 2, t + 1, 40), slice(base, 2, t + 1, 40)) > 1e-2);
        }
      }
    }
    // And the gradient of output t reaches no later input.
    Var vq = param(q), vk = param(k), vv = param(v);
    Var out = favor_attention(vq, vk, vv, constant(w), mask);
    sum(slice(out, 2, 0, t + 1)).backward();
    for (const Tensor& gr : {vq.grad(), vk.grad(), vv.grad()}) {
      CHECK(max_abs_diff(slice(gr, 2, t + 1, 40), zeros({1, 2, 40 - t - 1, 8})) == 0);
    }
    // A max over the whole sequence is refused for causal attention.
    FavorAttentionOptions global;
    global.key_stabilizer = KeyStabilizer::Global;
    CHECK_THROWS_WITH_AS(favor_attention(vq, vk, vv, constant(w), mask, global),
                         doctest::Contains("global key max is not causal"),
                         ValueError);
  }

  TEST_CASE("padded keys change nothing - equal to FAVOR over the real keys only") {
    const int64_t lk = 12, real = 7;
    Tensor q = rnd({1, 1, 5, 4}, 250, kFloat64), k = rnd({1, 1, lk, 4}, 251, kFloat64),
           v = rnd({1, 1, lk, 4}, 252, kFloat64);
    Tensor w = randn({16, 4}, RngKey{253, 0}, kFloat64);
    AttentionMask mask;
    mask.key_padding = zeros({1, lk});
    for (int64_t j = 0; j < real; ++j) mask.key_padding.set({0, j}, 1);
    FavorAttentionOptions o;
    o.features.epsilon = 1e-3;  // eps must not leak through padded keys either
    Tensor out =
        favor_attention(constant(q), constant(k), constant(v), constant(w), mask, o).value();
    Tensor k2 = k.clone(), v2 = v.clone();
    for (int64_t j = real; j < lk; ++j)
      for (int64_t c = 0; c < 4; ++c) {
        k2.set({0, 0, j, c}, 50.0);  // would also dominate the global key max if it counted
        v2.set({0, 0, j, c}, -1e6);
      }
    CHECK_CLOSE(
        favor_attention(constant(q), constant(k2), constant(v2), constant(w), mask, o).value(),
        out,
        1e-13,
        1e-13);
    Tensor trimmed = favor_attention(constant(q),
                                     constant(slice(k, 2, 0, real)),
                                     constant(slice(v, 2, 0, real)),
                                     constant(w),
                                     {},
                                     o)
                         .value();
    CHECK_CLOSE(out, trimmed, 1e-13, 1e-13);
  }

  TEST_CASE("a fully padded sequence gives zeros and zero gradients - never NaN") {
    for (int causal = 0; causal < 2; ++causal) {
      for (FavorImpl impl : {FavorImpl::Fused, FavorImpl::Reference}) {
        CAPTURE(causal);
        AttentionMask mask;
        mask.causal = causal;
        mask.key_padding = padding(2, 6, /*leave_one_empty=*/true);
        FavorAttentionOptions o;
        o.impl = impl;
        o.features.epsilon = 1e-3;
        const Result r = run(FavorImpl(impl),
                             rnd({2, 1, 6, 4}, 260, kFloat32),
                             rnd({2, 1, 6, 4}, 261, kFloat32),
                             rnd({2, 1, 6, 4}, 262, kFloat32),
                             randn({8, 4}, RngKey{263, 0}, kFloat32),
                             ones({2, 1, 6, 4}),
                             mask,
                             o);
        for (const Tensor& t : {r.out, r.dq, r.dk, r.dv, r.dw}) CHECK_FALSE(has_nonfinite(t));
        CHECK(max_abs_diff(slice(r.out, 0, 1, 2), zeros({1, 1, 6, 4})) == 0);
        CHECK(max_abs_diff(slice(r.dq, 0, 1, 2), zeros({1, 1, 6, 4})) == 0);
        CHECK(max_abs_diff(slice(r.out, 0, 0, 1), zeros({1, 1, 6, 4})) > 0);
      }
    }
  }

  TEST_CASE("many features and small norms approach softmax attention - error ~ 1/sqrt(m)") {
    // PRF variance (e^(|x~ + y~|^2) - 1) / m (Performer Lemma 2): small-norm q, k keep it small.
    const int64_t l = 24, d = 16;
    double err[2] = {0, 0};
    const int64_t ms[2] = {64, 1024};
    const int seeds = 6;
    for (int s = 0; s < seeds; ++s) {
      Tensor q = rnd({1, 1, l, d}, 270 + s, kFloat64, -0.5, 0.5),
             k = rnd({1, 1, l, d}, 280 + s, kFloat64, -0.5, 0.5);
      Tensor v = rnd({1, 1, l, d}, 290 + s, kFloat64);
      for (int causal = 0; causal < 2; ++causal) {
        AttentionMask mask;
        mask.causal = causal;
        Tensor exact = softmax_attention(constant(q), constant(k), constant(v), mask).value();
        for (int i = 0; i < 2; ++i) {
          ProjectionOptions po;
          po.features = ms[i];
          po.dim = d;
          Tensor w =
              draw_projection(po, RngKey{300 + static_cast<uint64_t>(s), static_cast<uint64_t>(i)});
          Tensor out =
              favor_attention(constant(q), constant(k), constant(v), constant(w), mask).value();
          err[i] += rel_error(out, exact) / (2 * seeds);
        }
      }
    }
    MESSAGE(
        "mean relative error m=64: ", err[0], "  m=1024: ", err[1], "  ratio ", err[0] / err[1]);
    CHECK(err[1] < 0.02);
    // 16x the features: ~4x smaller error (the ORF gain makes it a bit more).
    CHECK(err[0] / err[1] > 2.5);
    CHECK(err[0] / err[1] < 8);
  }

  TEST_CASE("a large epsilon pulls attention towards uniform") {
    // performer-pytorch's eps = 1e-4 after a global key max: most key features are below it, so
    // the output drifts to the plain mean of the values (docs/derivations/favor_feature_maps.md 4).
    const int64_t l = 256, d = 16;
    Tensor q = randn({1, 1, l, d}, RngKey{310, 0}, kFloat64),
           k = randn({1, 1, l, d}, RngKey{311, 0}, kFloat64);
    Tensor v = rnd({1, 1, l, d}, 312, kFloat64);
    ProjectionOptions po;
    po.features = 64;
    po.dim = d;
    Tensor w = draw_projection(po, RngKey{313, 0});
    Tensor uniform = broadcast_to(mean(v, 2, true), v.shape());
    double prev = INFINITY;
    for (double eps : {0.0, 1e-4, 1e-2, 1.0}) {
      FavorAttentionOptions o;
      o.features.epsilon = eps;
      Tensor out =
          favor_attention(constant(q), constant(k), constant(v), constant(w), {}, o).value();
      const double dist = max_abs_diff(out, uniform);
      CAPTURE(eps);
      CHECK(dist < prev);
      prev = dist;
    }
    CHECK(prev < 0.05);
  }

  TEST_CASE("the running max keeps keys of very large norm finite where no shift underflows") {
    // |k~|^2 / 2 ~ 500: every unshifted key feature underflows to 0 (also in float64).
    Tensor q = rnd({1, 1, 16, 8}, 320, kFloat32), k = rnd({1, 1, 16, 8}, 321, kFloat32, 14, 16);
    Tensor v = rnd({1, 1, 16, 8}, 322, kFloat32);
    Tensor w = randn({32, 8}, RngKey{323, 0}, kFloat32);
    AttentionMask mask;
    mask.causal = true;
    FavorAttentionOptions o;
    Tensor run32 =
        favor_attention(constant(q), constant(k), constant(v), constant(w), mask, o).value();
    Tensor run64 = favor_attention(constant(q.to(kFloat64)),
                                   constant(k.to(kFloat64)),
                                   constant(v.to(kFloat64)),
                                   constant(w.to(kFloat64)),
                                   mask,
                                   o)
                       .value();
    CHECK_FALSE(has_nonfinite(run32));
    CHECK_CLOSE(run32.to(kFloat64), run64, 1e-3, 1e-4);
    CHECK(max_abs_diff(run32, zeros_like(run32)) > 0.1);
    o.key_stabilizer = KeyStabilizer::None;
    Tensor none =
        favor_attention(constant(q), constant(k), constant(v), constant(w), mask, o).value();
    CHECK(max_abs_diff(none, zeros_like(none)) == 0);  // all key features underflowed: D = 0
  }

  TEST_CASE("results are bit-identical for any thread count") {
    for (int64_t heads : {1, 3}) {
      CAPTURE(heads);
      Tensor q = rnd({1, heads, 50, 16}, 330, kFloat32), k = rnd({1, heads, 50, 16}, 331, kFloat32),
             v = rnd({1, heads, 50, 64}, 332, kFloat32), g = rnd({1, heads, 50, 64}, 333, kFloat32);
      Tensor w = randn({100, 16}, RngKey{334, 0}, kFloat32);
      for (int causal = 0; causal < 2; ++causal) {
        AttentionMask mask;
        mask.causal = causal;
        Result r[2];
        for (int t = 0; t < 2; ++t) {
          testing::ThreadCountGuard guard(t + 1);
          r[t] = run(FavorImpl::Fused, q, k, v, w, g, mask, {});
        }
        CHECK(testing::bitwise_equal(r[0].out, r[1].out));
        CHECK(testing::bitwise_equal(r[0].dq, r[1].dq));
        CHECK(testing::bitwise_equal(r[0].dk, r[1].dk));
        CHECK(testing::bitwise_equal(r[0].dv, r[1].dv));
        CHECK(testing::bitwise_equal(r[0].dw, r[1].dw));
      }
    }
  }

  TEST_CASE("causal forward + backward memory grows linearly in L - no L x m x d tensor") {
    const int64_t m = 64, d = 32;
    Tensor w = randn({m, d}, RngKey{340, 0}, kFloat32);
    AttentionMask mask;
    mask.causal = true;
    int64_t peak[2];
    for (int i = 0; i < 2; ++i) {
      const int64_t l = 512 << i;
      Tensor q = rnd({1, 1, l, d}, 341, kFloat32), k = rnd({1, 1, l, d}, 342, kFloat32),
             v = rnd({1, 1, l, d}, 343, kFloat32), g = rnd({1, 1, l, d}, 344, kFloat32);
      reset_peak_memory();
      const int64_t before = memory_stats().live_bytes;
      {
        Var vq = param(q), vk = param(k), vv = param(v);
        favor_attention(vq, vk, vv, constant(w), mask).backward(g);
      }
      peak[i] = memory_stats().peak_bytes - before;
    }
    // An L x m x d tensor alone would be 512 * 64 * 32 * 4 B = 4 MiB at L = 512.
    CHECK(peak[0] < 2 * 1024 * 1024);
    CHECK(static_cast<double>(peak[1]) / peak[0] < 2.2);
  }

  TEST_CASE("bad inputs give clear errors") {
    Var q = param(zeros({1, 2, 4, 8})), k = param(zeros({1, 2, 5, 8})),
        v = param(zeros({1, 2, 5, 8}));
    Var w = constant(zeros({16, 8}));
    AttentionMask mask;
    mask.causal = true;
    CHECK_THROWS_WITH_AS(favor_attention(q, k, v, w, mask),
                         doctest::Contains("causal attention needs equal query and key lengths"),
                         ShapeError);
    mask.causal = false;
    mask.decay = 0.1;
    CHECK_THROWS_WITH_AS(
        favor_attention(q, k, v, w, mask), doctest::Contains("distance decay"), ValueError);
    CHECK_THROWS_WITH_AS(favor_attention(q, param(zeros({1, 2, 5, 7})), v, w),
                         doctest::Contains("same head_dim"),
                         ShapeError);
    CHECK_THROWS_AS(favor_causal(q, q, param(zeros({1, 2, 4, 3})), zeros({1, 2, 5})), ShapeError);
    CHECK_THROWS_AS(parse_key_stabilizer("max"), ValueError);
  }
}
