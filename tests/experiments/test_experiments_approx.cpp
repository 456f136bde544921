// attnlab approx as a library: a kind whose output ignores some of its inputs gets zero gradients
// for them (a user's kind that attends to the values alone made `approx --study kinds` fail with
// "mul: undefined tensor").
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/commands/approx/approx.hpp"
#include "layers/attention/attention_kernel.hpp"

using namespace attnlab;

namespace {

// Every query gets the mean of the values: q and k are not used.
class ValueMeanKernel : public nn::AttentionKernel {
 public:
  ValueMeanKernel() : nn::AttentionKernel("ValueMeanKernel") {}
  ag::Var attend(const ag::Var& q,
                 const ag::Var& k,
                 const ag::Var& v,
                 const nn::AttentionMask&) override {
    (void)k;
    const Shape rows{1, 1, q.value().size(2), 1};
    return ag::mul(ag::mean(v, 2, true), ag::constant(ones(rows, v.value().dtype())));
  }
};

}  // namespace

TEST_SUITE("experiments.approx") {
  TEST_CASE("approx kinds - an input the kind ignores has a zero gradient") {
    const Shape s{1, 1, 6, 4};
    const Tensor q = randn(s, RngKey{3, 0}), k = randn(s, RngKey{3, 1});
    const Tensor v = randn(s, RngKey{3, 2}), g = randn(s, RngKey{3, 3});
    ValueMeanKernel kernel;
    const approx::KernelGradients r = approx::attend_with_gradients(kernel, q, k, v, g, {});
    REQUIRE(r.dq.defined());
    REQUIRE(r.dk.defined());
    CHECK(r.dq.shape() == s);
    CHECK(max_abs_diff(r.dq, zeros(s)) == 0.0);
    CHECK(max_abs_diff(r.dk, zeros(s)) == 0.0);
    // dL/dv_j = (1/L) sum_i g_i for L = sum(out . g): every row the same.
    const Tensor expected = broadcast_to(sum(g, 2, true) * (1.0 / 6.0), s);
    CHECK(max_abs_diff(r.dv, expected) < 1e-6);
    // Against a nonzero exact gradient, a zero one has cosine 0 and relative error 1.
    const auto [cos, rel] = approx::agreement(r.dq, g);
    CHECK(cos == 0.0);
    CHECK(rel == doctest::Approx(1.0));
  }
}
