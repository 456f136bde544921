// End-to-end training: resuming from a checkpoint is bit-identical to never stopping, a small MLP
// learns XOR, and a small regression reaches near-zero loss.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/nn/basic.hpp"
#include "layers/optim/checkpoint.hpp"
#include "layers/nn/losses.hpp"
#include "layers/optim/optim.hpp"
#include "layers/optim/schedule.hpp"
#include "tests/test_helpers.hpp"
#include "tests/scratch_path.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;
using namespace attnlab::optim;

namespace {

// in -> hidden -> hidden -> out with tanh and two dropouts sharing one generator.
class Mlp : public Module {
 public:
  Mlp(int64_t in,
      int64_t hidden,
      int64_t out,
      uint64_t init_seed,
      double p,
      std::shared_ptr<Generator> drop_rng)
      : Module("Mlp") {
    Generator g(init_seed);
    fc1 = register_module("fc1", std::make_shared<Linear>(in, hidden, g));
    drop1 = register_module("drop1", std::make_shared<Dropout>(p, drop_rng));
    fc2 = register_module("fc2", std::make_shared<Linear>(hidden, hidden, g));
    drop2 = register_module("drop2", std::make_shared<Dropout>(p, drop_rng));
    fc3 = register_module("fc3", std::make_shared<Linear>(hidden, out, g));
  }
  Var forward(const Var& x) {
    Var h = drop1->forward(tanh(fc1->forward(x)));
    h = drop2->forward(tanh(fc2->forward(h)));
    return fc3->forward(h);
  }
  std::shared_ptr<Linear> fc1, fc2, fc3;
  std::shared_ptr<Dropout> drop1, drop2;
};

std::string temp_path(const std::string& name) {
  return attnlab::testing::scratch_path(name);
}

// A run's state: everything a fresh process would rebuild, seeded differently per instance so
// that only a checkpoint can make two of them agree.
struct Run {
  Run(uint64_t seed, DType dt, bool use_sgd)
      : drop_rng(std::make_shared<Generator>(seed + 100)),
        model(4, 16, 3, seed, 0.2, drop_rng),
        data_rng(seed + 200),
        schedule(0.02, 3, 20, 0.002) {
    model.to(dt);
    if (use_sgd)
      opt = std::make_unique<SGD>(model.named_parameters(), 0.1, 0.9, true, 1e-4);
    else
      opt = std::make_unique<AdamW>(model.named_parameters(), 0.02);
  }
  // One step on a minibatch drawn by data_rng; returns the loss.
  double step(const Tensor& xs, const Tensor& ys) {
    const Tensor idx = randint({8}, 0, xs.shape()[0], data_rng);
    opt->zero_grad();
    Var loss = softmax_cross_entropy(model.forward(constant(index_select(xs, 0, idx))),
                                     index_select(ys, 0, idx));
    loss.backward();
    clip_grad_norm(opt->params(), 1.0);
    opt->set_lr(schedule.lr(opt->steps()));
    opt->step();
    return loss.item();
  }
  std::shared_ptr<Generator> drop_rng;
  Mlp model;
  Generator data_rng;
  WarmupCosine schedule;
  std::unique_ptr<Optimizer> opt;
};

}  // namespace

TEST_SUITE("layers.training") {
  TEST_CASE("resuming from a checkpoint is bit-identical") {
    const int n = 14, k = 6;
    for (DType dt : {kFloat32, kFloat64}) {
      for (bool use_sgd : {false, true}) {
        CAPTURE(dt);
        CAPTURE(use_sgd);
        const Tensor xs = randn({40, 4}, RngKey{5, 0}, dt);
        const Tensor ys = randint({40}, 0, 3, RngKey{5, 1});

        Run straight(1, dt, use_sgd);
        std::vector<double> losses;
        for (int i = 0; i < n; ++i) losses.push_back(straight.step(xs, ys));

        const std::string path = temp_path("resume.npz");
        {
          Run first(1, dt, use_sgd);
          for (int i = 0; i < k; ++i) CHECK(first.step(xs, ys) == losses[i]);
          save_checkpoint(path, first.model, *first.opt, k, {{"data", &first.data_rng}});
        }
        Run resumed(2, dt, use_sgd);  // different seeds everywhere until the load
        CHECK(load_checkpoint(path, resumed.model, *resumed.opt, {{"data", &resumed.data_rng}}) ==
              k);
        for (int i = k; i < n; ++i) {
          CAPTURE(i);
          CHECK(resumed.step(xs, ys) == losses[i]);
        }
        const auto pa = straight.model.parameters(), pb = resumed.model.parameters();
        REQUIRE(pa.size() == pb.size());
        for (std::size_t i = 0; i < pa.size(); ++i) {
          CHECK(testing::bitwise_equal(pa[i].value(), pb[i].value()));
        }
        CHECK(*straight.drop_rng == *resumed.drop_rng);
        CHECK(straight.data_rng == resumed.data_rng);
        std::remove(path.c_str());
      }
    }
  }

  TEST_CASE("an MLP learns XOR with Adam") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      auto rng = std::make_shared<Generator>(0);
      Mlp m(2, 8, 1, 3, 0.0, rng);
      m.to(dt);
      Adam adam(m.parameters(), 0.05);
      const Tensor x = from_vector(std::vector<double>{0, 0, 0, 1, 1, 0, 1, 1}, {4, 2}, dt);
      const Tensor y = from_vector(std::vector<double>{0, 1, 1, 0}, {4, 1}, dt);
      double loss = 1;
      int steps = 0;
      for (; steps < 1000 && loss >= 0.01; ++steps) {
        adam.zero_grad();
        Var l = bce_with_logits(m.forward(constant(x)), y);
        l.backward();
        adam.step();
        loss = l.item();
      }
      MESSAGE("XOR: loss " << loss << " after " << steps << " steps");
      CHECK(loss < 0.01);
      const Tensor out = m.forward(constant(x)).value();
      for (int i = 0; i < 4; ++i) CHECK((out.flat(i) > 0) == (y.flat(i) > 0.5));
    }
  }

  TEST_CASE("a small regression reaches near-zero loss") {
    for (DType dt : {kFloat32, kFloat64}) {
      CAPTURE(dt);
      // y = sin(2 x0) + 0.5 x1^2 on 32 points.
      const Tensor x = rand({32, 2}, RngKey{8, 0}, dt, -1, 1);
      std::vector<double> yv(32);
      for (int i = 0; i < 32; ++i) {
        yv[i] = std::sin(2 * x.get({i, 0})) + 0.5 * x.get({i, 1}) * x.get({i, 1});
      }
      const Tensor y = from_vector(yv, {32, 1}, dt);
      auto rng = std::make_shared<Generator>(0);
      Mlp m(2, 32, 1, 4, 0.0, rng);
      m.to(dt);
      const int total = 3000;
      Adam adam(m.parameters(), 0.02);
      WarmupCosine schedule(0.02, 50, total, 1e-5);
      double loss = 1;
      for (int s = 0; s < total; ++s) {
        adam.zero_grad();
        Var l = mse_loss(m.forward(constant(x)), y);
        l.backward();
        adam.set_lr(schedule.lr(adam.steps()));
        adam.step();
        loss = l.item();
      }
      MESSAGE("regression: MSE " << loss << " after " << adam.steps() << " steps");
      CHECK(loss < 1e-4);
    }
  }
}
