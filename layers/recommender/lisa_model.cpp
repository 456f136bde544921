#include "layers/recommender/lisa_model.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

#include "autograd/ops.hpp"
#include "core/core.hpp"
#include "layers/nn/losses.hpp"
#include "layers/recommender/lisa_exact_attention.hpp"

namespace attnlab::rec {

const EnumNames<LisaVariant>& enum_names(LisaVariant) {
  static const EnumNames<LisaVariant> names{
      {LisaVariant::Base, "base", "hard codes, quantized targets"},
      {LisaVariant::Soft, "soft", "soft codes, raw targets"},
      {LisaVariant::Mini, "mini", "small codebooks, separate target quantizer"}};
  return names;
}
const char* lisa_variant_name(LisaVariant v) {
  return enum_names(v).name(v);
}
LisaVariant parse_lisa_variant(const std::string& name) {
  return enum_names(LisaVariant{}).parse(name, "parse_lisa_variant: variant");
}

const EnumNames<LisaAttentionMode>& enum_names(LisaAttentionMode) {
  static const EnumNames<LisaAttentionMode> names{
      {LisaAttentionMode::Histogram, "histogram", "codeword-histogram attention (the model)"},
      {LisaAttentionMode::ExactUnquantized,
       "exact-unquantized",
       "exact softmax attention over the unquantized inputs (the reference)"}};
  return names;
}
const char* lisa_attention_mode_name(LisaAttentionMode m) {
  return enum_names(m).name(m);
}
LisaAttentionMode parse_lisa_attention_mode(const std::string& name) {
  return enum_names(LisaAttentionMode{}).parse(name, "parse_lisa_attention_mode: mode");
}

LISA::LISA(const LISAConfig& c) : SequenceRecommender("LISA"), config_(c) {
  ATTNLAB_CHECK(c.num_items > 0 && c.max_length > 0 && c.dim > 0 && c.codebooks > 0 &&
                    c.codewords > 0 && c.target_codebooks > 0 && c.target_codewords > 0,
                ValueError,
                "LISA: num_items, max_length, dim, codebooks, codewords and the target sizes must "
                "be positive");
  ATTNLAB_CHECK(c.dropout >= 0 && c.dropout < 1,
                ValueError,
                "LISA: dropout must be in [0, 1), got ",
                c.dropout);
  Generator init(c.seed);
  dropout_rng_ = std::make_shared<Generator>(c.seed + 1);
  noise_rng_ = std::make_shared<Generator>(c.seed + 2);
  const double d = static_cast<double>(c.dim);
  // As the official code: xavier-normal item and position tables, row 0 of the items is padding.
  EmbeddingOptions item_opt;
  item_opt.padding_idx = 0;
  item_opt.init = InitSpec{Init::XavierNormal};
  register_module("item_embedding",
                  item_embedding,
                  std::make_shared<Embedding>(c.num_items + 1, c.dim, init, item_opt));
  EmbeddingOptions pos_opt;
  pos_opt.init = InitSpec{Init::XavierNormal};
  register_module("position_embedding",
                  position_embedding,
                  std::make_shared<Embedding>(c.max_length, c.dim, init, pos_opt));

  const bool soft = c.variant == LisaVariant::Soft;
  ProductQuantizerOptions po;
  po.dim = c.dim;
  po.codebooks = c.codebooks;
  po.codewords = c.codewords;
  po.residual = c.residual;
  po.train_selection =
      c.selection ? *c.selection : (soft ? Selection::Soft : Selection::StraightThrough);
  // Evaluation: no noise; hard codes unless the training codes are soft (Soft keeps
  // probabilities in evaluation too, as in the official code).
  po.eval_selection = selection_is_hard(po.train_selection) ? Selection::Hard : Selection::Soft;
  po.temperature = TemperatureSchedule{c.tau_schedule, c.tau, c.tau_end, c.tau_steps};
  register_module("pq", pq, std::make_shared<ProductQuantizer>(po, init, noise_rng_));
  if (c.variant == LisaVariant::Mini) {
    ProductQuantizerOptions to = po;
    to.codebooks = c.target_codebooks;
    to.codewords = c.target_codewords;
    register_module(
        "target_pq", target_pq, std::make_shared<ProductQuantizer>(to, init, noise_rng_));
  }
  LisaAttentionOptions ao;
  ao.dim = c.dim;
  ao.codebooks = c.codebooks;
  ao.codewords = c.codewords;
  ao.decay = c.decay;
  ao.causal = c.causal;
  ao.query = c.query;
  ao.impl = c.impl;
  ao.scale = 1.0 / std::sqrt(d);
  register_module("attention", attention, std::make_shared<LisaAttention>(ao, init));
  register_module(
      "input_dropout", input_dropout, std::make_shared<Dropout>(c.dropout, dropout_rng_));
  register_module(
      "attention_dropout", attention_dropout, std::make_shared<Dropout>(c.dropout, dropout_rng_));
  register_module("norm1", norm1, std::make_shared<LayerNorm>(c.dim, c.norm_eps));
  // The FFN's hidden size is D, not 4D (the official code's block).
  register_module(
      "ffn", ffn, std::make_shared<FeedForward>(c.dim, c.dim, init, c.dropout, dropout_rng_));
  register_module("ffn_dropout", ffn_dropout, std::make_shared<Dropout>(c.dropout, dropout_rng_));
  register_module("norm2", norm2, std::make_shared<LayerNorm>(c.dim, c.norm_eps));
}

Var LISA::hidden(const Tensor& ids) {
  check_input_ids(ids, "LISA");
  const int64_t n = ids.size(0), l = ids.size(1);
  Tensor keep = gt(ids.to(kFloat32), 0.0);  // [N, L]: 1 for items, 0 for (left) padding
  Var e;                                    // [N, L, D], for the regulariser
  const bool exposed = pq->expose_codebook_inputs;
  pq->expose_codebook_inputs = attention_mode_ == LisaAttentionMode::ExactUnquantized;
  // Training takes the fused histogram attention from the quantized rows' selections (no
  // per-position selection); evaluation gathers them, so that last_trace() holds the histograms,
  // unless the traces are frozen (evaluate(), a shadow's replay): no one reads that pass's trace,
  // and its [N, L, B, W] selections, logits and histograms held up to 3.3 times the memory of a
  // training step at evaluate()'s batch of 256 (ML-1M, LISA-Base 8 x 128, width 128).
  const bool per_position =
      !is_training() && !traces_frozen() && attention_mode_ == LisaAttentionMode::Histogram;
  rows_.reset();
  QuantizedItems items = pq->forward_ids(
      ids, embed_fn(), keep, &e, per_position ? QuantizedParts::PerPosition : QuantizedParts::Rows);
  pq->expose_codebook_inputs = exposed;
  if (share_target_rows && is_training() && config_.variant == LisaVariant::Base &&
      items.item_ids.defined()) {
    std::vector<Tensor> params;
    for (const Tensor& t : quantizer_inputs()) params.push_back(t.clone());
    rows_ = SharedRows{items.item_ids, items.item_reconstruction, pq->temperature(), params};
  }
  Tensor keep3 = keep.to(e.dtype()).reshape({n, l, 1});
  Var x = items.reconstruction + position_embedding(arange(l, kInt64).reshape({1, l}));
  x = input_dropout(x) * ag::constant(keep3);
  Var y = attend(items, keep);
  Var z = norm1(x + attention_dropout(y));
  Var out = norm2(z + ffn_dropout(ffn(z))) * ag::constant(keep3);
  if (config_.regularizer > 0) {
    // coef * sum ||e_i - stopgrad(x_i)||^2 / #valid: pulls the raw embeddings toward their frozen
    // reconstruction (the official Soft configs' inputs_optimize_loss).
    Var diff = e - items.reconstruction.detach();
    aux_loss_ =
        masked_mean(ag::sum(ag::square(diff), -1), keep.to(e.dtype())) * config_.regularizer;
  } else {
    aux_loss_ = ag::constant(zeros({}, e.dtype()));
  }
  if (is_training()) {  // the temperature schedule advances once per training forward
    pq->set_step(pq->step() + 1);
    if (target_pq)
      target_pq->set_step(target_pq->step() + 1);
  }
  return out;
}

Var LISA::attend(const QuantizedItems& items, const Tensor& keep) {
  // A replay under nn::FreezeTracesGuard leaves the last trace alone.
  LisaTrace replayed;
  LisaTrace* trace = traces_frozen() ? &replayed : &trace_;
  *trace = LisaTrace{};
  if (attention_mode_ == LisaAttentionMode::ExactUnquantized) {
    // The same layer over the r^b the codebooks quantize (lisa_histograms.md 8).
    ag::Scope scope(attention->name());
    attention_output_ = lisa_exact_attention(*attention, items.codebook_inputs, keep);
  } else if (items.selection.defined()) {
    attention_output_ = attention(pq->codebooks, items.selection, items.codes, keep, trace);
  } else {
    ag::Scope scope(attention->name());
    attention_output_ = attention->forward_items(
        pq->codebooks, items.item_selection, items.inverse, items.codes, keep, trace);
  }
  return attention_output_;
}

std::function<Var(const Tensor&)> LISA::embed_fn() const {
  const double scale = std::sqrt(static_cast<double>(config_.dim));
  return [this, scale](const Tensor& ids) {
    return item_embedding(ids) * scale;
  };
}

Var LISA::item_vectors(const Tensor& item_ids) {
  switch (config_.variant) {
    case LisaVariant::Soft:  // targets are not quantized
      return embed_fn()(item_ids);
    case LisaVariant::Mini:
      return target_pq
          ->forward_ids(item_ids,
                        embed_fn(),
                        gt(item_ids.to(kFloat32), 0.0),
                        nullptr,
                        QuantizedParts::Reconstruction)
          .reconstruction;
    case LisaVariant::Base:
    default: {
      if (share_target_rows && rows_ && is_training() && shared_rows_current())
        return shared_target_vectors(item_ids);
      // The same PQ as the sequence (targets fully compressed); not counted in its usage.
      const bool saved = pq->track_usage;
      pq->track_usage = false;
      Var r = pq->forward_ids(item_ids, embed_fn(), {}, nullptr, QuantizedParts::Reconstruction)
                  .reconstruction;
      pq->track_usage = saved;
      return r;
    }
  }
}

std::vector<Tensor> LISA::quantizer_inputs() const {
  return {item_embedding->weight.value(), pq->codebooks.value(), pq->bilinear.value()};
}

bool LISA::shared_rows_current() const {
  if (pq->temperature() != rows_->tau)
    return false;
  const std::vector<Tensor> now = quantizer_inputs();
  for (std::size_t i = 0; i < now.size(); ++i) {
    const Tensor &a = now[i], &b = rows_->params[i];
    if (a.dtype() != b.dtype() || a.shape() != b.shape() ||
        std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) != 0)
      return false;
  }
  return true;
}

// Each requested id's row: its row among the shared ones, or (ids the step's input did not hold)
// a row of a quantization of just those ids appended after them.
Var LISA::shared_target_vectors(const Tensor& item_ids) {
  Tensor inverse;
  const Tensor wanted = unique(item_ids, &inverse);  // increasing, like rows_->ids
  const int64_t* w = wanted.data<int64_t>();
  const int64_t* have = rows_->ids.data<int64_t>();
  const int64_t u = rows_->ids.numel();
  std::vector<int64_t> row(wanted.numel()), missing;
  for (int64_t i = 0, j = 0; i < wanted.numel(); ++i) {
    while (j < u && have[j] < w[i]) ++j;
    if (j < u && have[j] == w[i]) {
      row[i] = j;
    } else {
      row[i] = u + static_cast<int64_t>(missing.size());
      missing.push_back(w[i]);
    }
  }
  Var table = rows_->reconstruction;
  if (!missing.empty()) {
    const bool saved = pq->track_usage;  // targets are not counted in the usage
    pq->track_usage = false;
    const Tensor ids = from_vector(missing, {static_cast<int64_t>(missing.size())});
    Var extra = pq->forward_ids(ids, embed_fn(), {}, nullptr, QuantizedParts::Reconstruction)
                    .reconstruction;
    pq->track_usage = saved;
    table = ag::concat({table, extra}, 0);
  }
  Tensor index = Tensor::empty(item_ids.shape(), kInt64);
  const int64_t* inv = inverse.data<int64_t>();
  for (int64_t p = 0; p < index.numel(); ++p) index.data<int64_t>()[p] = row[inv[p]];
  return ag::index_select(table, 0, index);  // ids.shape + [D]
}

Tensor LISA::stream_step(LisaStream& state, int64_t item, int64_t slot) {
  ATTNLAB_CHECK(!is_training() && config_.causal,
                ValueError,
                "LISA::stream_step: needs a causal model in eval mode");
  ATTNLAB_CHECK(attention_mode_ == LisaAttentionMode::Histogram,
                ValueError,
                "LISA::stream_step: streams the histogram attention, but the model is in '",
                lisa_attention_mode_name(attention_mode_),
                "' attention mode");
  ATTNLAB_CHECK(item > 0 && item <= config_.num_items && slot >= 0 && slot < config_.max_length,
                ValueError,
                "LISA::stream_step: item must be in [1, ",
                config_.num_items,
                "] and slot in [0, ",
                config_.max_length,
                "), got item ",
                item,
                ", slot ",
                slot);
  ag::NoGradGuard no_grad;
  const int64_t d = config_.dim;
  Var e = item_embedding(full({1}, static_cast<double>(item), kInt64)) *
          std::sqrt(static_cast<double>(d));
  const bool saved = pq->track_usage;
  pq->track_usage = false;
  QuantizedItems q = pq(e);
  pq->track_usage = saved;
  const Tensor sel = q.selection.value().reshape({config_.codebooks, config_.codewords});
  const Tensor y = state.step(
      sel, config_.query == LisaQuery::Hard ? q.codes.reshape({config_.codebooks}) : Tensor());
  Var x = q.reconstruction + position_embedding(full({1}, static_cast<double>(slot), kInt64));
  Var z = norm1(x + ag::constant(y.reshape({1, d})));
  return norm2(z + ffn(z)).value().reshape({d});
}

const CodewordUsage& LISA::target_codeword_usage() const {
  ATTNLAB_CHECK(static_cast<bool>(target_pq),
                ValueError,
                "LISA: only the Mini variant has a target PQ (variant ",
                lisa_variant_name(config_.variant),
                ")");
  return target_pq->usage();
}

LisaRunState LISA::run_state() const {
  LisaRunState s;
  for (const auto& g : random_generators()) s.generators.push_back(*g);
  s.step = pq->step();
  s.usage = pq->usage();
  s.usage.counts = s.usage.counts.clone();
  if (target_pq) {
    s.target_step = target_pq->step();
    s.target_usage = target_pq->usage();
    s.target_usage.counts = s.target_usage.counts.clone();
  }
  return s;
}

void LISA::restore_run_state(const LisaRunState& s) {
  const auto gens = random_generators();
  ATTNLAB_CHECK(s.generators.size() == gens.size(),
                ValueError,
                "LISA::restore_run_state: expected ",
                gens.size(),
                " generator states, got ",
                s.generators.size());
  pq->set_usage(s.usage);  // checked first: a bad snapshot changes nothing else
  if (target_pq)
    target_pq->set_usage(s.target_usage);
  for (std::size_t i = 0; i < gens.size(); ++i) *gens[i] = s.generators[i];
  pq->set_step(s.step);
  if (target_pq)
    target_pq->set_step(s.target_step);
}

void LISA::reset_codeword_usage() {
  pq->reset_usage();
  if (target_pq)
    target_pq->reset_usage();
}

std::string LISA::describe() const {
  std::ostringstream os;
  os << "LISA(" << lisa_variant_name(config_.variant) << ", items=" << config_.num_items
     << ", D=" << config_.dim << ", B x W=" << config_.codebooks << " x " << config_.codewords;
  if (target_pq)
    os << ", target " << config_.target_codebooks << " x " << config_.target_codewords;
  os << ", selection=" << selection_name(pq->options().train_selection)
     << ", query=" << lisa_query_name(config_.query) << ", decay=" << config_.decay
     << ", max_length=" << config_.max_length;
  if (attention_mode_ != LisaAttentionMode::Histogram)
    os << ", attention=" << lisa_attention_mode_name(attention_mode_);
  os << ")";
  return os.str();
}

std::pair<int64_t, int64_t> parse_lisa_codebooks(const std::string& text, const std::string& flag) {
  const auto x = text.find('x');
  int64_t b = 0, w = 0;
  try {
    if (x == std::string::npos)
      throw std::invalid_argument(text);
    size_t used_b = 0, used_w = 0;
    b = std::stoll(text.substr(0, x), &used_b);
    w = std::stoll(text.substr(x + 1), &used_w);
    if (used_b != x || used_w != text.size() - x - 1)
      throw std::invalid_argument(text);
  } catch (const std::exception&) {
    throw ValueError(flag + ": expected BxW such as 8x16, got '" + text + "'");
  }
  if (b < 1 || w < 2)
    throw ValueError(flag + ": need B >= 1 codebooks of W >= 2 codewords, got '" + text + "'");
  return {b, w};
}

namespace {
struct LisaStepState : SequenceRecommender::StepState {
  LisaRunState run;
};
}  // namespace

std::shared_ptr<const SequenceRecommender::StepState> LISA::capture_step_state() const {
  auto s = std::make_shared<LisaStepState>();
  s->forward = capture_forward_state(*this);
  s->run = run_state();
  return s;
}

void LISA::restore_step_state(const StepState& state) {
  const auto* lisa = dynamic_cast<const LisaStepState*>(&state);
  ATTNLAB_CHECK(lisa != nullptr,
                ValueError,
                "LISA::restore_step_state: the state was not captured from a LISA model");
  restore_forward_state(*this, lisa->forward);
  restore_run_state(lisa->run);
}

}  // namespace attnlab::rec
