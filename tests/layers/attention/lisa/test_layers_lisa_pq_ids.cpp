// ProductQuantizer::forward_ids: quantizing each distinct item once and gathering per position
// gives exactly the values, codes, usage and gradients of quantizing every position
// (forward(embed(ids))), for the deterministic selections; Gumbel selections take the
// per-position path (their noise is independent per position).
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/lisa/product_quantizer.hpp"
#include "layers/nn/basic.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;
using namespace attnlab::nn;

namespace {

struct Fixture {
  Generator init{7};
  std::shared_ptr<Embedding> table;
  std::shared_ptr<ProductQuantizer> pq;
  Fixture(Selection mode, bool residual) {
    table = std::make_shared<Embedding>(12, 6, init);
    ProductQuantizerOptions o;
    o.dim = 6;
    o.codebooks = 3;
    o.codewords = 4;
    o.residual = residual;
    o.train_selection = mode;
    pq = std::make_shared<ProductQuantizer>(o, init, std::make_shared<Generator>(3));
    table->to(kFloat64);
    pq->to(kFloat64);
  }
  std::function<Var(const Tensor&)> embed() {
    return [this](const Tensor& ids) {
      return table->forward(ids) * 1.5;
    };
  }
};

// A loss that weighs every output, so that every gradient path is exercised.
Var loss_of(const QuantizedItems& q) {
  const Tensor wr = rand(q.reconstruction.shape(), RngKey{1, 1}, kFloat64, -1, 1);
  const Tensor ws = rand(q.selection.shape(), RngKey{1, 2}, kFloat64, -1, 1);
  const Tensor wl = rand(q.logits.shape(), RngKey{1, 3}, kFloat64, -1, 1);
  return ag::sum(q.reconstruction * Var(wr)) + ag::sum(q.selection * Var(ws)) +
         ag::sum(q.logits * Var(wl));
}

}  // namespace

TEST_SUITE("layers.lisa_pq") {
  TEST_CASE(
      "forward_ids equals quantizing every position - values and codes and usage and gradients") {
    // Repeated ids and padding (0), as in a batch of sequences.
    const Tensor ids = from_vector(std::vector<int64_t>{0, 3, 5, 3, 0, 7, 5, 5, 11, 3}, {2, 5});
    const Tensor keep = gt(ids.to(kFloat32), 0.0);
    for (Selection mode : {Selection::Soft, Selection::StraightThrough}) {
      for (bool residual : {true, false}) {
        CAPTURE(selection_name(mode));
        CAPTURE(residual);
        Fixture a(mode, residual), b(mode, residual);
        const QuantizedItems per_position = a.pq->forward(a.embed()(ids), {}, keep);
        Var embedded;
        const QuantizedItems per_item = b.pq->forward_ids(ids, b.embed(), keep, &embedded);
        CHECK(per_item.reconstruction.shape() == per_position.reconstruction.shape());
        CHECK(testing::bitwise_equal(per_item.reconstruction.value(),
                                     per_position.reconstruction.value()));
        CHECK(testing::bitwise_equal(per_item.selection.value(), per_position.selection.value()));
        CHECK(testing::bitwise_equal(per_item.logits.value(), per_position.logits.value()));
        CHECK(testing::bitwise_equal(per_item.codes, per_position.codes));
        CHECK(testing::bitwise_equal(embedded.value(), a.embed()(ids).value()));
        CHECK(testing::bitwise_equal(a.pq->usage().counts, b.pq->usage().counts));
        CHECK(a.pq->usage().items == b.pq->usage().items);
        loss_of(per_position).backward();
        loss_of(per_item).backward();
        // The same gradient, summed in another order: equal to rounding.
        CHECK(max_abs_diff(a.table->weight.grad(), b.table->weight.grad()) < 1e-12);
        CHECK(max_abs_diff(a.pq->codebooks.grad(), b.pq->codebooks.grad()) < 1e-12);
        CHECK(max_abs_diff(a.pq->bilinear.grad(), b.pq->bilinear.grad()) < 1e-12);
      }
    }
  }

  TEST_CASE("codebook_inputs are what each codebook quantizes - only when asked for") {
    // Residual: r_1 = x, r_(b+1) = r_b - q_b with q_b = s_b C_b; non-residual: x for every b.
    const Tensor ids = from_vector(std::vector<int64_t>{0, 3, 5, 3, 0, 7, 5, 5, 11, 3}, {2, 5});
    for (bool residual : {true, false}) {
      CAPTURE(residual);
      Fixture a(Selection::StraightThrough, residual), b(Selection::StraightThrough, residual);
      CHECK_FALSE(a.pq->forward_ids(ids, a.embed()).codebook_inputs.defined());
      a.pq->expose_codebook_inputs = b.pq->expose_codebook_inputs = true;
      const Var x = a.embed()(ids);
      const QuantizedItems per_position = a.pq->forward(x);
      const QuantizedItems per_item = b.pq->forward_ids(ids, b.embed());
      const Tensor r = per_position.codebook_inputs.value();
      REQUIRE(r.shape() == Shape({2, 5, 3, 6}));
      CHECK(testing::bitwise_equal(per_item.codebook_inputs.value(), r));
      const Tensor sel = per_position.selection.value(), cb = a.pq->codebooks.value();
      for (int64_t k = 0; k < 3; ++k) {
        CAPTURE(k);
        const Tensor rk = slice(r, 2, k, k + 1).reshape({2, 5, 6});
        Tensor want = x.value();
        if (residual && k > 0) {  // r_(k-1) - s_(k-1) C_(k-1)
          const Tensor q = matmul(slice(sel, 2, k - 1, k).reshape({10, 4}),
                                  slice(cb, 0, k - 1, k).reshape({4, 6}));
          want = sub(slice(r, 2, k - 1, k).reshape({2, 5, 6}), q.reshape({2, 5, 6}));
        }
        CHECK(max_abs_diff(rk, want) < 1e-14);
      }
      // Gradients through the exposed inputs: the same per item as per position.
      const Tensor w = rand(r.shape(), RngKey{4, 1}, kFloat64, -1, 1);
      ag::sum(per_position.codebook_inputs * Var(w)).backward();
      ag::sum(per_item.codebook_inputs * Var(w)).backward();
      CHECK(max_abs_diff(a.table->weight.grad(), b.table->weight.grad()) < 1e-12);
      if (residual)
        CHECK(max_abs_diff(a.pq->codebooks.grad(), b.pq->codebooks.grad()) < 1e-12);
    }
  }

  TEST_CASE(
      "forward_ids parts - the same reconstruction and codes and gradients with fewer copies") {
    const Tensor ids = from_vector(std::vector<int64_t>{0, 3, 5, 3, 0, 7, 5, 5, 11, 3}, {2, 5});
    for (Selection mode : {Selection::StraightThrough, Selection::GumbelStraightThrough}) {
      for (bool residual : {true, false}) {
        CAPTURE(selection_name(mode));
        CAPTURE(residual);
        Fixture a(mode, residual), b(mode, residual), c(mode, residual);
        const QuantizedItems all = a.pq->forward_ids(ids, a.embed());
        const QuantizedItems rows =
            b.pq->forward_ids(ids, b.embed(), {}, nullptr, QuantizedParts::Rows);
        const QuantizedItems recon =
            c.pq->forward_ids(ids, c.embed(), {}, nullptr, QuantizedParts::Reconstruction);
        // The rows' selections gathered per position are the per-position selections.
        REQUIRE(rows.item_selection.defined());
        const Tensor gathered =
            index_select(rows.item_selection.value(), 0, rows.inverse.reshape({10}));
        CHECK(testing::bitwise_equal(gathered.reshape({2, 5, 3, 4}), all.selection.value()));
        if (!selection_is_gumbel(mode)) {  // the Gumbel path returns everything per position
          CHECK_FALSE(rows.selection.defined());
          CHECK_FALSE(rows.logits.defined());
          CHECK_FALSE(recon.logits.defined());
        }
        const Tensor w = rand(all.reconstruction.shape(), RngKey{2, 1}, kFloat64, -1, 1);
        for (const QuantizedItems* q : {&all, &rows, &recon}) {
          CHECK(testing::bitwise_equal(q->reconstruction.value(), all.reconstruction.value()));
          CHECK(testing::bitwise_equal(q->codes, all.codes));
          ag::sum(q->reconstruction * Var(w)).backward();
        }
        for (const Fixture* f : {&b, &c}) {
          CHECK(testing::bitwise_equal(f->table->weight.grad(), a.table->weight.grad()));
          CHECK(testing::bitwise_equal(f->pq->codebooks.grad(), a.pq->codebooks.grad()));
          CHECK(testing::bitwise_equal(f->pq->bilinear.grad(), a.pq->bilinear.grad()));
        }
      }
    }
  }

  TEST_CASE("forward_ids draws Gumbel noise per position like forward") {
    const Tensor ids = from_vector(std::vector<int64_t>{4, 4, 4, 4}, {1, 4});
    Fixture a(Selection::GumbelSoft, true), b(Selection::GumbelSoft, true);
    const QuantizedItems per_position = a.pq->forward(a.embed()(ids));
    const QuantizedItems per_item = b.pq->forward_ids(ids, b.embed());
    CHECK(testing::bitwise_equal(per_item.selection.value(), per_position.selection.value()));
    // One item four times, four different noise draws: the selections differ across positions.
    const Tensor s = per_item.selection.value();
    CHECK(max_abs_diff(slice(s, 1, 0, 1), slice(s, 1, 1, 2)) > 0);
    CHECK_THROWS_AS(b.pq->forward_ids(ids.to(kFloat32), b.embed()), DTypeError);
  }
}
