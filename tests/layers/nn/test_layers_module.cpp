#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/nn/basic.hpp"
#include "layers/attention/multihead_attention.hpp"
#include "layers/attention/softmax/softmax_kernel.hpp"
#include "layers/attention/transformer_block.hpp"
#include "tests/test_helpers.hpp"
#include "tests/scratch_path.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, DType dt = kFloat64, double lo = -1, double hi = 1) {
  return rand(s, RngKey{seed, 5}, dt, lo, hi);
}

class TwoLayer : public Module {
 public:
  explicit TwoLayer(Generator& g) : Module("TwoLayer") {
    register_module("fc1", fc1, std::make_shared<Linear>(3, 4, g));
    register_module("blocks", blocks, std::make_shared<ModuleList>());
    blocks->push_back(std::make_shared<LayerNorm>(4));
    blocks->push_back(std::make_shared<Linear>(4, 2, g, LinearOptions{false}));
    register_buffer("scale", full({1}, 2.0));
  }
  Var forward(const Var& x) {
    Var h = call(*blocks->at<LayerNorm>(0), fc1(x));
    return call(*blocks->at<Linear>(1), h) * buffer("scale").item();
  }
  Child<Linear> fc1;
  Child<ModuleList> blocks;
};

std::string temp_path(const std::string& name) {
  return attnlab::testing::scratch_path(name);
}

// The composed layer norm (the reference for the fused op).
Var layer_norm_reference(const Var& x, const Var& w, const Var& b, double eps) {
  Var mu = mean(x, -1, true);
  Var c = x - mu;
  Var var = mean(square(c), -1, true);
  return c * rsqrt(var + eps) * w + b;
}

}  // namespace

TEST_SUITE("layers.module") {
  TEST_CASE("hierarchical names / counts / modes / printing") {
    Generator g(1);
    TwoLayer m(g);
    std::vector<std::string> names;
    for (auto& [n, v] : m.named_parameters()) names.push_back(n);
    CHECK(names ==
          std::vector<std::string>{
              "fc1.weight", "fc1.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight"});
    CHECK(m.parameter_count() == 12 + 4 + 4 + 4 + 8);
    CHECK(m.named_buffers().at(0).first == "scale");
    CHECK(m.is_training());
    m.eval();
    CHECK_FALSE(m.blocks->at<LayerNorm>(0)->is_training());
    m.train();
    CHECK(m.fc1->is_training());
    const std::string s = m.str();
    CHECK(s.find("(fc1): Linear(in=3, out=4, bias=true)") != std::string::npos);
    CHECK(s.find("(1): Linear(in=4, out=2, bias=false)") != std::string::npos);
    CHECK(m.fc1->weight.label() == "weight");
  }

  TEST_CASE("to(dtype) converts values in place - gradients flow in float64") {
    Generator g(2);
    TwoLayer m(g);
    Var w = m.fc1->weight;
    const Tensor before = w.value().to(kFloat64);
    m.to(kFloat64);
    CHECK(w.dtype() == kFloat64);  // the same Var: optimizers stay attached
    CHECK(m.named_buffers()[0].second.dtype() == kFloat64);
    CHECK_CLOSE(w.value(), before, 0, 0);
    Var y = m.forward(constant(rnd({5, 3}, 3)));
    sum(y).backward();
    CHECK(w.grad().dtype() == kFloat64);
    CHECK(m.dtype() == kFloat64);
    GradcheckOptions o;
    o.params = m.parameters();
    const auto r =
        gradcheck([&](const std::vector<Var>& x) { return m.forward(x[0]); }, {rnd({3, 3}, 4)}, o);
    CHECK_MESSAGE(r.ok, r.report());
  }

  TEST_CASE("save and load round trip / and every malformed-file case") {
    Generator g1(10), g2(20);
    TwoLayer a(g1), b(g2);
    const std::string path = temp_path("model.npz");
    a.save(path);
    CHECK(max_abs_diff(a.fc1->weight.value(), b.fc1->weight.value()) > 0);
    b.load(path);
    for (std::size_t i = 0; i < a.parameters().size(); ++i) {
      CHECK(testing::bitwise_equal(a.parameters()[i].value(), b.parameters()[i].value()));
    }
    NamedTensors st = a.state_dict();
    SUBCASE("missing entry") {
      st.erase(st.begin() + 1);
      CHECK_THROWS_WITH_AS(b.load_state_dict(st),
                           doctest::Contains("missing parameter 'fc1.bias' (expected shape [4])"),
                           ValueError);
    }
    SUBCASE("extra entry") {
      st.emplace_back("fc3.weight", zeros({2, 2}));
      CHECK_THROWS_WITH_AS(
          b.load_state_dict(st),
          doctest::Contains("unexpected entries not in the model: 'fc3.weight' [2, 2]"),
          ValueError);
    }
    SUBCASE("mis-shaped entry, and the model is left unchanged") {
      const Tensor keep = b.fc1->bias.value().clone();
      st[0].second = zeros({4, 4});
      CHECK_THROWS_WITH_AS(
          b.load_state_dict(st),
          doctest::Contains(
              "parameter 'fc1.weight' has shape [4, 4] in the file but [4, 3] in the model"),
          ShapeError);
      CHECK(testing::bitwise_equal(b.fc1->bias.value(), keep));
    }
    SUBCASE("a file that is not an npz") {
      std::FILE* f = std::fopen(path.c_str(), "wb");
      std::fputs("not a zip", f);
      std::fclose(f);
      CHECK_THROWS_AS(b.load(path), IOError);
    }
    std::remove(path.c_str());
  }

  TEST_CASE("Linear") {
    Generator g(3);
    Linear lin(3, 2, g);
    Tensor x = rnd({4, 3}, 5, kFloat32);
    Tensor expect = add(matmul(x, lin.weight.value(), false, true), lin.bias.value());
    CHECK_CLOSE(lin.forward(constant(x)).value(), expect, 1e-6, 1e-6);
    CHECK(lin.forward(constant(rnd({2, 5, 3}, 6, kFloat32))).shape() == Shape{2, 5, 2});
    CHECK_THROWS_WITH_AS(lin.forward(constant(zeros({2, 4}))),
                         doctest::Contains("does not end in in_features = 3"),
                         ShapeError);
    // Initialisers: xavier bound sqrt(6 / (3 + 2)).
    CHECK(max(abs(lin.weight.value())).item() <= std::sqrt(6.0 / 5.0));
    CHECK(max(abs(lin.bias.value())).item() == 0);
    Linear kn(100, 100, g, LinearOptions{true, InitSpec{Init::KaimingNormal}});
    const double sd = std::sqrt(mean(square(kn.weight.value())).item());
    CHECK(sd == doctest::Approx(std::sqrt(2.0 / 100)).epsilon(0.05));
    Linear nz(4, 4, g, LinearOptions{true, InitSpec{Init::Normal, 0.5}});
    CHECK(std::sqrt(mean(square(nz.weight.value())).item()) == doctest::Approx(0.5).epsilon(0.35));
    CHECK(fans({8, 128, 64}).first == 128 * 64);  // PyTorch's 3-D fans
    CHECK(fans({8, 128, 64}).second == 8 * 64);
    CHECK_THROWS_AS(parse_init("glorot"), ValueError);
  }

  TEST_CASE("Embedding: padding row stays zero and gets no gradient") {
    Generator g(4);
    Embedding emb(6, 3, g, EmbeddingOptions{0});
    CHECK(max(abs(slice(emb.weight.value(), 0, 0, 1))).item() == 0);
    Tensor ids = from_vector(std::vector<int64_t>{0, 2, 0, 5}, {2, 2});
    Var y = emb.forward(ids);
    CHECK(y.shape() == Shape{2, 2, 3});
    sum(y * 3.0).backward();
    CHECK(max(abs(slice(emb.weight.grad(), 0, 0, 1))).item() == 0);
    CHECK(emb.weight.grad().get({2, 1}) == 3);
    // The padding row's gradient is zero by design (PyTorch's padding_idx semantics), so finite
    // differences are compared on ids without it.
    emb.to(kFloat64);
    Tensor real_ids = from_vector(std::vector<int64_t>{1, 2, 2, 5}, {2, 2});
    GradcheckOptions o;
    o.params = emb.parameters();
    o.wrt = {false};
    const auto r = gradcheck(
        [&](const std::vector<Var>&) { return emb.forward(real_ids); }, {zeros({1}, kFloat64)}, o);
    CHECK_MESSAGE(r.ok, r.report());
  }

  TEST_CASE("LayerNorm: fused op equals the composed reference and gradchecks") {
    Tensor x = rnd({3, 4, 7}, 6, kFloat64, -3, 3), w = rnd({7}, 7), b = rnd({7}, 8);
    const auto fused = [](const std::vector<Var>& v) {
      return layer_norm(v[0], v[1], v[2], 1e-5);
    };
    const auto composed = [](const std::vector<Var>& v) {
      return layer_norm_reference(v[0], v[1], v[2], 1e-5);
    };
    Tensor g = rnd({3, 4, 7}, 9);
    std::vector<Var> a = {param(x), param(w), param(b)}, c = {param(x), param(w), param(b)};
    Var ya = fused(a), yc = composed(c);
    CHECK_CLOSE(ya.value(), yc.value(), 1e-12, 1e-12);
    ya.backward(g);
    yc.backward(g);
    for (int i = 0; i < 3; ++i) CHECK_CLOSE(a[i].grad(), c[i].grad(), 1e-10, 1e-12);
    CHECK(gradcheck(fused, {x, w, b}).ok);
    LayerNorm ln(7);
    ln.to(kFloat64);
    Var y = ln.forward(constant(x));
    CHECK(std::fabs(mean(y.value()).item()) < 1e-12);
    CHECK_THROWS_AS(LayerNorm(7).forward(constant(zeros({2, 6}))), ShapeError);
  }

  TEST_CASE("Dropout: seeded / inspectable / identity in eval / saved with the model") {
    auto rng = std::make_shared<Generator>(42);
    Dropout drop(0.25, rng);
    Var x = constant(ones({100000}));
    Var y = drop.forward(x);
    const Tensor mask = drop.last_mask();
    const double kept = mean(gt(mask, 0.0)).item();
    CHECK(kept == doctest::Approx(0.75).epsilon(0.02));
    CHECK(max(mask).item() == doctest::Approx(1 / 0.75));
    CHECK(mean(y.value()).item() == doctest::Approx(1.0).epsilon(0.02));
    Dropout again(0.25, std::make_shared<Generator>(42));
    CHECK(testing::bitwise_equal(again.forward(x).value(), y.value()));
    drop.eval();
    CHECK(drop.forward(x).value().same_storage(x.value()));
    CHECK_FALSE(drop.last_mask().defined());
    CHECK(drop.state_dict().at(0).first == "rng");
    CHECK_THROWS_AS(Dropout(1.0, rng), ValueError);
  }

  TEST_CASE("FeedForward and activations gradcheck") {
    Generator g(11);
    FeedForward ffn(4, 6, g, 0.0, nullptr, Activation::GELU);
    ffn.to(kFloat64);
    GradcheckOptions o;
    o.params = ffn.parameters();
    const auto r = gradcheck(
        [&](const std::vector<Var>& x) { return ffn.forward(x[0]); }, {rnd({2, 4}, 12)}, o);
    CHECK_MESSAGE(r.ok, r.report());
    CHECK_THROWS_AS(parse_activation("swish"), ValueError);
  }

  TEST_CASE("TransformerBlock: every norm placement gradchecks - padded positions are zeroed") {
    for (const char* placement : {"pre", "post", "sasrec"}) {
      CAPTURE(placement);
      Generator g(13);
      TransformerBlockOptions opt;
      opt.dim = 4;
      opt.ffn_hidden = 5;
      opt.dropout = 0.0;
      opt.norm = parse_norm_placement(placement);
      MultiHeadAttentionOptions mo;
      mo.heads = 2;
      auto mha = std::make_shared<MultiHeadAttention>(
          4, std::make_shared<SoftmaxKernel>(SoftmaxImpl::Fused), g, mo);
      TransformerBlock block(mha, opt, g, nullptr);
      block.to(kFloat64);
      AttentionMask m;
      m.causal = true;
      m.key_padding = from_vector(std::vector<double>{1, 1, 1, 1, 1, 0}, {2, 3});
      GradcheckOptions o;
      o.params = block.parameters();
      o.fast_mode = true;  // 100+ parameters: random projections
      o.fast_trials = 3;
      const auto r = gradcheck([&](const std::vector<Var>& x) { return block.forward(x[0], m); },
                               {rnd({2, 3, 4}, 14)},
                               o);
      CHECK_MESSAGE(r.ok, r.report());
      Tensor y = block.forward(constant(rnd({2, 3, 4}, 15)), m).value();
      CHECK(max(abs(slice(slice(y, 0, 1, 2), 1, 2, 3))).item() == 0);
    }
    CHECK_THROWS_AS(parse_norm_placement("middle"), ValueError);
  }
}
