// The basic layers: Linear, Embedding, LayerNorm, Dropout, FeedForward.
#pragma once

#include <memory>
#include <string>

#include "core/enum_names.hpp"
#include "layers/nn/init.hpp"
#include "layers/nn/module.hpp"

namespace attnlab::nn {

struct LinearOptions {
  bool bias = true;
  InitSpec weight_init{Init::XavierUniform};
  InitSpec bias_init{Init::Zeros};
};

// y = x W^T + b over the last axis; W is [out, in] (PyTorch's layout, so weights move between
// the two without transposes).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& init_rng, LinearOptions opt = {});
  Var forward(const Var& x) const;  // [..., in] -> [..., out]
  std::string describe() const override;
  Var weight, bias;  // bias undefined without a bias
  int64_t in_features, out_features;
};

struct EmbeddingOptions {
  int64_t padding_idx = -1;  // this row starts at zero and never receives a gradient
  InitSpec init{Init::Normal, 1.0};
};

// Rows of a [num, dim] table for int64 ids of any shape.
class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Generator& init_rng, EmbeddingOptions opt = {});
  Var forward(const Tensor& ids) const;  // ids.shape -> ids.shape + [dim]
  std::string describe() const override;
  Var weight;
  int64_t num, dim, padding_idx;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool affine = true);
  Var forward(const Var& x) const;
  std::string describe() const override;
  Var weight, bias;  // undefined when !affine
  int64_t dim;
  double eps;
};

// Inverted dropout: in training, zeroes each element with probability p and scales the rest by
// 1 / (1 - p); in eval it is the identity. The mask comes from the shared generator (one fresh
// stream per call; element i kept iff keep32(stream, i), core/rng.hpp), so runs are reproducible
// and resumable; the last mask can be inspected.
class Dropout : public Module {
 public:
  Dropout(double p, std::shared_ptr<Generator> rng);
  Var forward(const Var& x);
  const Tensor& last_mask() const { return last_mask_; }  // 0 or 1/(1-p); undefined in eval
  std::string describe() const override;
  double p;

 private:
  std::shared_ptr<Generator> rng_;
  Tensor last_mask_;
};

enum class Activation { ReLU, GELU, Tanh };
const EnumNames<Activation>& enum_names(Activation);
Activation parse_activation(const std::string& name);  // "relu", "gelu", "tanh"
Var activate(const Var& x, Activation act);            // GELU: the tanh approximation

// fc2(dropout(act(fc1(x)))): the position-wise feed-forward network of a transformer block.
class FeedForward : public Module {
 public:
  FeedForward(int64_t dim,
              int64_t hidden,
              Generator& init_rng,
              double dropout,
              std::shared_ptr<Generator> dropout_rng,
              Activation act = Activation::ReLU);
  Var forward(const Var& x);
  std::string describe() const override;
  Child<Linear> fc1, fc2;
  Child<Dropout> drop;
  Activation act;
};

}  // namespace attnlab::nn
