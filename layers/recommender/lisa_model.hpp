// The LISA recommender (Wu et al., WWW 2021; official code github.com/libertyeagle/LISA): one
// codeword-histogram attention block in the official code's post-LN layout, with the variants
//   Base: hard (straight-through) codes for the sequence; targets scored against the same PQ's
//         reconstruction (fully compressed);
//   Soft: soft codes (probabilities) for the sequence, soft histograms; targets are the raw
//         embeddings;
//   Mini: small sequence codebooks (e.g. 8 x 16) and a separate, bigger target PQ (8 x 128).
//
//   e_i = sqrt(D) E[item_i]            (row 0 = padding: zero, no gradient)
//   (x_i, S_i, u_i) = PQ(e_i)          (reconstruction, selections, codes)
//   s_i = Dropout(x_i + P[i])          (positions enter the residual only, as in the code)
//   y_i = LISA(S_(<=i), u_i)           (padded positions excluded from the histograms)
//   z_i = LayerNorm(s_i + Dropout(y_i))
//   out_i = LayerNorm(z_i + Dropout(FFN(z_i))) * mask_i   (FFN hidden size D, ReLU)
// Input layout: LEFT padding (0s first, items right-aligned; layers/recommender/recommender.hpp).
// Pads never enter a histogram, and pad rows (empty histograms) produce zero attention outputs.
//
// Attention modes (set_attention_mode; not part of the state dict):
//   Histogram (default): y as above, LISA's codeword-histogram attention;
//   ExactUnquantized: its exact counterpart, the same layer attending exactly over what each
//     codebook quantizes, r_j^b (residual PQ: r^1 = e_j, r^(b+1) = r^b - q^b; non-residual: e_j):
//       y_i = sum_b sum_{j real, j <= i} softmax_j(s (r_i^b W_Q^b).(r_j^b W_K^b) - lambda (i - j))
//                                                  r_j^b W_V^b
//     (layers/recommender/lisa_exact_attention.hpp; docs/derivations/lisa_histograms.md 8). Only
//     y changes; PQ, codes, noise, dropout masks, FFN, targets and regulariser are the same, and
//     the modes agree when every r_j^b is its own codeword. The reference of the approximation.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "layers/attention/lisa/lisa_attention.hpp"
#include "layers/attention/lisa/product_quantizer.hpp"
#include "layers/nn/basic.hpp"
#include "layers/recommender/recommender.hpp"

namespace attnlab::rec {

enum class LisaVariant { Base, Soft, Mini };
const EnumNames<LisaVariant>& enum_names(LisaVariant);
const char* lisa_variant_name(LisaVariant v);  // "base", "soft", "mini"
LisaVariant parse_lisa_variant(const std::string& name);
// "8x16" -> (8, 16): B codebooks of W codewords; ValueError naming `flag` otherwise (B >= 1,
// W >= 2).
std::pair<int64_t, int64_t> parse_lisa_codebooks(const std::string& text, const std::string& flag);

// What hidden() attends with: the codeword histograms (the model), or the exact counterpart over
// the unquantized inputs (layers/recommender/lisa_exact_attention.hpp), the reference against
// which the histogram approximation is measured. Not a parameter: the state dict is the same.
enum class LisaAttentionMode { Histogram, ExactUnquantized };
// "histogram", "exact-unquantized".
const EnumNames<LisaAttentionMode>& enum_names(LisaAttentionMode);
const char* lisa_attention_mode_name(LisaAttentionMode m);
LisaAttentionMode parse_lisa_attention_mode(const std::string& name);

// What a forward pass changes in a LISA model besides parameters and outputs: the generators'
// states (random_generators(), in order), the temperature schedules' steps and the codeword
// usage. An extra forward (a shadow step) between run_state() and restore_run_state() leaves the
// model as if it had not run.
struct LisaRunState {
  std::vector<Generator> generators;
  int64_t step = 0, target_step = 0;
  CodewordUsage usage, target_usage;
};

struct LISAConfig {
  int64_t num_items = 0;
  int64_t max_length = 300;  // positional table rows
  int64_t dim = 64;          // D
  int64_t codebooks = 8;     // B (sequence codebooks)
  int64_t codewords = 16;    // W
  LisaVariant variant = LisaVariant::Base;
  // Training selection of the sequence codes; unset: the variant's (Base/Mini: straight-through
  // as in the official code, Soft: soft). Evaluation drops the Gumbel noise and uses hard codes
  // (Soft, or any soft training mode: the probabilities).
  std::optional<Selection> selection;
  double tau = 0.7;
  TemperatureSchedule::Kind tau_schedule = TemperatureSchedule::Kind::Constant;
  double tau_end = 0.7;
  int64_t tau_steps = 1;
  double decay = 0.1;  // lambda of the decayed histograms (g = exp(-0.1))
  bool causal = true;
  bool residual = true;  // residual PQ encoding
  LisaQuery query = LisaQuery::Hard;
  LisaImpl impl = LisaImpl::Fused;
  int64_t target_codebooks = 8;  // Mini's target PQ
  int64_t target_codewords = 128;
  double dropout = 0.1;
  double norm_eps = 1e-5;
  // Soft's regulariser coef * sum ||e_i - stopgrad(x_i)||^2 / #valid (the official code's
  // inputs_optimize_loss, 1e-2 in its Soft configs): LISA::auxiliary_loss(), which
  // recommendation_loss adds to the loss.
  double regularizer = 0.0;
  uint64_t seed = 42;
};

class LISA : public SequenceRecommender {
 public:
  explicit LISA(const LISAConfig& config);
  Var hidden(const Tensor& input_ids) override;
  Var item_vectors(const Tensor& item_ids) override;
  int64_t num_items() const override { return config_.num_items; }
  int64_t max_length() const override { return config_.max_length; }
  std::string describe() const override;
  const LISAConfig& config() const { return config_; }

  // Usage of the sequence codebooks accumulated by hidden() since the last reset (real items
  // only); target_codeword_usage() for Mini's target PQ (accumulated by item_vectors()).
  const CodewordUsage& codeword_usage() const { return pq->usage(); }
  const CodewordUsage& target_codeword_usage() const;
  void reset_codeword_usage();
  // The regulariser of the last hidden() call (a zero scalar when config.regularizer == 0).
  Var auxiliary_loss() const override { return aux_loss_; }
  // The last hidden() call's attention trace (selections, histograms, tables, values); empty
  // after a call in ExactUnquantized mode. In training the histogram attention runs fused from
  // the quantized rows (LisaAttention::forward_items: no per-position selections or histograms
  // exist), and the trace holds tables, values and query_index only; evaluation fills it all.
  // Under nn::FreezeTracesGuard (rec::evaluate, a shadow's replay) the trace is left as it was
  // and evaluation runs from the rows too (no [N, L, B, W] tensors with the fused hard-query
  // attention, the default; the other configurations gather the selections, not the logits).
  // last_attention_output() is the last call's, frozen or not (the shadow reads its replay's).
  const LisaTrace& last_trace() const { return trace_; }
  // The last hidden() call's attention output y [N, L, D] (before dropout and the residual), in
  // either mode. Pad rows are not compared meaningfully: the model zeroes them after the FFN.
  const Var& last_attention_output() const { return attention_output_; }
  // Histogram (default) or ExactUnquantized; takes effect at the next hidden() call. Both modes
  // consume the dropout and noise generators identically (the exact attention draws nothing), so
  // from the same generator states they see the same masks and Gumbel noise.
  void set_attention_mode(LisaAttentionMode mode) { attention_mode_ = mode; }
  LisaAttentionMode attention_mode() const { return attention_mode_; }
  // Every generator hidden() and item_vectors() draw from: the dropout masks' (also in the state
  // dict, as the dropout modules' "rng") and the quantizers' Gumbel noise (not in the state dict).
  // run_state() copies their states with the rest.
  std::vector<std::shared_ptr<Generator>> random_generators() const {
    return {dropout_rng_, noise_rng_};
  }
  // A snapshot of the generators, steps and usage (LisaRunState), and its restoration.
  LisaRunState run_state() const;
  void restore_run_state(const LisaRunState& state);
  // The step state of a training forward: the buffers and generators, and the run state.
  std::shared_ptr<const StepState> capture_step_state() const override;
  void restore_step_state(const StepState& state) override;
  // The attention outputs y (before the residual) for inference: tables precomputed once and one
  // LisaStream per user reproduce these (eval mode, causal).
  LisaTables attention_tables() const { return attention->precompute(pq->codebooks); }
  // Online inference (eval mode, causal): appends `item` to the user's state and returns the
  // hidden state [D] of that item at position `slot` of the positional table, exactly what
  // hidden() gives for an input whose position `slot` holds this item after the same history
  // (histograms never see positions, so only the new item's slot matters). Start the state with
  // LisaStream(model.attention_tables()). Histogram mode only (ValueError otherwise).
  Tensor stream_step(LisaStream& state, int64_t item, int64_t slot);

  // Base in training: item_vectors() gathers the targets from the rows the last hidden() call
  // quantized (the step's distinct input items) and quantizes only the ids that are not among
  // them, instead of quantizing every target item again: the same values (the quantizer works
  // row by row), and the same gradients up to the order of their sums (one quantizer graph takes
  // the sequence's and the targets' gradients). Used only while the quantizer's parameters, the
  // embedding table and the temperature are those the rows were computed with (checked bit for
  // bit; a stale call quantizes afresh). false: every call quantizes its own ids.
  bool share_target_rows = true;

  Child<Embedding> item_embedding, position_embedding;
  Child<ProductQuantizer> pq, target_pq;  // target_pq: Mini only
  Child<LisaAttention> attention;
  Child<Dropout> input_dropout, attention_dropout, ffn_dropout;
  Child<LayerNorm> norm1, norm2;
  Child<FeedForward> ffn;

 private:
  // ids -> sqrt(D) E[ids], what the quantizers take.
  std::function<Var(const Tensor&)> embed_fn() const;
  // y of the current mode from the quantized sequence (keep [N, L]: 1 for items).
  Var attend(const QuantizedItems& items, const Tensor& keep);
  // The rows of the last training hidden() call (share_target_rows), with what they depend on.
  struct SharedRows {
    Tensor ids;          // distinct ids [U], increasing
    Var reconstruction;  // [U, D]
    double tau = 0;
    std::vector<Tensor> params;  // embedding table, codebooks, bilinear: copies at that time
  };
  std::vector<Tensor> quantizer_inputs() const;  // the tensors SharedRows::params copies
  bool shared_rows_current() const;
  Var shared_target_vectors(const Tensor& item_ids);
  LISAConfig config_;
  std::shared_ptr<Generator> dropout_rng_, noise_rng_;
  Var aux_loss_, attention_output_;
  LisaTrace trace_;
  std::optional<SharedRows> rows_;
  LisaAttentionMode attention_mode_ = LisaAttentionMode::Histogram;
};

}  // namespace attnlab::rec
