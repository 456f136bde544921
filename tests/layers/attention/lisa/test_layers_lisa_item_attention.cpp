// lisa_item_histogram_attention: the histograms and the attention fused from the quantized rows'
// selections give, bit for bit, the values and gradients of the composition it replaces
// (gather the selections per position, mask, decayed scan, fused attention), for hard and soft
// selections, padding, chunk boundaries and any thread count; LisaAttention::forward_items
// equals forward on the gathered selections; bad inputs get clear errors.
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/lisa/lisa_attention.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

struct Case {
  int64_t n = 5, l = 150, nb = 3, w = 20, d = 16, items = 40;
  double decay = 0.1;
  bool soft = false;  // soft selections (probabilities) instead of one-hot rows
  DType dtype = kFloat32;
};

struct Inputs {
  Tensor tables, values, selection, inverse, keep, query, dy;
};

// Random tables and values, U rows of selections (one-hot at random codes, or softmax rows),
// positions drawing random rows, sequence x left-padded by 37 x positions (whole chunks for x >=
// 2), the query codewords those of the rows (hard selections) or random ones.
Inputs make_inputs(const Case& c, uint64_t seed) {
  Inputs in;
  in.tables = rand({c.nb, c.w, c.w}, RngKey{seed, 1}, c.dtype, -2, 2);
  in.values = rand({c.nb, c.w, c.d}, RngKey{seed, 2}, c.dtype, -1, 1);
  const Tensor codes = randint({c.items, c.nb}, 0, c.w, RngKey{seed, 3});
  in.selection = c.soft ? softmax(rand({c.items, c.nb, c.w}, RngKey{seed, 4}, c.dtype, -3, 3), -1)
                        : one_hot(codes, c.w, c.dtype);
  in.inverse = randint({c.n, c.l}, 0, c.items, RngKey{seed, 5});
  in.keep = ones({c.n, c.l}, kFloat32);
  for (int64_t x = 0; x < c.n; ++x)
    for (int64_t i = 0; i < std::min(c.l, 37 * x); ++i) in.keep.set({x, i}, 0);
  in.query =
      c.soft ? randint({c.n, c.l, c.nb}, 0, c.w, RngKey{seed, 6})
             : index_select(codes, 0, in.inverse.reshape({c.n * c.l})).reshape({c.n, c.l, c.nb});
  in.dy = rand({c.n, c.l, c.d}, RngKey{seed, 7}, c.dtype, -1, 1);
  return in;
}

struct Result {
  Tensor y, dt, dv, ds;
};

Result run(const Case& c, const Inputs& in, bool fused) {
  Var t = param(in.tables), v = param(in.values), s = param(in.selection);
  Var y;
  if (fused) {
    y = lisa_item_histogram_attention(t, v, s, in.inverse, in.keep, c.decay, in.query);
  } else {
    Var sel = reshape(index_select(s, 0, in.inverse.reshape({c.n * c.l})), {c.n, c.l, c.nb, c.w});
    Var h = lisa_histograms(sel, in.keep, c.decay, true);
    y = lisa_histogram_attention_fused(t, v, h, in.query);
  }
  y.backward(in.dy);
  return {y.value(), t.grad(), v.grad(), s.grad()};
}

void check_bitwise(const Result& got, const Result& want) {
  CHECK(testing::bitwise_equal(got.y, want.y));
  CHECK(testing::bitwise_equal(got.dt, want.dt));
  CHECK(testing::bitwise_equal(got.dv, want.dv));
  CHECK(testing::bitwise_equal(got.ds, want.ds));
}

}  // namespace

TEST_SUITE("layers.lisa_item_attention") {
  TEST_CASE(
      "fused from the rows equals gather then mask then scan then fused attention - bit for bit") {
    uint64_t seed = 10;
    for (DType dt : {kFloat32, kFloat64}) {
      for (bool soft : {false, true}) {
        for (int64_t l : {1, 63, 64, 150}) {  // one row, below, at and across chunk boundaries
          for (double decay : {0.0, 0.1}) {
            Case c;
            c.dtype = dt;
            c.soft = soft;
            c.l = l;
            c.decay = decay;
            CAPTURE(dt);
            CAPTURE(soft);
            CAPTURE(l);
            CAPTURE(decay);
            const Inputs in = make_inputs(c, seed++);
            const Result want = run(c, in, false), got = run(c, in, true);
            check_bitwise(got, want);
            CHECK(max(abs(got.ds)).item() > 0);  // the straight-through gradient reaches S
          }
        }
      }
    }
  }

  TEST_CASE("fused from the rows is bit-identical for any thread count") {
    Case c;
    c.n = 9;  // more sequences than the 8 gradient groups
    const Inputs in = make_inputs(c, 77);
    const int saved = num_threads();
    set_num_threads(1);
    const Result one = run(c, in, true);
    set_num_threads(3);
    const Result three = run(c, in, true);
    set_num_threads(saved);
    check_bitwise(three, one);
  }

  TEST_CASE("LisaAttention::forward_items equals forward on the gathered selections") {
    Case c;
    c.l = 70;
    const Inputs in = make_inputs(c, 31);
    for (bool causal : {true, false}) {  // bidirectional: the gathered fallback
      CAPTURE(causal);
      LisaAttentionOptions o;
      o.dim = c.d;
      o.codebooks = c.nb;
      o.codewords = c.w;
      o.causal = causal;
      Generator rng(5);
      LisaAttention layer(o, rng);
      const Tensor cb = rand({c.nb, c.w, c.d}, RngKey{3, 3}, kFloat32, -1, 1);
      Var c1 = param(cb), s1 = param(in.selection);
      Var y1 = layer.forward_items(c1, s1, in.inverse, in.query, in.keep);
      y1.backward(in.dy);
      const Tensor dw1 = layer.w_q.grad().clone();
      layer.zero_grad();
      Var c2 = param(cb), s2 = param(in.selection);
      Var sel =
          reshape(index_select(s2, 0, in.inverse.reshape({c.n * c.l})), {c.n, c.l, c.nb, c.w});
      Var y2 = layer.forward(c2, sel, in.query, in.keep);
      y2.backward(in.dy);
      CHECK(testing::bitwise_equal(y1.value(), y2.value()));
      CHECK(testing::bitwise_equal(c1.grad(), c2.grad()));
      CHECK(testing::bitwise_equal(s1.grad(), s2.grad()));
      CHECK(testing::bitwise_equal(dw1, layer.w_q.grad()));
    }
  }

  TEST_CASE("lisa_item_histogram_attention rejects bad rows and keep values and shapes") {
    Case c;
    c.l = 8;
    c.n = 2;
    const Inputs in = make_inputs(c, 5);
    Var t = param(in.tables), v = param(in.values), s = param(in.selection);
    Tensor bad_rows = in.inverse.clone();
    bad_rows.data<int64_t>()[3] = c.items;
    CHECK_THROWS_AS(lisa_item_histogram_attention(t, v, s, bad_rows, in.keep, 0.1, in.query),
                    ValueError);
    Tensor half = in.keep.clone();
    half.data<float>()[0] = 0.5f;
    CHECK_THROWS_AS(lisa_item_histogram_attention(t, v, s, in.inverse, half, 0.1, in.query),
                    ValueError);
    CHECK_THROWS_AS(
        lisa_item_histogram_attention(
            t, v, param(zeros({c.items, c.nb, c.w + 1})), in.inverse, in.keep, 0.1, in.query),
        ShapeError);
    CHECK_THROWS_AS(lisa_item_histogram_attention(
                        t, v, s, in.inverse, in.keep, 0.1, zeros({c.n, c.l, c.nb + 1}, kInt64)),
                    ShapeError);
    CHECK_THROWS_AS(lisa_item_histogram_attention(t, v, s, in.inverse, in.keep, -1.0, in.query),
                    ValueError);
  }
}
