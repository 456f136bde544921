// Product quantization with differentiable codeword selection (Wu et al., WWW 2021, after
// LightRec, Lian et al., WWW 2020; docs/derivations/lisa_histograms.md 1 and 7).
#include "layers/attention/lisa/product_quantizer.hpp"

#include <cmath>
#include <sstream>

#include "autograd/engine.hpp"
#include "autograd/function.hpp"
#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {
namespace {

// The selection as one node: forward p = softmax((logits + noise) / tau), output onehot(argmax p)
// (hard modes) or p (soft modes); backward d logits = softmax_backward(p, g) / tau for both (the
// straight-through estimator passes the gradient of the output straight to p).
class SelectCodewords : public ag::Function {
 public:
  SelectCodewords(bool hard, double tau, Tensor noise)
      : hard_(hard), tau_(tau), noise_(std::move(noise)) {}
  const char* name() const override { return hard_ ? "codeword_select_st" : "codeword_select"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor& logits = in[0];
    Tensor z = noise_.defined() ? add(logits, noise_) : logits;
    probs = softmax(mul(z, 1.0 / tau_), -1);
    index = argmax(probs, -1);  // ties: the lowest index (core/reduce.hpp)
    save_for_backward({probs});
    if (!hard_)
      return {probs};
    return {one_hot(index, logits.size(-1), logits.dtype())};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    if (!needs_input_grad(0))
      return {Tensor()};
    return {mul(softmax_backward(saved()[0], grad[0], -1), 1.0 / tau_)};
  }

  Tensor probs, index;  // read by select_codewords after apply

 private:
  bool hard_;
  double tau_;
  Tensor noise_;
};

Tensor draw_gumbel(const Shape& shape, DType dtype, Generator* rng, const char* op) {
  ATTNLAB_CHECK(
      rng != nullptr, ValueError, op, ": a Gumbel selection needs explicit noise or a generator");
  return gumbel(shape, *rng, dtype);
}

}  // namespace

const EnumNames<Selection>& enum_names(Selection) {
  static const EnumNames<Selection> names{
      {Selection::Soft, "soft", "probabilities"},
      {Selection::StraightThrough, "st", "hard forward, soft gradient"},
      {Selection::GumbelSoft, "gumbel-soft", "Gumbel noise, probabilities"},
      {Selection::GumbelStraightThrough, "gumbel-st", "Gumbel noise, straight-through"},
      {Selection::Hard, "hard", "argmax, no gradient"}};
  return names;
}
const char* selection_name(Selection s) {
  return enum_names(s).name(s);
}
Selection parse_selection(const std::string& name) {
  return enum_names(Selection{}).parse(name, "parse_selection: selection");
}

CodewordSelection select_codewords(
    const Var& logits, Selection mode, double tau, const Tensor& noise, Generator* rng) {
  constexpr const char* op = "select_codewords";
  ATTNLAB_CHECK(logits.dim() >= 1 && logits.size(-1) > 0,
                ShapeError,
                op,
                ": logits must be [..., W] with W > 0, got ",
                logits.shape());
  ATTNLAB_CHECK(is_floating(logits.dtype()), DTypeError, op, ": logits must be float");
  ATTNLAB_CHECK(tau > 0 && std::isfinite(tau), ValueError, op, ": tau must be > 0, got ", tau);
  Tensor g = noise;
  if (g.defined()) {
    ATTNLAB_CHECK(g.shape() == logits.shape() && g.dtype() == logits.dtype(),
                  ShapeError,
                  op,
                  ": noise must match logits ",
                  logits.shape(),
                  " ",
                  logits.dtype(),
                  ", got ",
                  g.shape(),
                  " ",
                  g.dtype());
  } else if (selection_is_gumbel(mode)) {
    g = draw_gumbel(logits.shape(), logits.dtype(), rng, op);
  }
  if (mode == Selection::Hard) {  // evaluation: no node, no gradient
    Tensor z = g.defined() ? add(logits.value(), g) : logits.value();
    Tensor p = softmax(mul(z, 1.0 / tau), -1);
    Tensor idx = argmax(p, -1);
    return {ag::non_differentiable("codeword_select_hard",
                                   one_hot(idx, logits.size(-1), logits.dtype())),
            idx,
            p};
  }
  auto fn = std::make_shared<SelectCodewords>(selection_is_hard(mode), tau, g);
  Var y = ag::apply(fn, {logits})[0];
  return {y, fn->index, fn->probs};
}

double TemperatureSchedule::at(int64_t step) const {
  if (kind == Kind::Constant || steps <= 0)
    return start;
  const double f = std::min(1.0, static_cast<double>(std::max<int64_t>(step, 0)) / steps);
  if (kind == Kind::Linear)
    return start + (end - start) * f;
  return start * std::pow(end / start, f);
}

CodewordUsage codeword_usage(const Tensor& codes, int64_t w, const Tensor& keep) {
  constexpr const char* op = "codeword_usage";
  ATTNLAB_CHECK(codes.dtype() == kInt64 && codes.dim() >= 1,
                DTypeError,
                op,
                ": codes must be int64 [..., B], got ",
                codes.dtype(),
                " ",
                codes.shape());
  ATTNLAB_CHECK(w > 0, ValueError, op, ": codewords must be positive, got ", w);
  const int64_t b = codes.size(-1), n = b == 0 ? 0 : codes.numel() / b;
  std::vector<double> k;
  if (keep.defined()) {
    ATTNLAB_CHECK(keep.numel() == n,
                  ShapeError,
                  op,
                  ": keep must have one entry per item (",
                  n,
                  "), got ",
                  keep.shape());
    k = keep.to_vector<double>();
  }
  CodewordUsage u;
  u.counts = zeros({b, w}, kFloat64);
  double* c = u.counts.data<double>();
  const int64_t* code = codes.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (!k.empty() && k[i] == 0)
      continue;
    ++u.items;
    for (int64_t j = 0; j < b; ++j) {
      const int64_t v = code[i * b + j];
      ATTNLAB_CHECK(v >= 0 && v < w, ValueError, op, ": code ", v, " outside [0, ", w, ")");
      c[j * w + v] += 1;
    }
  }
  for (int64_t j = 0; j < b; ++j) {
    int64_t used = 0;
    double total = 0, h = 0;
    for (int64_t v = 0; v < w; ++v) total += c[j * w + v];
    for (int64_t v = 0; v < w; ++v) {
      const double x = c[j * w + v];
      if (x > 0) {
        ++used;
        h -= x / total * std::log(x / total);
      }
    }
    u.used.push_back(used);
    u.entropy.push_back(h);
  }
  return u;
}

std::string CodewordUsage::str() const {
  std::ostringstream os;
  os << "codeword usage over " << items << " items:";
  for (std::size_t j = 0; j < used.size(); ++j)
    os << " [b" << j << ": used " << used[j] << ", entropy " << entropy[j] << "]";
  return os.str();
}

ProductQuantizer::ProductQuantizer(const ProductQuantizerOptions& o,
                                   Generator& init_rng,
                                   std::shared_ptr<Generator> noise_rng)
    : Module("ProductQuantizer"), options_(o), noise_rng_(std::move(noise_rng)) {
  ATTNLAB_CHECK(o.dim > 0 && o.codebooks > 0 && o.codewords > 0,
                ValueError,
                "ProductQuantizer: dim, codebooks and codewords must be positive, got D=",
                o.dim,
                " B=",
                o.codebooks,
                " W=",
                o.codewords);
  codebooks = register_parameter(
      "codebooks", initialize({o.codebooks, o.codewords, o.dim}, o.codebook_init, init_rng.next()));
  bilinear =
      register_parameter("bilinear", initialize({o.dim, o.dim}, o.bilinear_init, init_rng.next()));
  register_buffer("temperature_step", zeros({1}, kInt64));
  if (noise_rng_)
    register_generator("noise_rng", noise_rng_);
  reset_usage();
}

void ProductQuantizer::reset_usage() {
  usage_ = CodewordUsage{};
  usage_.counts = zeros({options_.codebooks, options_.codewords}, kFloat64);
  usage_.used.assign(options_.codebooks, 0);
  usage_.entropy.assign(options_.codebooks, 0.0);
}

void ProductQuantizer::set_usage(const CodewordUsage& u) {
  ATTNLAB_CHECK(u.counts.shape() == Shape({options_.codebooks, options_.codewords}),
                ShapeError,
                "ProductQuantizer::set_usage: counts must be [B, W] = [",
                options_.codebooks,
                ", ",
                options_.codewords,
                "], got ",
                u.counts.shape());
  usage_ = u;
  usage_.counts = u.counts.clone();
}

QuantizedItems ProductQuantizer::forward(const Var& x, const Tensor& noise, const Tensor& keep) {
  return quantize(x, noise, keep, QuantizedParts::PerPosition);
}

QuantizedItems ProductQuantizer::quantize(const Var& x,
                                          const Tensor& noise,
                                          const Tensor& keep,
                                          QuantizedParts parts) {
  constexpr const char* op = "ProductQuantizer";
  const int64_t d = options_.dim, nb = options_.codebooks, w = options_.codewords;
  ATTNLAB_CHECK(x.dim() >= 1 && x.size(-1) == d,
                ShapeError,
                op,
                ": input must be [..., ",
                d,
                "], got ",
                x.shape());
  const int64_t n = x.numel() / d;
  std::vector<int64_t> lead(x.shape().begin(), x.shape().end() - 1);
  const Selection mode = selection();
  const double tau = temperature();
  Tensor g;
  if (noise.defined()) {
    std::vector<int64_t> want = lead;
    want.push_back(nb);
    want.push_back(w);
    ATTNLAB_CHECK(noise.shape() == Shape(want),
                  ShapeError,
                  op,
                  ": noise must be ",
                  Shape(want),
                  ", got ",
                  noise.shape());
    g = noise.to(x.dtype()).reshape({n, nb, w});
  } else if (selection_is_gumbel(mode)) {
    g = draw_gumbel({n, nb, w}, x.dtype(), noise_rng_.get(), op);
  }
  Var xf = ag::reshape(x, {n, d});
  QuantizedItems out;
  Tensor codes;
  if (options_.residual) {
    // r_1 = x; logits_b = (r_b M) C_b^T; q_b = s_b C_b; r_(b+1) = r_b - q_b (official code).
    Var r = xf, recon;
    std::vector<Var> sels, logit_list, inputs;
    std::vector<Tensor> idx;
    for (int64_t b = 0; b < nb; ++b) {
      if (expose_codebook_inputs)
        inputs.push_back(r);
      Var cb = ag::reshape(ag::slice(codebooks, 0, b, b + 1), {w, d});
      Var logits = ag::matmul(ag::matmul(r, bilinear), cb, false, true);
      Tensor gb = g.defined() ? slice(g, 1, b, b + 1).reshape({n, w}) : Tensor();
      CodewordSelection sel = select_codewords(logits, mode, tau, gb, noise_rng_.get());
      Var q = ag::matmul(sel.selection, cb);
      recon = b == 0 ? q : recon + q;
      if (b + 1 < nb)
        r = r - q;
      sels.push_back(sel.selection);
      logit_list.push_back(logits);
      idx.push_back(sel.index);
    }
    out.reconstruction = recon;
    if (parts != QuantizedParts::Reconstruction)
      out.selection = ag::stack(sels, 1);
    if (parts == QuantizedParts::PerPosition)
      out.logits = ag::stack(logit_list, 1);
    codes = stack(idx, 1);
    if (expose_codebook_inputs)
      out.codebook_inputs = ag::stack(inputs, 1);  // [n, B, D]
  } else {
    // Every codebook scores x itself: one [n, B*W] product, one selection over the last axis.
    Var flat_c = ag::reshape(codebooks, {nb * w, d});
    Var logits = ag::reshape(ag::matmul(ag::matmul(xf, bilinear), flat_c, false, true), {n, nb, w});
    CodewordSelection sel = select_codewords(logits, mode, tau, g, noise_rng_.get());
    out.reconstruction = ag::matmul(ag::reshape(sel.selection, {n, nb * w}), flat_c);
    out.selection = sel.selection;
    out.logits = logits;
    codes = sel.index;
    if (expose_codebook_inputs)
      out.codebook_inputs = ag::broadcast_to(ag::reshape(xf, {n, 1, d}), {n, nb, d});
  }
  std::vector<int64_t> sel_shape = lead, code_shape = lead;
  sel_shape.push_back(nb);
  sel_shape.push_back(w);
  code_shape.push_back(nb);
  out.reconstruction = ag::reshape(out.reconstruction, x.shape());
  if (out.selection.defined())
    out.selection = ag::reshape(out.selection, sel_shape);
  if (out.logits.defined())
    out.logits = ag::reshape(out.logits, sel_shape);
  out.codes = codes.reshape(code_shape);
  out.noise = g.defined() ? g.reshape(sel_shape) : Tensor();
  if (out.codebook_inputs.defined()) {
    std::vector<int64_t> input_shape = lead;
    input_shape.push_back(nb);
    input_shape.push_back(d);
    out.codebook_inputs = ag::reshape(out.codebook_inputs, input_shape);
  }
  if (track_usage)
    record_usage(out.codes, keep);
  return out;
}

QuantizedItems ProductQuantizer::forward_ids(const Tensor& ids,
                                             const std::function<Var(const Tensor&)>& embed,
                                             const Tensor& keep,
                                             Var* embedded,
                                             QuantizedParts parts) {
  ATTNLAB_CHECK(ids.dtype() == kInt64,
                DTypeError,
                "ProductQuantizer::forward_ids: ids must be int64, got ",
                ids.dtype());
  if (selection_is_gumbel(selection())) {
    Var e = embed(ids);
    if (embedded)
      *embedded = e;
    // Embedded outside this module's scope, quantized in it; every position is its own row.
    QuantizedItems q = call(*this, e, Tensor(), keep);
    const int64_t positions = ids.numel();
    q.item_selection =
        ag::reshape(q.selection, {positions, options_.codebooks, options_.codewords});
    q.inverse = arange(positions, kInt64).reshape(ids.shape());
    return q;
  }
  Tensor inverse;
  const Tensor distinct = unique(ids, &inverse);
  Var e = embed(distinct);  // [U, D]
  const bool tracking = track_usage;
  track_usage = false;
  QuantizedItems q = call(*this, &ProductQuantizer::quantize, e, Tensor(), Tensor(), parts);
  track_usage = tracking;
  QuantizedItems out;
  out.reconstruction = ag::index_select(q.reconstruction, 0, inverse);  // ids.shape + [D]
  if (parts == QuantizedParts::PerPosition) {
    out.selection = ag::index_select(q.selection, 0, inverse);  // ids.shape + [B, W]
    out.logits = ag::index_select(q.logits, 0, inverse);
  }
  out.item_selection = q.selection;
  out.inverse = inverse;
  out.item_ids = distinct;
  out.item_reconstruction = q.reconstruction;
  out.codes = index_select(q.codes, 0, inverse);
  if (q.codebook_inputs.defined())
    out.codebook_inputs = ag::index_select(q.codebook_inputs, 0, inverse);  // ids.shape + [B, D]
  if (embedded)
    *embedded = ag::index_select(e, 0, inverse);
  if (track_usage)
    record_usage(out.codes, keep);
  return out;
}

void ProductQuantizer::record_usage(const Tensor& codes, const Tensor& keep) {
  const int64_t nb = options_.codebooks, w = options_.codewords;
  CodewordUsage now = codeword_usage(codes, w, keep);
  add_(usage_.counts, now.counts);
  usage_.items += now.items;
  const double* c = usage_.counts.data<double>();
  for (int64_t b = 0; b < nb; ++b) {
    double total = 0, h = 0;
    int64_t used = 0;
    for (int64_t v = 0; v < w; ++v) total += c[b * w + v];
    for (int64_t v = 0; v < w; ++v) {
      if (c[b * w + v] > 0) {
        ++used;
        h -= c[b * w + v] / total * std::log(c[b * w + v] / total);
      }
    }
    usage_.used[b] = used;
    usage_.entropy[b] = h;
  }
}

std::string ProductQuantizer::describe() const {
  std::ostringstream os;
  os << "ProductQuantizer(B=" << options_.codebooks << ", W=" << options_.codewords
     << ", D=" << options_.dim << ", " << (options_.residual ? "residual" : "non-residual")
     << ", train=" << selection_name(options_.train_selection)
     << ", eval=" << selection_name(options_.eval_selection) << ", tau=" << temperature() << ")";
  return os.str();
}

}  // namespace attnlab::nn
