#include "layers/nn/basic.hpp"

#include <cmath>
#include <sstream>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {

// ---- Linear -----------------------------------------------------------------------------------
Linear::Linear(int64_t in, int64_t out, Generator& init_rng, LinearOptions opt)
    : Module("Linear"), in_features(in), out_features(out) {
  ATTNLAB_CHECK(
      in > 0 && out > 0, ValueError, "Linear: sizes must be positive, got in ", in, ", out ", out);
  weight = register_parameter("weight", initialize({out, in}, opt.weight_init, init_rng.next()));
  if (opt.bias)
    bias = register_parameter("bias", initialize({out}, opt.bias_init, init_rng.next()));
}

Var Linear::forward(const Var& x) const {
  ATTNLAB_CHECK(x.dim() >= 1 && x.shape().back() == in_features,
                ShapeError,
                "Linear: input ",
                x.shape(),
                " does not end in in_features = ",
                in_features);
  // One [rows, in] x [in, out] GEMM for any number of leading dimensions.
  Shape out_shape = x.shape();
  out_shape[out_shape.rank() - 1] = out_features;
  Var flat = ag::reshape(x, std::vector<int64_t>{-1, in_features});
  Var y = bias.defined() ? ag::linear(flat, weight, bias) : ag::matmul(flat, weight, false, true);
  return ag::reshape(y, out_shape);
}

std::string Linear::describe() const {
  std::ostringstream os;
  os << "Linear(in=" << in_features << ", out=" << out_features
     << ", bias=" << (bias.defined() ? "true" : "false") << ")";
  return os.str();
}

// ---- Embedding --------------------------------------------------------------------------------
Embedding::Embedding(int64_t n, int64_t d, Generator& init_rng, EmbeddingOptions opt)
    : Module("Embedding"), num(n), dim(d), padding_idx(opt.padding_idx) {
  ATTNLAB_CHECK(n > 0 && d > 0, ValueError, "Embedding: sizes must be positive, got ", n, " x ", d);
  ATTNLAB_CHECK(padding_idx < n,
                ValueError,
                "Embedding: padding_idx ",
                padding_idx,
                " out of range for ",
                n,
                " rows");
  Tensor table = initialize({n, d}, opt.init, init_rng.next());
  if (padding_idx >= 0) {
    for (int64_t i = 0; i < d; ++i) table.set({padding_idx, i}, 0.0);
  }
  weight = register_parameter("weight", table);
}

Var Embedding::forward(const Tensor& ids) const {
  return ag::embedding(weight, ids, padding_idx);
}

std::string Embedding::describe() const {
  std::ostringstream os;
  os << "Embedding(" << num << ", " << dim;
  if (padding_idx >= 0)
    os << ", padding_idx=" << padding_idx;
  os << ")";
  return os.str();
}

// ---- LayerNorm --------------------------------------------------------------------------------
LayerNorm::LayerNorm(int64_t d, double e, bool affine) : Module("LayerNorm"), dim(d), eps(e) {
  ATTNLAB_CHECK(d > 0, ValueError, "LayerNorm: dim must be positive, got ", d);
  if (affine) {
    weight = register_parameter("weight", ones({d}));
    bias = register_parameter("bias", zeros({d}));
  }
}

Var LayerNorm::forward(const Var& x) const {
  ATTNLAB_CHECK(x.dim() >= 1 && x.shape().back() == dim,
                ShapeError,
                "LayerNorm: input ",
                x.shape(),
                " does not end in dim = ",
                dim);
  return ag::layer_norm(x, weight, bias, eps);
}

std::string LayerNorm::describe() const {
  std::ostringstream os;
  os << "LayerNorm(" << dim << ", eps=" << eps
     << ", affine=" << (weight.defined() ? "true" : "false") << ")";
  return os.str();
}

// ---- Dropout ----------------------------------------------------------------------------------
Dropout::Dropout(double prob, std::shared_ptr<Generator> rng)
    : Module("Dropout"), p(prob), rng_(std::move(rng)) {
  ATTNLAB_CHECK(p >= 0 && p < 1, ValueError, "Dropout: p must be in [0, 1), got ", p);
  if (!rng_)
    rng_ = std::make_shared<Generator>(0);
  register_generator("rng", rng_);
}

Var Dropout::forward(const Var& x) {
  if (!is_training() || p == 0) {
    last_mask_ = Tensor();
    return x;
  }
  // One 32-bit word per element (keep32): a quarter of the Philox work of a 64-bit uniform each.
  last_mask_ = keep32_mask(x.shape(), 1.0 - p, 1.0 / (1.0 - p), rng_->next(), x.dtype());
  return x * ag::constant(last_mask_);
}

std::string Dropout::describe() const {
  std::ostringstream os;
  os << "Dropout(p=" << p << ")";
  return os.str();
}

// ---- activations and FeedForward --------------------------------------------------------------
const EnumNames<Activation>& enum_names(Activation) {
  static const EnumNames<Activation> names{{Activation::ReLU, "relu"},
                                           {Activation::GELU, "gelu", "tanh approximation"},
                                           {Activation::Tanh, "tanh"}};
  return names;
}
Activation parse_activation(const std::string& name) {
  return enum_names(Activation{}).parse(name, "activation");
}

Var activate(const Var& x, Activation act) {
  switch (act) {
    case Activation::ReLU:
      return ag::relu(x);
    case Activation::Tanh:
      return ag::tanh(x);
    case Activation::GELU: {
      // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (Hendrycks & Gimpel, tanh form)
      const double c = std::sqrt(2.0 / M_PI);
      Var inner = (x + ag::pow(x, 3.0) * 0.044715) * c;
      return x * (ag::tanh(inner) + 1.0) * 0.5;
    }
  }
  throw ValueError("activation: unknown kind");
}

FeedForward::FeedForward(int64_t dim,
                         int64_t hidden,
                         Generator& init_rng,
                         double dropout,
                         std::shared_ptr<Generator> dropout_rng,
                         Activation a)
    : Module("FeedForward"), act(a) {
  register_module("fc1", fc1, std::make_shared<Linear>(dim, hidden, init_rng));
  register_module("dropout", drop, std::make_shared<Dropout>(dropout, std::move(dropout_rng)));
  register_module("fc2", fc2, std::make_shared<Linear>(hidden, dim, init_rng));
}

Var FeedForward::forward(const Var& x) {
  return fc2(drop(activate(fc1(x), act)));
}

std::string FeedForward::describe() const {
  const char* names[] = {"relu", "gelu", "tanh"};
  return std::string("FeedForward(act=") + names[static_cast<int>(act)] + ")";
}

}  // namespace attnlab::nn
