// Gradient checks of the differentiable ops (autograd/ops.hpp), on small random inputs that stay
// away from kinks (|x| >= 0.1 for relu/abs/clamp) and poles.
#include "core/core.hpp"
#include "experiments/commands/gradcheck/gradcheck_cases.hpp"

namespace attnlab::experiments {
namespace {

Tensor u(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 21}, kFloat64, lo, hi);
}
// Magnitudes in [0.1, 1] with random signs.
Tensor away(const Shape& s, uint64_t seed) {
  return mul(u(s, seed, 0.1, 1.0), sub(mul(gt(u(s, seed + 1), 0.0), 2.0), 1.0));
}

}  // namespace

void add_op_cases(std::vector<GradcheckCase>& out) {
  using ag::Var;
  using V = const std::vector<Var>&;
  auto add = [&](std::string name, std::function<Var(V)> fn, std::vector<Tensor> in) {
    out.push_back({"op/" + name, std::move(fn), std::move(in), nullptr});
  };
  const Tensor a = u({2, 3}, 1), b = u({3}, 2, 0.5, 2.0), pos = u({2, 3}, 3, 0.5, 2.0);
  const Tensor k = away({2, 3}, 4), x3 = u({2, 3, 4}, 5);
  add("add_broadcast", [](V v) { return v[0] + v[1]; }, {a, b});
  add("sub_broadcast", [](V v) { return v[0] - v[1]; }, {a, b});
  add("mul_broadcast", [](V v) { return v[0] * v[1]; }, {a, b});
  add("div_broadcast", [](V v) { return v[0] / v[1]; }, {a, b});
  add("pow", [](V v) { return ag::pow(v[0], v[1]); }, {pos, b});
  add("maximum", [](V v) { return ag::maximum(v[0], v[1]); }, {a, b});
  add("minimum", [](V v) { return ag::minimum(v[0], v[1]); }, {a, b});
  add("scalar_ops", [](V v) { return (2.0 - v[0]) * 3.0 / 1.5 + 1.0; }, {a});
  add("rdiv", [](V v) { return 2.0 / v[0]; }, {pos});
  add("pow_scalar", [](V v) { return ag::pow(v[0], 2.5); }, {pos});
  add("exp", [](V v) { return ag::exp(v[0]); }, {a});
  add("log", [](V v) { return ag::log(v[0]); }, {pos});
  add("log1p", [](V v) { return ag::log1p(v[0]); }, {pos});
  add("expm1", [](V v) { return ag::expm1(v[0]); }, {a});
  add("sqrt", [](V v) { return ag::sqrt(v[0]); }, {pos});
  add("rsqrt", [](V v) { return ag::rsqrt(v[0]); }, {pos});
  add("square", [](V v) { return ag::square(v[0]); }, {a});
  add("reciprocal", [](V v) { return ag::reciprocal(v[0]); }, {pos});
  add("abs", [](V v) { return ag::abs(v[0]); }, {k});
  add("tanh", [](V v) { return ag::tanh(v[0]); }, {a});
  add("sigmoid", [](V v) { return ag::sigmoid(v[0]); }, {a});
  add("relu", [](V v) { return ag::relu(v[0]); }, {k});
  add("elu", [](V v) { return ag::elu(v[0], 0.7); }, {k});
  add("softplus", [](V v) { return ag::softplus(v[0]); }, {a});
  add("sin_cos", [](V v) { return ag::sin(v[0]) * ag::cos(v[0]); }, {a});
  add("clamp", [](V v) { return ag::clamp(v[0], -0.05, 0.05); }, {k});
  const Tensor cond = from_vector(std::vector<double>{1, 0, 1, 0, 0, 1}, {2, 3}, kFloat64);
  add("where", [cond](V v) { return ag::where(cond, v[0], v[1]); }, {a, b});
  add("masked_fill", [cond](V v) { return ag::masked_fill(v[0], cond, -3.0); }, {a});
  for (int axis : {0, 1, 2}) {
    const std::string n = std::to_string(axis);
    add("sum_axis" + n, [axis](V v) { return ag::sum(v[0], axis); }, {x3});
    add("mean_axis" + n, [axis](V v) { return ag::mean(v[0], axis, true); }, {x3});
    add("max_axis" + n, [axis](V v) { return ag::max(v[0], axis); }, {x3});
    add("logsumexp_axis" + n, [axis](V v) { return ag::logsumexp(v[0], axis); }, {x3});
    add("norm_axis" + n, [axis](V v) { return ag::norm(v[0], axis); }, {x3});
    add("softmax_axis" + n, [axis](V v) { return ag::softmax(v[0], axis); }, {x3});
    add("log_softmax_axis" + n, [axis](V v) { return ag::log_softmax(v[0], axis); }, {x3});
  }
  add("sum_all", [](V v) { return ag::sum(v[0]); }, {x3});
  add("broadcast_to", [](V v) { return ag::broadcast_to(v[0], {2, 3, 3}); }, {u({3, 1}, 6)});
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      add("matmul_t" + std::to_string(ta) + std::to_string(tb),
          [ta, tb](V v) { return ag::matmul(v[0], v[1], ta, tb); },
          {u(ta ? Shape{2, 4, 3} : Shape{2, 3, 4}, 7 + ta),
           u(tb ? Shape{5, 4} : Shape{4, 5}, 9 + tb)});
    }
  }
  add("linear",
      [](V v) { return ag::linear(v[0], v[1], v[2]); },
      {u({6, 4}, 14), u({3, 4}, 15), u({3}, 16)});
  add("layer_norm",
      [](V v) { return ag::layer_norm(v[0], v[1], v[2]); },
      {u({3, 5}, 11, -3, 3), u({5}, 12), u({5}, 13)});
  add("reshape_permute",
      [](V v) {
        return ag::permute(ag::reshape(v[0], {4, 3, 2}), {2, 0, 1});
      },
      {x3});
  add("slice_concat", [](V v) { return ag::concat({ag::slice(v[0], 2, 1, 4, 2), v[0]}, 2); }, {x3});
  add("stack_pad",
      [](V v) {
        return ag::pad(ag::stack({v[0], v[0]}, 0), {{0, 1}, {1, 0}, {0, 2}});
      },
      {a});
  const Tensor ids = from_vector(std::vector<int64_t>{4, 0, 4, 2}, {2, 2});
  add("embedding", [ids](V v) { return ag::embedding(v[0], ids); }, {u({5, 3}, 14)});
  add("index_select", [ids](V v) { return ag::index_select(v[0], 1, ids); }, {u({2, 5, 2}, 15)});
  const Tensor gidx = from_vector(std::vector<int64_t>{2, 0, 1, 1}, {2, 2});
  add("gather", [gidx](V v) { return ag::gather(v[0], 1, gidx); }, {u({2, 3}, 16)});
  add("cumsum", [](V v) { return ag::cumsum(v[0], 1) + ag::cumsum(v[0], 1, true); }, {x3});
  add("decayed_scan",
      [](V v) { return ag::decayed_scan(v[0], 1, 0.7) * ag::decayed_scan(v[0], 1, 0.3, true); },
      {x3});
}

}  // namespace attnlab::experiments
