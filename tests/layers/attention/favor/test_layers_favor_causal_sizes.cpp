// The fused causal FAVOR+ op (layers/attention/favor/favor_causal_kernels.cpp) at the sizes where a
// sweep can go wrong: L of 1, odd, and around 48 (a chunk of the chunked form,
// favor_causal_backward.md 9), feature widths above 128 (state slices beyond L1) and odd widths
// (partial SIMD batches, padded copies), the key log-scale with flat runs and jumps (one-, two- and
// four-token steps), and left padding (a -inf log-scale prefix) ending at several places. Values
// and gradients against the composed reference, and a float64 gradcheck over 140 positions.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor uniform(const Shape& s, uint64_t seed, DType dt, double lo, double hi) {
  return rand(s, RngKey{seed, 23}, dt, lo, hi);
}

// A non-decreasing log-scale [1, 2, L] with flat runs (most steps) and jumps of up to 3.
Tensor stepped_log_scale(int64_t l, uint64_t seed, DType dt) {
  Tensor u = uniform({1, 2, l}, seed, kFloat64, 0, 1);
  Tensor c = zeros({1, 2, l}, kFloat64);
  for (int64_t h = 0; h < 2; ++h) {
    double acc = 0;
    for (int64_t t = 0; t < l; ++t) {
      const double x = u.get({0, h, t});
      if (x > 0.8)
        acc += 15 * (x - 0.8);
      c.set({0, h, t}, acc);
    }
  }
  return c.to(dt);
}

struct Sums {
  std::vector<Tensor> all;  // N, D, dQ', dK', dV
};

Sums run_sums(bool fused,
              const Tensor& qf,
              const Tensor& kf,
              const Tensor& v,
              const Tensor& ls,
              const Tensor& gn,
              const Tensor& gd) {
  Var a = param(qf), b = param(kf), c = param(v);
  FavorSums s = fused ? favor_causal(a, b, c, ls) : favor_causal_reference(a, b, c, ls);
  backward({s.numerator, s.normalizer}, {gn, gd});
  return {{s.numerator.value(), s.normalizer.value(), a.grad(), b.grad(), c.grad()}};
}

}  // namespace

TEST_SUITE("layers.favor_causal_sizes") {
  TEST_CASE_TEMPLATE(
      "fused op equals the reference - odd lengths and widths and wide features and the log-scale",
      T,
      float,
      double) {
    const DType dt = dtype_of<T>();
    const double tol = dt == kFloat32 ? 2e-5 : 1e-12;
    struct Size {
      int64_t l, r, dv;
    };
    uint64_t seed = 500;
    for (Size z : {Size{1, 3, 2},
                   Size{17, 5, 7},
                   Size{47, 11, 1},
                   Size{48, 16, 16},
                   Size{49, 13, 33},
                   Size{97, 7, 64},
                   Size{61, 150, 33},
                   Size{70, 257, 64},
                   Size{200, 37, 5}}) {
      for (int scaled = 0; scaled < 3; ++scaled) {  // none, stepped, strictly increasing
        CAPTURE(z.l);
        CAPTURE(z.r);
        CAPTURE(z.dv);
        CAPTURE(scaled);
        Tensor qf = uniform({1, 2, z.l, z.r}, seed++, dt, 0, 1);
        Tensor kf = uniform({1, 2, z.l, z.r}, seed++, dt, 0, 1);
        Tensor v = uniform({1, 2, z.l, z.dv}, seed++, dt, -1, 1);
        Tensor gn = uniform({1, 2, z.l, z.dv}, seed++, dt, -1, 1);
        Tensor gd = uniform({1, 2, z.l}, seed++, dt, -1, 1);
        Tensor ls;
        if (scaled == 1)
          ls = stepped_log_scale(z.l, seed++, dt);
        if (scaled == 2)
          ls = cumsum(uniform({1, 2, z.l}, seed++, dt, 0.01, 0.05), 2);
        const Sums ref = run_sums(false, qf, kf, v, ls, gn, gd);
        const Sums fus = run_sums(true, qf, kf, v, ls, gn, gd);
        for (int i = 0; i < 5; ++i) {
          CAPTURE(i);
          // The sums grow like L: compare relative to their scale.
          const double scale = std::max(1.0, max_abs_diff(ref.all[i], zeros_like(ref.all[i])));
          CHECK_CLOSE(fus.all[i], ref.all[i], tol, tol * scale);
        }
      }
    }
  }

  // The sweep steps 4, 2 or 1 tokens per pass over its state, by how many tokens from the current
  // one share its log-scale and by how many are left: a prefix of length n ends on a group of 1,
  // 2 or 3 tokens where the longer sequence steps 4 (n = 6 is 4 + 2, inside L = 23 it is 4 + 4
  // ...), and so does a suffix in the reverse sweeps, which start from the last token. Every step
  // kind must do the one-token arithmetic, so the prefix's forward-sweep outputs (N, D, dQ') are
  // the first n rows of the long sequence's, and the suffix's reverse-sweep outputs (dK', dV: they
  // depend only on the tokens from theirs on) its last n rows, bit for bit. (A one-ulp change in
  // step_four's accumulation passes the reference comparisons above and fails here.)
  TEST_CASE_TEMPLATE(
      "a prefix's forward sweeps and a suffix's reverse sweeps are the longer sequence's rows",
      T,
      float,
      double) {
    const DType dt = dtype_of<T>();
    const int64_t l = 23, r = 257, dv = 33;
    for (int scaled = 0; scaled < 2; ++scaled) {
      Tensor qf = uniform({1, 2, l, r}, 800, dt, 0, 1);
      Tensor kf = uniform({1, 2, l, r}, 801, dt, 0, 1);
      Tensor v = uniform({1, 2, l, dv}, 802, dt, -1, 1);
      Tensor gn = uniform({1, 2, l, dv}, 803, dt, -1, 1);
      Tensor gd = uniform({1, 2, l}, 804, dt, -1, 1);
      Tensor ls = scaled ? stepped_log_scale(l, 805, dt) : Tensor();
      const Sums full = run_sums(true, qf, kf, v, ls, gn, gd);
      for (int64_t n : {1, 2, 3, 5, 6, 7, 10, 13, 22}) {
        CAPTURE(scaled);
        CAPTURE(n);
        auto head = [n](const Tensor& x) {
          return x.defined() ? slice(x, 2, 0, n) : x;
        };
        auto tail = [n, l](const Tensor& x) {
          return x.defined() ? slice(x, 2, l - n, l) : x;
        };
        const Sums pre = run_sums(true, head(qf), head(kf), head(v), head(ls), head(gn), head(gd));
        CHECK(testing::bitwise_equal(pre.all[0], head(full.all[0])));  // N
        CHECK(testing::bitwise_equal(pre.all[1], head(full.all[1])));  // D
        CHECK(testing::bitwise_equal(pre.all[2], head(full.all[2])));  // dQ'
        const Sums suf = run_sums(true, tail(qf), tail(kf), tail(v), tail(ls), tail(gn), tail(gd));
        CHECK(testing::bitwise_equal(suf.all[3], tail(full.all[3])));  // dK'
        CHECK(testing::bitwise_equal(suf.all[4], tail(full.all[4])));  // dV
      }
    }
  }

  // Empty sizes the input checks allow: value width 0 (the normaliser D and the gradients of Q'
  // and K' through it remain) and batch 0. Both divided by zero when the sweep split its
  // columns into chunks.
  TEST_CASE("value width 0 and batch 0 - the normaliser and its gradients and no crash") {
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      testing::ThreadCountGuard guard(threads);
      Tensor qf = uniform({1, 2, 9, 5}, 900, kFloat64, 0, 1);
      Tensor kf = uniform({1, 2, 9, 5}, 901, kFloat64, 0, 1);
      Tensor v = zeros({1, 2, 9, 0}, kFloat64);
      Tensor gn = zeros({1, 2, 9, 0}, kFloat64);
      Tensor gd = uniform({1, 2, 9}, 902, kFloat64, -1, 1);
      const Sums ref = run_sums(false, qf, kf, v, Tensor(), gn, gd);
      const Sums fus = run_sums(true, qf, kf, v, Tensor(), gn, gd);
      CHECK(fus.all[0].shape() == Shape({1, 2, 9, 0}));
      CHECK(fus.all[4].shape() == Shape({1, 2, 9, 0}));
      for (int i : {1, 2, 3}) {
        CAPTURE(i);
        CHECK_CLOSE(fus.all[i], ref.all[i], 1e-12, 1e-12);
      }
      Tensor q0 = zeros({0, 2, 9, 5}, kFloat64), v0 = zeros({0, 2, 9, 3}, kFloat64);
      const Sums none = run_sums(
          true, q0, q0, v0, Tensor(), zeros({0, 2, 9, 3}, kFloat64), zeros({0, 2, 9}, kFloat64));
      CHECK(none.all[0].numel() == 0);
      CHECK(none.all[2].numel() == 0);
    }
  }

  TEST_CASE("left padding ending at several places - fused equals reference and stays finite") {
    const int64_t l = 150, d = 8, m = 24;
    for (int64_t first_real : {0, 3, 64, 100}) {
      CAPTURE(first_real);
      Tensor q = uniform({2, 1, l, d}, 600, kFloat64, -1, 1);
      Tensor k = uniform({2, 1, l, d}, 601, kFloat64, -1, 1);
      Tensor v = uniform({2, 1, l, 5}, 602, kFloat64, -1, 1);
      Tensor g = uniform({2, 1, l, 5}, 603, kFloat64, -1, 1);
      Tensor w = randn({m, d}, RngKey{604, 0}, kFloat64);
      AttentionMask mask;
      mask.causal = true;
      mask.key_padding = zeros({2, l});
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t j = b == 0 ? first_real : first_real / 2; j < l; ++j)
          mask.key_padding.set({b, j}, 1);
      Tensor out[2], grads[2][3];
      for (int fused = 0; fused < 2; ++fused) {
        FavorAttentionOptions o;
        o.impl = fused ? FavorImpl::Fused : FavorImpl::Reference;
        o.key_stabilizer = KeyStabilizer::Auto;
        Var vq = param(q), vk = param(k), vv = param(v);
        Var y = favor_attention(vq, vk, vv, constant(w), mask, o);
        y.backward(g);
        out[fused] = y.value();
        grads[fused][0] = vq.grad();
        grads[fused][1] = vk.grad();
        grads[fused][2] = vv.grad();
      }
      CHECK_FALSE(has_nonfinite(out[1]));
      CHECK_CLOSE(out[1], out[0], 1e-11, 1e-11);
      for (int i = 0; i < 3; ++i) {
        CAPTURE(i);
        CHECK_FALSE(has_nonfinite(grads[1][i]));
        CHECK_CLOSE(grads[1][i], grads[0][i], 1e-10, 1e-10);
      }
    }
  }

  TEST_CASE("gradcheck in float64 over 140 positions with the log-scale") {
    const int64_t l = 140;
    Tensor ls = stepped_log_scale(l, 700, kFloat64);
    for (int scaled = 0; scaled < 2; ++scaled) {
      CAPTURE(scaled);
      auto f = [&](const std::vector<Var>& in) {
        FavorSums s = favor_causal(in[0], in[1], in[2], scaled ? ls : Tensor());
        return std::vector<Var>{s.numerator, s.normalizer};
      };
      const auto r = gradcheck(f,
                               {uniform({1, 2, l, 3}, 701, kFloat64, 0, 1),
                                uniform({1, 2, l, 3}, 702, kFloat64, 0, 1),
                                uniform({1, 2, l, 2}, 703, kFloat64, -1, 1)});
      CHECK_MESSAGE(r.ok, r.report());
    }
  }
}
