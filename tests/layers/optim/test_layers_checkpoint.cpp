// Checkpoints: round trip of model, optimizer, generators, step and scalars; every malformed-file
// case names the entry or the problem and leaves model and optimizer unchanged.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/nn/basic.hpp"
#include "layers/optim/checkpoint.hpp"
#include "layers/nn/losses.hpp"
#include "tests/test_helpers.hpp"
#include "tests/scratch_path.hpp"

using namespace attnlab;
using namespace attnlab::ag;
using namespace attnlab::nn;
using namespace attnlab::optim;

namespace {

class Mlp : public Module {
 public:
  Mlp(uint64_t seed, std::shared_ptr<Generator> drop_rng) : Module("Mlp") {
    Generator g(seed);
    fc1 = register_module("fc1", std::make_shared<Linear>(3, 4, g));
    drop = register_module("drop", std::make_shared<Dropout>(0.25, drop_rng));
    fc2 = register_module("fc2", std::make_shared<Linear>(4, 1, g));
  }
  Var forward(const Var& x) { return fc2->forward(drop->forward(tanh(fc1->forward(x)))); }
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<Dropout> drop;
};

std::string temp_path(const std::string& name) {
  return attnlab::testing::scratch_path(name);
}

void train_steps(Mlp& m, Optimizer& opt, Generator& data, int n) {
  for (int i = 0; i < n; ++i) {
    opt.zero_grad();
    Tensor x = randn({5, 3}, data);
    mse_loss(m.forward(constant(x)), zeros({5, 1})).backward();
    opt.step();
  }
}

// Every model parameter and optimizer state tensor, cloned.
NamedTensors snapshot(const Mlp& m, const Optimizer& opt) {
  NamedTensors out;
  for (auto& [n, t] : m.state_dict()) out.emplace_back("model." + n, t.clone());
  for (auto& [n, t] : opt.state_dict()) out.emplace_back("optim." + n, t.clone());
  return out;
}

bool same(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !testing::bitwise_equal(a[i].second, b[i].second))
      return false;
  }
  return true;
}

}  // namespace

TEST_SUITE("layers.checkpoint") {
  TEST_CASE("round trip: model / optimizer / generators / step / scalars") {
    auto drop_rng = std::make_shared<Generator>(7);
    Mlp a(1, drop_rng);
    Adam opt_a(a.named_parameters(), 0.01);
    Generator data(11);
    train_steps(a, opt_a, data, 3);
    const std::string path = temp_path("ckpt.npz");
    save_checkpoint(path, a, opt_a, 3, {{"data", &data}}, {{"best_loss", 0.25}});

    // Python-readable layout.
    const NamedTensors raw = load_npz(path);
    CHECK(raw[0].first == "checkpoint_version");
    CHECK(raw[1].first == "step");
    CHECK(raw[2].first == "model.fc1.weight");
    CHECK(raw.back().first == "scalar.best_loss");

    auto fresh_rng = std::make_shared<Generator>(99);
    Mlp b(2, fresh_rng);
    Adam opt_b(b.named_parameters(), 0.5);
    Generator data_b(0);
    NamedScalars scalars;
    CHECK(load_checkpoint(path, b, opt_b, {{"data", &data_b}}, &scalars) == 3);
    CHECK(same(snapshot(a, opt_a), snapshot(b, opt_b)));
    CHECK(data_b == data);
    CHECK(*fresh_rng == *drop_rng);
    CHECK(opt_b.steps() == 3);
    CHECK(opt_b.lr() == 0.01);
    REQUIRE(scalars.size() == 1);
    CHECK(scalars[0] == std::make_pair(std::string("best_loss"), 0.25));
    // Scalars are optional on load.
    CHECK(load_checkpoint(path, b, opt_b, {{"data", &data_b}}) == 3);
    std::remove(path.c_str());
  }

  TEST_CASE("a float64 model loads a float32 checkpoint") {
    auto r1 = std::make_shared<Generator>(1), r2 = std::make_shared<Generator>(1);
    Mlp a(1, r1), b(2, r2);
    b.to(kFloat64);
    SGD oa(a.parameters(), 0.1, 0.9), ob(b.parameters(), 0.1, 0.9);
    Generator data(3);
    train_steps(a, oa, data, 2);
    const std::string path = temp_path("ckpt64.npz");
    save_checkpoint(path, a, oa, 2);
    load_checkpoint(path, b, ob);
    CHECK(b.fc1->weight.dtype() == kFloat64);
    CHECK(testing::bitwise_equal(b.fc1->weight.value(), a.fc1->weight.value().to(kFloat64)));
    std::remove(path.c_str());
  }

  TEST_CASE("malformed checkpoints name the problem and change nothing") {
    auto rng_a = std::make_shared<Generator>(5);
    Mlp a(1, rng_a);
    AdamW opt_a(a.named_parameters(), 0.01);
    Generator data(11);
    train_steps(a, opt_a, data, 2);
    const NamedTensors good = checkpoint_entries(a, opt_a, 2, {{"data", &data}});

    auto rng_b = std::make_shared<Generator>(6);
    Mlp b(2, rng_b);
    AdamW opt_b(b.named_parameters(), 0.02);
    Generator data_b(12);
    train_steps(b, opt_b, data_b, 1);
    const NamedTensors before = snapshot(b, opt_b);
    const Generator data_before = data_b, rng_before = *rng_b;
    const std::string path = temp_path("bad.npz");

    auto load = [&] {
      load_checkpoint(path, b, opt_b, {{"data", &data_b}});
    };
    auto write = [&](const NamedTensors& entries) {
      save_npz(path, entries);
    };
    auto find = [](NamedTensors& e, const std::string& name) -> Tensor& {
      for (auto& [n, t] : e) {
        if (n == name)
          return t;
      }
      FAIL("no entry " << name);
      throw std::logic_error("unreachable");
    };

    SUBCASE("missing model entry") {
      NamedTensors e = good;
      e.erase(e.begin() + 3);  // model.fc1.bias
      write(e);
      CHECK_THROWS_WITH_AS(load(),
                           doctest::Contains("model (entries 'model.*'): load_state_dict: missing "
                                             "parameter 'fc1.bias' (expected shape [4])"),
                           ValueError);
    }
    SUBCASE("missing optimizer entry") {
      NamedTensors e = good;
      for (auto it = e.begin(); it != e.end(); ++it) {
        if (it->first == "optim.fc2.weight.exp_avg_sq") {
          e.erase(it);
          break;
        }
      }
      write(e);
      CHECK_THROWS_WITH_AS(
          load(), doctest::Contains("missing entry 'fc2.weight.exp_avg_sq'"), ValueError);
    }
    SUBCASE("missing step / rng / version") {
      for (const std::string name : {"step", "rng.data", "checkpoint_version"}) {
        CAPTURE(name);
        NamedTensors e;
        for (const auto& [n, t] : good) {
          if (n != name)
            e.emplace_back(n, t);
        }
        write(e);
        CHECK_THROWS_WITH_AS(
            load(), doctest::Contains(("missing entry '" + name + "'").c_str()), ValueError);
      }
    }
    SUBCASE("extra entries") {
      NamedTensors e = good;
      e.emplace_back("model.fc3.weight", zeros({2, 2}));
      write(e);
      CHECK_THROWS_WITH_AS(load(),
                           doctest::Contains("unexpected entries not in the model: 'fc3.weight'"),
                           ValueError);
      e.pop_back();
      e.emplace_back("rng.sampler", zeros({2}, kInt64));
      write(e);
      CHECK_THROWS_WITH_AS(load(), doctest::Contains("unexpected entry 'rng.sampler'"), ValueError);
      e.pop_back();
      e.emplace_back("notes", zeros({1}));
      write(e);
      CHECK_THROWS_WITH_AS(load(), doctest::Contains("unexpected entry 'notes'"), ValueError);
    }
    SUBCASE("wrong shapes and dtypes") {
      NamedTensors e = good;
      find(e, "optim.fc1.weight.exp_avg") = zeros({4, 4});
      write(e);
      // The model part is fine, the optimizer part is not: neither may change.
      CHECK_THROWS_WITH_AS(
          load(),
          doctest::Contains("entry 'fc1.weight.exp_avg' has shape [4, 4] but [4, 3] was expected"),
          ShapeError);
      e = good;
      find(e, "model.fc2.weight") = zeros({2, 4});
      write(e);
      CHECK_THROWS_WITH_AS(load(),
                           doctest::Contains("parameter 'fc2.weight' has shape [2, 4] in the file"),
                           ShapeError);
      e = good;
      find(e, "step") = scalar_tensor(2.0, kFloat64);
      write(e);
      CHECK_THROWS_WITH_AS(
          load(), doctest::Contains("entry 'step' must be int64, got float64"), DTypeError);
      e = good;
      find(e, "rng.data") = zeros({3}, kInt64);
      write(e);
      CHECK_THROWS_WITH_AS(
          load(), doctest::Contains("entry 'rng.data' must be [2], got [3]"), ShapeError);
    }
    SUBCASE("a model-only file") {
      b.save(path);
      CHECK_THROWS_WITH_AS(load(), doctest::Contains("not an attnlab checkpoint"), ValueError);
    }
    SUBCASE("truncated file") {
      const std::string bytes = npz_bytes(good);
      write_file_atomic(path, bytes.substr(0, bytes.size() * 2 / 3));
      CHECK_THROWS_WITH_AS(load(), doctest::Contains("truncated"), IOError);
      const std::string where = "load_checkpoint '" + path + "'";
      CHECK_THROWS_WITH_AS(load(), doctest::Contains(where.c_str()), IOError);
    }
    SUBCASE("not a zip") {
      write_file_atomic(path, "this is not a zip archive at all");
      CHECK_THROWS_AS(load(), IOError);
    }
    SUBCASE("missing file") {
      std::remove(path.c_str());
      CHECK_THROWS_AS(load(), IOError);
    }
    CHECK(same(snapshot(b, opt_b), before));
    CHECK(data_b == data_before);
    CHECK(*rng_b == rng_before);
    std::remove(path.c_str());
  }
}
