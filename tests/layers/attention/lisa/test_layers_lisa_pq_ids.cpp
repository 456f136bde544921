// ProductQuantizer::forward_ids: quantizing each distinct item once and gathering per position
// gives exactly the values, codes, usage and gradients of quantizing every position
// (forward(embed(ids))), for the deterministic selections; Gumbel selections take the
// per-position path (their noise is independent per position).
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/nn/basic.hpp"
#include "layers/attention/lisa/product_quantizer.hpp"
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
