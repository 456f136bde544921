// Product quantization of item embeddings with differentiable codeword selection: the codes that
// LISA's codeword histograms count (Wu et al., WWW 2021, after LightRec: Lian et al., WWW 2020;
// docs/derivations/lisa_histograms.md 1 and 7).
//
//   B codebooks of W codewords, one [B, W, D] tensor C; one bilinear matrix M [D, D] shared by all
//   codebooks (the official code's similarity, no linear terms). Residual ("recurrent") encoding:
//     r_1 = x;  logits_b = (r_b M) C_b^T;  s_b = select(logits_b);  q_b = s_b C_b;
//     r_(b+1) = r_b - q_b;  reconstruction = sum_b q_b.
//   Non-residual encoding scores every codebook against x itself.
//
// Selection (select_codewords), all on logits [..., W] with temperature tau and optional Gumbel
// noise G (p = softmax((logits + G) / tau); G = 0 without noise):
//   Soft                   p                          gradient of the softmax
//   StraightThrough        onehot(argmax p)           gradient of the softmax (the official code)
//   GumbelSoft             p with G ~ Gumbel(0, 1)    gradient of the softmax (Jang et al. 2017)
//   GumbelStraightThrough  onehot(argmax p), G drawn  gradient of the softmax
//   Hard                   onehot(argmax p)           no gradient (evaluation)
// argmax breaks ties by the lowest index (the official code's "== row max" gives a multi-hot row
// on ties). Gumbel noise is drawn from a Generator or passed in explicitly (so the
// op is a deterministic function of its inputs for gradcheck).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/enum_names.hpp"
#include "layers/nn/init.hpp"
#include "layers/nn/module.hpp"

namespace attnlab::nn {

enum class Selection { Soft, StraightThrough, GumbelSoft, GumbelStraightThrough, Hard };
// "soft", "st", "gumbel-soft", "gumbel-st", "hard".
const EnumNames<Selection>& enum_names(Selection);
const char* selection_name(Selection s);
Selection parse_selection(const std::string& name);
inline bool selection_is_gumbel(Selection s) {
  return s == Selection::GumbelSoft || s == Selection::GumbelStraightThrough;
}
inline bool selection_is_hard(Selection s) {
  return s == Selection::StraightThrough || s == Selection::GumbelStraightThrough ||
         s == Selection::Hard;
}

struct CodewordSelection {
  Var selection;  // [..., W]: one-hot (hard modes) or probabilities (soft modes)
  Tensor index;   // int64 [...]: argmax of the (noisy) probabilities, lowest index on ties
  Tensor probs;   // [...] + [W]: the softmax p (a plain tensor, for inspection)
};

// One fused op (one tape node): forward as in the table above, backward
//   d logits = p (g - sum_w g p) / tau
// for every mode except Hard (no gradient). noise: undefined (none, or drawn from `rng` for the
// Gumbel modes; a Gumbel mode without noise and without rng is a ValueError) or a tensor of
// logits' shape and dtype.
CodewordSelection select_codewords(const Var& logits,
                                   Selection mode,
                                   double tau,
                                   const Tensor& noise = {},
                                   Generator* rng = nullptr);

// Temperature annealing for the selection softmax: tau(step) from `start` to `end` over `steps`
// steps, then constant. Constant: start always; Linear: straight line; Exponential: geometric
// interpolation start * (end/start)^(step/steps) (the usual Gumbel-softmax schedule).
struct TemperatureSchedule {
  enum class Kind { Constant, Linear, Exponential };
  Kind kind = Kind::Constant;
  double start = 0.7;
  double end = 0.7;
  int64_t steps = 1;
  double at(int64_t step) const;
};

// Per-codebook usage of codewords: counts [B, W] (float64), the number of codewords with a
// non-zero count, and the entropy (nats) of the empirical code distribution (ln W when uniform,
// 0 when one codeword takes everything; codebook collapse shows as low entropy).
struct CodewordUsage {
  Tensor counts;
  std::vector<int64_t> used;
  std::vector<double> entropy;
  int64_t items = 0;  // items counted
  std::string str() const;
};
// codes: int64 [..., B] in [0, W); keep (optional, float, codes.shape[:-1]): 0 skips the item.
CodewordUsage codeword_usage(const Tensor& codes, int64_t codewords, const Tensor& keep = {});

struct ProductQuantizerOptions {
  int64_t dim = 64;        // D
  int64_t codebooks = 8;   // B
  int64_t codewords = 16;  // W
  bool residual = true;
  Selection train_selection = Selection::StraightThrough;
  Selection eval_selection = Selection::Hard;
  TemperatureSchedule temperature;  // tau = temperature.at(step())
  // Initialisers (as the official code: xavier-normal with PyTorch's 3-D fans for C, xavier-normal
  // for M).
  InitSpec codebook_init{Init::XavierNormal};
  InitSpec bilinear_init{Init::XavierNormal};
};

struct QuantizedItems {
  Var reconstruction;  // [..., D]: sum_b q_b (forward value: sum of the selected codewords)
  Var selection;       // [..., B, W]: what the histograms count (one-hot or probabilities)
  Tensor codes;        // int64 [..., B]
  Var logits;          // [..., B, W] (before temperature and noise)
  Tensor noise;        // [..., B, W] the Gumbel noise used (undefined without)
  // [..., B, D]: what codebook b quantizes, r_b (residual: r_1 = x, r_(b+1) = r_b - q_b;
  // non-residual: x for every b). Only when ProductQuantizer::expose_codebook_inputs is set
  // (undefined otherwise); what LISA's exact counterpart attends over.
  Var codebook_inputs;
  // forward_ids only: the selections of the rows actually quantized [U, B, W] (the distinct items,
  // or every position for the Gumbel selections) and, per position, its row there (int64,
  // ids.shape): selection = index_select(item_selection, 0, inverse) at every position. A fused
  // consumer (lisa_item_histogram_attention) reads these instead of the per-position selection.
  Var item_selection;
  Tensor inverse;
  // forward_ids on the distinct-item path only (undefined for the Gumbel selections): the
  // distinct ids [U] in increasing order and their reconstructions [U, D], the rows inverse points
  // into (a caller may gather more positions of the same items from them).
  Tensor item_ids;
  Var item_reconstruction;
};

// What ProductQuantizer::forward_ids returns besides the reconstruction and the codes:
//   PerPosition     everything, selection and logits gathered per position ([..., B, W] each)
//   Rows            item_selection and inverse, no per-position selection, no logits
//   Reconstruction  nothing more (the targets' item vectors)
// The per-position copies and the stacked logits are the largest tensors of a LISA step; the
// values that are returned are the same in every mode.
enum class QuantizedParts { PerPosition, Rows, Reconstruction };

class ProductQuantizer : public Module {
 public:
  ProductQuantizer(const ProductQuantizerOptions& options,
                   Generator& init_rng,
                   std::shared_ptr<Generator> noise_rng);
  // x [..., D]. noise (optional, [..., B, W]): added to the logits in any mode (the Gumbel modes
  // draw it from the generator when it is absent; pass it to make them deterministic).
  // keep (optional, x.shape[:-1], 0/1): items with 0 are not counted in usage().
  QuantizedItems forward(const Var& x, const Tensor& noise = {}, const Tensor& keep = {});
  // The same for items given by id: embed(ids) ([U] -> [U, D]) is quantized once per distinct id
  // and the results are gathered per position (index_select, whose backward sums the positions'
  // gradients into the shared row: the values and gradients of forward(embed(ids)), at the cost
  // of the distinct items: a batch of 128 x 200 positions holds a few thousand). Selections that
  // draw Gumbel noise (independent per position) take forward(embed(ids)) itself. `embedded`,
  // if given, receives the per-position embeddings [..., D]. parts: what else is returned
  // (QuantizedParts; the Gumbel path returns everything, all per position already).
  QuantizedItems forward_ids(const Tensor& ids,
                             const std::function<Var(const Tensor&)>& embed,
                             const Tensor& keep = {},
                             Var* embedded = nullptr,
                             QuantizedParts parts = QuantizedParts::PerPosition);
  Selection selection() const {
    return is_training() ? options_.train_selection : options_.eval_selection;
  }
  double temperature() const { return options_.temperature.at(step()); }
  // The schedule's step (the LISA model advances it once per training forward).
  // Kept as the int64 buffer "temperature_step" [1], and the noise generator is registered as
  // "noise_rng": both are in the state dict, so a resumed run continues the schedule and the
  // Gumbel noise where the checkpoint left them.
  int64_t step() const { return buffer("temperature_step").data<int64_t>()[0]; }
  void set_step(int64_t s) { buffer("temperature_step").data<int64_t>()[0] = s; }
  // Usage accumulated by forward since the last reset (items with keep != 0).
  const CodewordUsage& usage() const { return usage_; }
  void reset_usage();
  // Replaces usage() by a copy of `usage` (a snapshot taken earlier from this quantizer).
  void set_usage(const CodewordUsage& usage);
  // Adds codes [..., B] (where keep != 0) to usage(); forward does this when track_usage is set.
  void record_usage(const Tensor& codes, const Tensor& keep);
  bool track_usage = true;
  // Fills QuantizedItems::codebook_inputs (off by default: it costs a [..., B, D] stack).
  bool expose_codebook_inputs = false;
  std::string describe() const override;
  const ProductQuantizerOptions& options() const { return options_; }

  Var codebooks;  // [B, W, D]
  Var bilinear;   // [D, D]

 private:
  // forward, stacking the codebooks' selections and logits only where `parts` asks for them
  // (PerPosition: both; Rows: the selections; Reconstruction: neither).
  QuantizedItems quantize(const Var& x,
                          const Tensor& noise,
                          const Tensor& keep,
                          QuantizedParts parts);
  ProductQuantizerOptions options_;
  std::shared_ptr<Generator> noise_rng_;
  CodewordUsage usage_;
};

}  // namespace attnlab::nn
