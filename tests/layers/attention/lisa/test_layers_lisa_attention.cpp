// LISA histogram attention: equivalence with exact softmax attention over codeword projections,
// fused vs reference, gradchecks, streaming, long float32 sequences, padding and errors.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/lisa/lisa_attention.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, DType dt, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 11}, dt, lo, hi);
}

Tensor random_codes(int64_t n, int64_t l, int64_t nb, int64_t w, uint64_t seed) {
  return randint({n, l, nb}, 0, w, RngKey{seed, 12});
}

// Left padding: sequence x keeps its last (l - pads[x]) positions.
Tensor left_keep(int64_t n, int64_t l, int64_t first_pads) {
  Tensor k = ones({n, l}, kFloat64);
  for (int64_t x = 0; x < n; ++x)
    for (int64_t i = 0; i < std::min(l, first_pads * x); ++i) k.set({x, i}, 0);
  return k;
}

// Rows [N, B, L, D] of proj [B, W, D] at the codes [N, L, B].
Tensor gather_rows(const Tensor& proj, const Tensor& codes) {
  const int64_t n = codes.size(0), l = codes.size(1), nb = codes.size(2), d = proj.size(2);
  Tensor out = Tensor::empty({n, nb, l, d}, proj.dtype());
  for (int64_t x = 0; x < n; ++x)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t i = 0; i < l; ++i) {
        const int64_t u = codes.at<int64_t>({x, i, b});
        for (int64_t k = 0; k < d; ++k) out.set({x, b, i, k}, proj.get({b, u, k}));
      }
  return out;
}

// The explicit form (docs/derivations/lisa_histograms.md 4): per codebook, exact softmax attention
// with query Qt_b[u_i], key Kt_b[u_j], value Vt_b[u_j] and the bias ln(g) |i - j|; summed over
// codebooks.
Tensor exact_attention(const Tensor& c,
                       const Tensor& wq,
                       const Tensor& wk,
                       const Tensor& wv,
                       const Tensor& codes,
                       double decay,
                       bool causal,
                       const Tensor& keep) {
  Tensor q = gather_rows(matmul(c, wq), codes), k = gather_rows(matmul(c, wk), codes),
         v = gather_rows(matmul(c, wv), codes);
  AttentionMask m;
  m.causal = causal;
  m.decay = decay;
  if (keep.defined())
    m.key_padding = keep.to(kFloat32);
  Var y = softmax_attention_reference(constant(q), constant(k), constant(v), m);
  return sum(y.value(), 1);  // [N, L, D]
}

struct Grads {
  Tensor out, dt, dv, dh, dq;
};
Grads run(LisaImpl impl,
          const Tensor& t,
          const Tensor& v,
          const Tensor& h,
          const Tensor& idx,
          const Tensor& q,
          const Tensor& g) {
  Var vt = param(t), vv = param(v), vh = param(h), vq = q.defined() ? param(q) : Var();
  Var y = lisa_histogram_attention(vt, vv, vh, idx, vq, 0.0, impl);
  y.backward(g);
  return {y.value(), vt.grad(), vv.grad(), vh.grad(), q.defined() ? vq.grad() : Tensor()};
}

}  // namespace

TEST_SUITE("layers.lisa_attention") {
  TEST_CASE(
      "LISA equals exact causal softmax attention over codeword projections - B = 1 and B > 1") {
    const int64_t n = 2, l = 37, w = 5, d = 8;
    uint64_t seed = 100;
    for (int64_t nb : {1, 3}) {
      for (double decay : {0.0, 0.1, 0.7}) {
        for (int padded = 0; padded < 2; ++padded) {
          for (LisaImpl impl : {LisaImpl::Reference, LisaImpl::Fused}) {
            CAPTURE(nb);
            CAPTURE(decay);
            CAPTURE(padded);
            const Tensor c = rnd({nb, w, d}, seed++, kFloat64);
            const Tensor wq = rnd({nb, d, d}, seed++, kFloat64),
                         wk = rnd({nb, d, d}, seed++, kFloat64),
                         wv = rnd({nb, d, d}, seed++, kFloat64);
            const Tensor codes = random_codes(n, l, nb, w, seed++);
            const Tensor keep = padded ? left_keep(n, l, 6) : Tensor();
            Var sel = constant(one_hot(codes, w, kFloat64));
            Var h = lisa_histograms(sel, keep, decay, true);
            LisaProjection p = lisa_project(constant(c), constant(wq), constant(wk), constant(wv));
            Var y = lisa_histogram_attention(p.tables, p.values, h, codes, {}, 0.0, impl);
            const Tensor want = exact_attention(c, wq, wk, wv, codes, decay, true, keep);
            CHECK_CLOSE(y.value(), want, 1e-12, 1e-13);
          }
        }
      }
    }
  }

  TEST_CASE("bidirectional LISA equals exact attention with the symmetric distance bias") {
    const int64_t n = 2, l = 23, nb = 2, w = 4, d = 6;
    uint64_t seed = 200;
    for (double decay : {0.0, 0.3}) {
      for (int padded = 0; padded < 2; ++padded) {
        CAPTURE(decay);
        CAPTURE(padded);
        const Tensor c = rnd({nb, w, d}, seed++, kFloat64);
        const Tensor wq = rnd({nb, d, d}, seed++, kFloat64), wk = rnd({nb, d, d}, seed++, kFloat64),
                     wv = rnd({nb, d, d}, seed++, kFloat64);
        const Tensor codes = random_codes(n, l, nb, w, seed++);
        const Tensor keep = padded ? left_keep(n, l, 5) : Tensor();
        Var h = lisa_histograms(constant(one_hot(codes, w, kFloat64)), keep, decay, false);
        LisaProjection p = lisa_project(constant(c), constant(wq), constant(wk), constant(wv));
        Var y = lisa_histogram_attention(p.tables, p.values, h, codes);
        CHECK_CLOSE(
            y.value(), exact_attention(c, wq, wk, wv, codes, decay, false, keep), 1e-12, 1e-13);
      }
    }
  }

  TEST_CASE_TEMPLATE("fused equals reference in value and gradient", T, float, double) {
    const DType dt = dtype_of<T>();
    const double tol = dt == kFloat32 ? 3e-5 : 1e-12;
    struct Size {
      int64_t n, l, nb, w, d;
    };
    uint64_t seed = 300;
    for (Size z : {Size{1, 1, 1, 1, 3},
                   Size{2, 9, 3, 4, 5},
                   Size{2, 300, 4, 16, 32},
                   Size{1, 131, 2, 33, 7}}) {
      for (int expected = 0; expected < 2; ++expected) {
        for (int causal = 0; causal < 2; ++causal) {
          CAPTURE(z.l);
          CAPTURE(z.w);
          CAPTURE(expected);
          CAPTURE(causal);
          const Tensor t = rnd({z.nb, z.w, z.w}, seed++, dt, -3, 3);
          const Tensor v = rnd({z.nb, z.w, z.d}, seed++, dt);
          // Soft selections (probabilities) with a hard code where the expected query is off;
          // one sequence is left-padded, so some rows have empty histograms.
          const Tensor probs = softmax(rnd({z.n, z.l, z.nb, z.w}, seed++, dt, -2, 2), -1);
          const Tensor sel = expected ? probs : one_hot(argmax(probs, -1), z.w, dt);
          const Tensor keep = left_keep(z.n, z.l, 3);
          const Tensor h = lisa_histograms(constant(sel), keep, 0.2, causal).value();
          const Tensor idx = expected ? Tensor() : argmax(probs, -1);
          const Tensor q = expected ? sel : Tensor();
          const Tensor g = rnd({z.n, z.l, z.d}, seed++, dt);
          const Grads r = run(LisaImpl::Reference, t, v, h, idx, q, g);
          const Grads f = run(LisaImpl::Fused, t, v, h, idx, q, g);
          CHECK_CLOSE(f.out, r.out, tol, tol);
          CHECK_CLOSE(f.dt, r.dt, tol, tol);
          CHECK_CLOSE(f.dv, r.dv, tol, tol);
          CHECK_CLOSE(f.dh, r.dh, tol, tol);
          if (expected)
            CHECK_CLOSE(f.dq, r.dq, tol, tol);
        }
      }
    }
  }

  TEST_CASE("gradcheck in float64 of the fused op and the reference - tables values histograms") {
    const int64_t n = 2, l = 5, nb = 2, w = 3, d = 4;
    // Histograms with some exact zeros: the gradient of an unused codeword must be right too.
    Tensor h = rnd({n, l, nb, w}, 400, kFloat64, 0, 2);
    for (int64_t i = 0; i < h.numel(); i += 4) h.data<double>()[i] = 0;
    const Tensor idx = random_codes(n, l, nb, w, 401);
    const Tensor q = softmax(rnd({n, l, nb, w}, 402, kFloat64, -2, 2), -1);
    for (LisaImpl impl : {LisaImpl::Fused, LisaImpl::Reference}) {
      for (int expected = 0; expected < 2; ++expected) {
        CAPTURE(expected);
        auto f = [&](const std::vector<Var>& in) {
          return lisa_histogram_attention(
              in[0], in[1], in[2], expected ? Tensor() : idx, expected ? in[3] : Var(), 0.0, impl);
        };
        std::vector<Tensor> in{
            rnd({nb, w, w}, 403, kFloat64, -2, 2), rnd({nb, w, d}, 404, kFloat64), h};
        if (expected)
          in.push_back(q);
        const auto r = gradcheck(f, in);
        CHECK_MESSAGE(r.ok, r.report());
      }
    }
  }

  TEST_CASE("gradcheck in float64 of the whole soft layer - codebooks projections and logits") {
    LisaAttentionOptions o;
    o.dim = 4;
    o.codebooks = 2;
    o.codewords = 3;
    o.decay = 0.2;
    for (LisaQuery query : {LisaQuery::Hard, LisaQuery::Expected}) {
      o.query = query;
      Generator init(5);
      LisaAttention attn(o, init);
      attn.to(kFloat64);
      const Tensor logits0 = rnd({1, 4, 2, 3}, 410, kFloat64, -2, 2);
      const Tensor codes = argmax(logits0, -1);
      auto f = [&](const std::vector<Var>& in) {
        return attn.forward(in[0], ag::softmax(in[1], -1), codes);
      };
      GradcheckOptions go;
      go.params = attn.parameters();
      const auto r = gradcheck(f, {rnd({2, 3, 4}, 411, kFloat64), logits0}, go);
      CHECK_MESSAGE(r.ok, r.report());
    }
  }

  TEST_CASE("streaming one item at a time equals the batched causal outputs") {
    for (LisaQuery query : {LisaQuery::Hard, LisaQuery::Expected}) {
      LisaAttentionOptions o;
      o.dim = 16;
      o.codebooks = 3;
      o.codewords = 8;
      o.decay = 0.1;
      o.query = query;
      Generator init(7);
      LisaAttention attn(o, init);
      attn.to(kFloat64);
      const int64_t n = 2, l = 40;
      Var c = constant(rnd({3, 8, 16}, 500, kFloat64));
      const Tensor probs = softmax(rnd({n, l, 3, 8}, 501, kFloat64, -3, 3), -1);
      const Tensor codes = argmax(probs, -1);
      const Tensor sel = query == LisaQuery::Hard ? one_hot(codes, 8, kFloat64) : probs;
      const Tensor keep = left_keep(n, l, 9);
      const Tensor y = attn.forward(c, constant(sel), codes, keep).value();
      const LisaTables tables = attn.precompute(c);
      for (int64_t x = 0; x < n; ++x) {
        LisaStream stream(tables);
        for (int64_t i = 0; i < l; ++i) {
          if (keep.get({x, i}) == 0)
            continue;  // pads never reach the stream
          const Tensor s = slice(slice(sel, 0, x, x + 1), 1, i, i + 1).reshape({3, 8});
          const Tensor u = slice(slice(codes, 0, x, x + 1), 1, i, i + 1).reshape({3});
          const Tensor got = query == LisaQuery::Hard ? stream.step_codes(u) : stream.step(s);
          const Tensor want = slice(slice(y, 0, x, x + 1), 1, i, i + 1).reshape({16});
          CHECK_CLOSE(got, want, 1e-12, 1e-12);
        }
        CHECK(stream.length() == l - 9 * x);
      }
    }
  }

  TEST_CASE("float32 at L = 65536 with decay - no underflow and no NaN") {
    const int64_t l = 65536, nb = 2, w = 8, d = 16;
    const Tensor codes = random_codes(1, l, nb, w, 600);
    const Tensor t = rnd({nb, w, w}, 601, kFloat32, -2, 2), v = rnd({nb, w, d}, 602, kFloat32);
    Var h = lisa_histograms(param(one_hot(codes, w, kFloat32)), {}, 0.1, true);
    Var vt = param(t), vv = param(v);
    Var y = lisa_histogram_attention(vt, vv, h, codes);
    // The steady-state histogram mass is 1 / (1 - g): nothing underflowed at the end.
    const Tensor last = slice(h.value(), 1, l - 1, l);
    CHECK(sum(last).item() == doctest::Approx(nb / (1 - std::exp(-0.1))).epsilon(1e-4));
    CHECK_FALSE(has_nonfinite(y.value()));
    y.backward(rnd({1, l, d}, 603, kFloat32));
    CHECK_FALSE(has_nonfinite(vt.grad()));
    CHECK_FALSE(has_nonfinite(vv.grad()));
    // The last rows agree with float64 on the last 512 positions (older items weigh < e^-51).
    const int64_t tail = 512;
    const Tensor tc = slice(codes, 1, l - tail, l);
    Var h64 = lisa_histograms(constant(one_hot(tc, w, kFloat64)), {}, 0.1, true);
    Var y64 = lisa_histogram_attention(constant(t.to(kFloat64)), constant(v.to(kFloat64)), h64, tc);
    CHECK_CLOSE(slice(y.value(), 1, l - 8, l).to(kFloat64),
                slice(y64.value(), 1, tail - 8, tail),
                1e-4,
                1e-5);
  }

  TEST_CASE("padded positions are excluded from the histograms") {
    const int64_t l = 10, nb = 2, w = 4, pads = 3;
    const Tensor codes = random_codes(1, l, nb, w, 700);
    Tensor keep = ones({1, l}, kFloat64);
    for (int64_t i = 0; i < pads; ++i) keep.set({0, i}, 0);
    for (int causal = 0; causal < 2; ++causal) {
      const Tensor h =
          lisa_histograms(constant(one_hot(codes, w, kFloat64)), keep, 0.3, causal).value();
      const Tensor real = slice(codes, 1, pads, l);
      const Tensor want =
          lisa_histograms(constant(one_hot(real, w, kFloat64)), {}, 0.3, causal).value();
      if (causal)  // (bidirectional pad rows see the real items, but count no pad)
        CHECK(max(abs(slice(h, 1, 0, pads))).item() == 0);
      CHECK_CLOSE(slice(h, 1, pads, l), want, 1e-14, 1e-14);
    }
  }

  TEST_CASE("results are bit-identical for any thread count") {
    const int64_t n = 1, l = 1100, nb = 3, w = 16, d = 24;
    const Tensor t = rnd({nb, w, w}, 800, kFloat32, -2, 2), v = rnd({nb, w, d}, 801, kFloat32);
    const Tensor probs = softmax(rnd({n, l, nb, w}, 802, kFloat32, -2, 2), -1);
    const Tensor h = lisa_histograms(constant(probs), {}, 0.05, true).value();
    const Tensor g = rnd({n, l, d}, 803, kFloat32);
    for (int expected = 0; expected < 2; ++expected) {
      Grads r[2];
      for (int threads : {1, 2}) {
        testing::ThreadCountGuard guard(threads);
        r[threads - 1] = run(LisaImpl::Fused,
                             t,
                             v,
                             h,
                             expected ? Tensor() : argmax(probs, -1),
                             expected ? probs : Tensor(),
                             g);
      }
      CHECK(testing::bitwise_equal(r[0].out, r[1].out));
      CHECK(testing::bitwise_equal(r[0].dt, r[1].dt));
      CHECK(testing::bitwise_equal(r[0].dv, r[1].dv));
      CHECK(testing::bitwise_equal(r[0].dh, r[1].dh));
    }
  }

  TEST_CASE("fused forward + backward memory is linear in L - the op saves only its inputs") {
    const int64_t nb = 4, w = 16, d = 32;
    const Tensor t = rnd({nb, w, w}, 850, kFloat32), v = rnd({nb, w, d}, 851, kFloat32);
    int64_t peak[2];
    for (int i = 0; i < 2; ++i) {
      const int64_t l = 2048 << i;
      const Tensor codes = random_codes(1, l, nb, w, 852);
      const Tensor h = lisa_histograms(constant(one_hot(codes, w)), {}, 0.1, true).value();
      const Tensor g = rnd({1, l, d}, 853, kFloat32);
      reset_peak_memory();
      const int64_t before = memory_stats().live_bytes;
      {
        Var vt = param(t), vv = param(v), vh = param(h);
        lisa_histogram_attention_fused(vt, vv, vh, codes).backward(g);
      }
      peak[i] = memory_stats().peak_bytes - before;
    }
    // Output + dY-sized buffers + dH ([L, B, W]) + small parts; an L x L float matrix alone
    // would be 16 MiB at L = 2048.
    const int64_t l0 = 2048, per_row = (2 * d + 2 * nb * w) * 4;
    CHECK(peak[0] < l0 * per_row + (1 << 20));
    CHECK(static_cast<double>(peak[1]) / peak[0] < 2.2);
  }

  TEST_CASE("the trace exposes selections histograms tables values and weights") {
    LisaAttentionOptions o;
    o.dim = 8;
    o.codebooks = 2;
    o.codewords = 4;
    o.impl = LisaImpl::Reference;
    Generator init(3);
    LisaAttention attn(o, init);
    const Tensor codes = random_codes(1, 6, 2, 4, 900);
    LisaTrace trace;
    Var y = attn.forward(
        param(rnd({2, 4, 8}, 901, kFloat32)), constant(one_hot(codes, 4)), codes, {}, &trace);
    CHECK(trace.histograms.shape() == Shape({1, 6, 2, 4}));
    CHECK(trace.tables.shape() == Shape({2, 4, 4}));
    CHECK(trace.values.shape() == Shape({2, 4, 8}));
    CHECK(trace.weights.shape() == Shape({1, 6, 2, 4}));
    // Weights sum to one per (position, codebook).
    CHECK_CLOSE(sum(trace.weights.value(), -1), ones({1, 6, 2}), 1e-5, 1e-6);
    CHECK(trace.histograms.label() == "histograms");
  }

  TEST_CASE("bad inputs give clear errors naming the op and the shapes") {
    const Var t = constant(zeros({2, 3, 3})), v = constant(zeros({2, 3, 4})),
              h = constant(zeros({1, 5, 2, 3}));
    const Tensor idx = zeros({1, 5, 2}, kInt64);
    CHECK_THROWS_WITH_AS(lisa_histogram_attention(constant(zeros({2, 3, 4})), v, h, idx),
                         doctest::Contains("tables must be [B, W, W]"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(lisa_histogram_attention(t, constant(zeros({2, 4, 4})), h, idx),
                         doctest::Contains("values must be [B, W, D]"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(lisa_histogram_attention(t, v, constant(zeros({1, 5, 3})), idx),
                         doctest::Contains("histograms must be [N, L, B, W]"),
                         ShapeError);
    CHECK_THROWS_AS(lisa_histogram_attention(t, v, h, Tensor()), ValueError);
    CHECK_THROWS_AS(lisa_histogram_attention(t, v, h, idx, h), ValueError);
    CHECK_THROWS_WITH_AS(lisa_histogram_attention(t, v, h, full({1, 5, 2}, 3, kInt64)),
                         doctest::Contains("outside [0, 3)"),
                         ValueError);
    CHECK_THROWS_AS(lisa_histogram_attention(t, v, h, zeros({1, 5, 2})), ShapeError);
    CHECK_THROWS_AS(lisa_histogram_attention(t, v, constant(zeros({1, 5, 2, 3}, kFloat64)), idx),
                    DTypeError);
    CHECK_THROWS_AS(lisa_histograms(h, {}, -1.0, true), ValueError);
    CHECK_THROWS_AS(lisa_histograms(h, zeros({1, 4}), 0.1, true), ShapeError);
    LisaStream s(LisaTables{zeros({2, 3, 3}), zeros({2, 3, 4}), 0, 0.1});
    CHECK_THROWS_AS(s.step(zeros({3, 3})), ShapeError);
    CHECK_THROWS_AS(s.step(zeros({2, 3}), full({2}, 7, kInt64)), ValueError);
    CHECK_THROWS_AS(parse_lisa_query("nope"), ValueError);
  }
}
