// Module::replace_module: a child swapped for another keeps its registered name, and everything
// that reads the tree (state dict, str(), describe(), train/eval, typed members, tape scopes,
// checkpoints) sees the new child and nothing of the old one.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "layers/attention/softmax/softmax_kernel.hpp"
#include "layers/attention/multihead_attention.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/sasrec.hpp"
#include "tests/test_helpers.hpp"
#include "tests/scratch_path.hpp"

using namespace attnlab;
using namespace attnlab::nn;
using namespace attnlab::rec;

namespace {

SASRecConfig small_sasrec() {
  SASRecConfig c;
  c.num_items = 30;
  c.max_length = 8;
  c.dim = 16;
  c.blocks = 2;
  c.dropout = 0.1;  // the softmax kernel then owns a dropout generator "rng"
  c.seed = 4;
  return c;
}

std::shared_ptr<AttentionKernel> favor_kernel(const SASRecConfig& c) {
  KernelContext context;
  context.head_dim = c.dim / c.heads;
  context.seed = 11;
  return attention_kind("favor").make_default(context);
}

MultiHeadAttention& attention_of(SASRec& m, std::size_t block) {
  return dynamic_cast<MultiHeadAttention&>(*m.blocks->at<TransformerBlock>(block)->attention);
}

Tensor item_ids(int64_t batch, int64_t length) {
  Tensor ids = Tensor::empty({batch, length}, kInt64);
  for (int64_t i = 0; i < batch * length; ++i) ids.data<int64_t>()[i] = 1 + (i * 7) % 30;
  ids.data<int64_t>()[0] = 0;  // one padded slot
  return ids;
}

std::vector<std::string> keys(const NamedTensors& state) {
  std::vector<std::string> out;
  for (const auto& [n, t] : state) out.push_back(n);
  return out;
}

bool has_key(const NamedTensors& state, const std::string& key) {
  const auto k = keys(state);
  return std::find(k.begin(), k.end(), key) != k.end();
}

std::string temp_path(const std::string& name) {
  return attnlab::testing::scratch_path(name);
}

}  // namespace

TEST_SUITE("layers.module.replace") {
  TEST_CASE(
      "SASRec kernel replaced by a FAVOR+ kernel: state dict and str and describe and member") {
    const SASRecConfig c = small_sasrec();
    SASRec model(c);
    CHECK(has_key(model.state_dict(), "blocks.0.attn.kernel.rng"));
    auto favor = favor_kernel(c);
    const std::vector<std::string> favor_keys = keys(favor->state_dict());
    REQUIRE_FALSE(favor_keys.empty());

    const auto old = model.replace_module("blocks.0.attn.kernel", favor);
    CHECK(old->type_name() == "SoftmaxKernel");
    // The typed member that aliases the child follows the registry.
    CHECK(attention_of(model, 0).kernel.get() == favor);
    CHECK(model.module_at("blocks.0.attn.kernel") == favor);
    CHECK(favor->name() == "kernel");

    const NamedTensors state = model.state_dict();
    CHECK_FALSE(has_key(state, "blocks.0.attn.kernel.rng"));  // the old generator is gone
    CHECK(has_key(state, "blocks.1.attn.kernel.rng"));        // the other block kept its own
    for (const auto& k : favor_keys) CHECK(has_key(state, "blocks.0.attn.kernel." + k));

    const std::string tree = model.str();
    CAPTURE(tree);
    CHECK(tree.find("(kernel): " + favor->describe()) != std::string::npos);
    CHECK(model.describe().find("attention=softmax-fused") == std::string::npos);
    CHECK(model.describe().find(favor->describe()) != std::string::npos);

    model.replace_module("blocks.1.attn.kernel", favor_kernel(c));
    CHECK(model.str().find("SoftmaxKernel") == std::string::npos);
  }

  TEST_CASE("the new child takes the parent train/eval mode and later modes reach it") {
    const SASRecConfig c = small_sasrec();
    SASRec model(c);
    model.eval();
    auto favor = favor_kernel(c);
    REQUIRE(favor->is_training());
    model.replace_module("blocks.0.attn.kernel", favor);
    CHECK_FALSE(favor->is_training());
    model.train();
    CHECK(favor->is_training());
    model.eval();
    CHECK_FALSE(favor->is_training());
  }

  TEST_CASE("forward and backward through the replaced kernel with its nodes in its scope") {
    const SASRecConfig c = small_sasrec();
    SASRec model(c);
    model.replace_module("blocks.0.attn.kernel", favor_kernel(c));
    ag::Tape tape;
    Var h = model.hidden(item_ids(3, c.max_length));
    ag::sum(h).backward();
    std::set<std::string> scopes;
    for (const auto& node : tape.nodes()) scopes.insert(node->scope());
    CAPTURE(scopes.size());
    CHECK(scopes.count("0.attn.kernel") == 1);
    bool favor_node_in_kernel_scope = false;
    for (const auto& node : tape.nodes()) {
      if (std::string(node->op).find("favor") != std::string::npos)
        favor_node_in_kernel_scope = favor_node_in_kernel_scope || node->scope() == "0.attn.kernel";
    }
    CHECK(favor_node_in_kernel_scope);
    for (const auto& [n, p] : model.named_parameters()) {
      if (n.rfind("blocks.0.attn.w_", 0) == 0) {
        CAPTURE(n);
        REQUIRE(p.grad().defined());
        CHECK_FALSE(has_nonfinite(p.grad()));
        CHECK(max_abs_diff(p.grad(), zeros(p.grad().shape(), p.grad().dtype())) > 0);
      }
    }
  }

  TEST_CASE("a checkpoint of a model with a replaced kernel round-trips") {
    const SASRecConfig c = small_sasrec();
    SASRec a(c);
    a.replace_module("blocks.0.attn.kernel", favor_kernel(c));
    const std::string path = temp_path("replaced.npz");
    a.save(path);
    SASRecConfig other = c;
    other.seed = 9;  // different initial weights
    SASRec b(other);
    // The file holds the FAVOR+ kernel's entries, not the softmax kernel's: a plain model refuses.
    CHECK_THROWS_WITH_AS(b.load(path), doctest::Contains("blocks.0.attn.kernel"), Error);
    b.replace_module("blocks.0.attn.kernel", favor_kernel(other));
    b.load(path);
    std::remove(path.c_str());
    a.eval();
    b.eval();
    const Tensor ids = item_ids(2, c.max_length);
    CHECK(testing::bitwise_equal(a.hidden(ids).value(), b.hidden(ids).value()));
  }

  TEST_CASE("a replacement takes the model's dtype") {
    const SASRecConfig c = small_sasrec();
    SASRec model(c);
    model.to(kFloat64);
    auto favor = favor_kernel(c);
    model.replace_module("blocks.0.attn.kernel", favor);
    for (const auto& [n, t] : favor->named_buffers()) {
      if (is_floating(t.dtype()))
        CHECK(t.dtype() == kFloat64);
    }
    model.eval();
    CHECK(model.hidden(item_ids(1, c.max_length)).dtype() == kFloat64);
  }

  TEST_CASE("a list item is replaced in place and ModuleList reads it back") {
    const SASRecConfig c = small_sasrec();
    SASRec model(c);
    Generator g(3);
    TransformerBlockOptions bo;
    bo.dim = c.dim;
    bo.ffn_hidden = c.dim;
    auto mha = std::make_shared<MultiHeadAttention>(c.dim, favor_kernel(c), g);
    auto block = std::make_shared<TransformerBlock>(mha, bo, g, std::make_shared<Generator>(5));
    model.replace_module("blocks.1", block);
    CHECK(model.blocks->at<TransformerBlock>(1) == block);
    CHECK(model.blocks->size() == 2);
    CHECK(block->name() == "1");
    CHECK(has_key(model.state_dict(), "blocks.1.attn.kernel.features.projection") ==
          has_key(block->state_dict(), "attn.kernel.features.projection"));
  }

  TEST_CASE("bad replacements name the path and leave the model unchanged") {
    const SASRecConfig c = small_sasrec();
    SASRec model(c);
    const std::vector<std::string> before = keys(model.state_dict());
    Generator g(1);
    CHECK_THROWS_WITH_AS(model.replace_module("blocks.0.attn.nope", favor_kernel(c)),
                         doctest::Contains("no submodule at 'blocks.0.attn.nope'"),
                         ValueError);
    CHECK_THROWS_WITH_AS(model.replace_module("blocks.7", favor_kernel(c)),
                         doctest::Contains("'blocks.7'"),
                         ValueError);
    // A kernel does not fit the typed slot of a Linear.
    CHECK_THROWS_WITH_AS(model.replace_module("blocks.0.attn.w_q", favor_kernel(c)),
                         doctest::Contains("'blocks.0.attn.w_q' holds a Linear and cannot take a "
                                           "FavorKernel"),
                         ValueError);
    // A list item (no typed slot) takes only a module of the same type.
    CHECK_THROWS_WITH_AS(model.replace_module("blocks.0", std::make_shared<Linear>(16, 16, g)),
                         doctest::Contains("'blocks.0' holds a TransformerBlock"),
                         ValueError);
    CHECK_THROWS_WITH_AS(
        model.replace_module("final_norm", nullptr), doctest::Contains("'final_norm'"), ValueError);
    CHECK(keys(model.state_dict()) == before);
    CHECK(attention_of(model, 0).kernel->type_name() == "SoftmaxKernel");
  }

  TEST_CASE("module scopes: every SASRec node is attributed to the module that created it") {
    // The names the call wrapper opens, identical to those each forward opened itself before
    // (a root opens none; a ModuleList item opens its index).
    SASRecConfig c = small_sasrec();
    c.blocks = 1;
    SASRec model(c);
    ag::Tape tape;
    model.hidden(item_ids(2, c.max_length));
    std::set<std::string> scopes;
    for (const auto& node : tape.nodes()) scopes.insert(node->scope());
    const std::set<std::string> expected{"",
                                         "item_embedding",
                                         "position_embedding",
                                         "input_dropout",
                                         "0",
                                         "0.norm1",
                                         "0.attn",
                                         "0.attn.w_q",
                                         "0.attn.w_k",
                                         "0.attn.w_v",
                                         "0.attn.kernel",
                                         "0.dropout1",
                                         "0.norm2",
                                         "0.ffn",
                                         "0.ffn.fc1",
                                         "0.ffn.dropout",
                                         "0.ffn.fc2",
                                         "0.dropout2",
                                         "final_norm"};
    std::string got;
    for (const auto& s : scopes) got += "'" + s + "' ";
    CAPTURE(got);
    for (const auto& s : scopes) CHECK(expected.count(s) == 1);
    CHECK(scopes.count("0.attn.kernel") == 1);
    CHECK(scopes.count("0.ffn.fc1") == 1);
    CHECK(scopes.count("item_embedding") == 1);
  }
}
