// LISA codeword-histogram attention (Wu et al., WWW 2021, Fig. 3; the derivations are in
// docs/derivations/lisa_histograms.md).
//
// Every item carries, per codebook b, a selection o_j^b [W] (one-hot for hard codes, the softmax
// probabilities for soft ones) and a query codeword u_j^b. Since items that share a codeword share
// their key and value, softmax attention over the sequence collapses to attention over the W
// codewords of each codebook, weighted by the (decayed) histogram of the codewords seen
// (lisa_histograms.md, sections 2-3):
//   tables   T_b = (C_b W_Q^b)(C_b W_K^b)^T [W, W],   values  V_b = C_b W_V^b [W, D]
//   causal   h_i^b = g h_(i-1)^b + o_i^b               (g = exp(-decay); the recurrence, never
//                                                       cumsum(g^-t o) g^t, which underflows in
//                                                       float32 near L = 1000: section 2)
//   bidirectional h_i^b = sum_j g^|i-j| o_j^b          (g = 1: the whole sequence's histogram)
//   logits   z_i^b[w] = scale * G_i^b[w],  G = T_b[u_i^b, :] (hard query) or sum_u q[u] T_b[u, :]
//            (the expected row of a soft query q = o_i^b); scale = 1/sqrt(D) with the full D
//   weights  alpha_i^b[w] = h[w] e^(z[w]) / sum_w' h[w'] e^(z[w'])   (masked log-sum-exp: the max
//            is taken over codewords with h > 0, section 5)
//   output   y_i = sum_b sum_w alpha_i^b[w] V_b[w]                   (summed, no W_O, as in the
//                                                                     official code)
// This is exactly causal softmax attention with query Qt_b[u_i], key Kt_b[u_j], value V_b[u_j]
// and the additive bias ln(g) (i - j), summed over codebooks (the equivalence the tests check;
// proof in lisa_histograms.md, section 4).
// A row whose histogram is empty (a left pad before any item) outputs zeros with zero gradient.
//
// The gradient with respect to the histogram is written as dh[w] = e^(z[w] - lse) (dalpha[w] -
// sum alpha dalpha) rather than alpha/h (...): it is finite (and non-zero) where h[w] = 0, which
// is where the straight-through gradient of unused codewords flows (lisa_histograms.md 6-7).
#pragma once

#include <cstdint>
#include <string>

#include "core/enum_names.hpp"
#include "layers/nn/init.hpp"
#include "layers/nn/module.hpp"

namespace attnlab::nn {

enum class LisaImpl { Fused, Reference };
enum class LisaQuery { Hard, Expected };   // T row of the own codeword, or the expected row
const char* lisa_query_name(LisaQuery q);  // "hard", "expected"
LisaQuery parse_lisa_query(const std::string& name);
const EnumNames<LisaQuery>& enum_names(LisaQuery);  // "hard", "expected"

// What one call exposes (labelled Vars; retain_grad() them before backward).
struct LisaTrace {
  Var selections;      // "selections" [N, L, B, W] after the padding mask
  Var histograms;      // "histograms" [N, L, B, W]
  Var tables;          // "tables" [B, W, W] (unscaled Qt Kt^T)
  Var values;          // "values" [B, W, D]
  Var weights;         // "weights" [N, L, B, W] alpha (reference implementation only)
  Tensor query_index;  // int64 [N, L, B] (hard queries)
};

// ---- the pieces -------------------------------------------------------------------------------
// Histograms from selections [N, L, B, W]; keep [N, L] (0 = padding, excluded; undefined: all
// real); decay >= 0 with g = exp(-decay). Causal: the decayed prefix scan along L;
// bidirectional: forward scan + reverse scan - o (sum_j g^|i-j| o_j).
Var lisa_histograms(const Var& selections, const Tensor& keep, double decay, bool causal);

struct LisaProjection {
  Var tables;  // [B, W, W]
  Var values;  // [B, W, D]
};
// T_b = (C_b W_Q^b)(C_b W_K^b)^T and V_b = C_b W_V^b for codebooks [B, W, D] and projections
// [B, D, D]; an undefined projection is the identity (the timing model's T = C C^T).
LisaProjection lisa_project(const Var& codebooks, const Var& w_q, const Var& w_k, const Var& w_v);

// The attention on given tables, values and histograms. Hard query: query_index int64 [N, L, B]
// and query_probs undefined; expected-row query: query_probs [N, L, B, W] (differentiable) and
// query_index undefined. scale 0: 1/sqrt(D) with D = values.size(-1). Returns [N, L, D].
Var lisa_histogram_attention(const Var& tables,
                             const Var& values,
                             const Var& histograms,
                             const Tensor& query_index,
                             const Var& query_probs = {},
                             double scale = 0.0,
                             LisaImpl impl = LisaImpl::Fused,
                             LisaTrace* trace = nullptr);
// Composed from tape primitives (gather / matmul of the table rows, exp, sums, a batched matmul
// with the values): materialises [N, L, B, W] weights; the oracle for the fused op.
Var lisa_histogram_attention_reference(const Var& tables,
                                       const Var& values,
                                       const Var& histograms,
                                       const Tensor& query_index,
                                       const Var& query_probs = {},
                                       double scale = 0.0,
                                       LisaTrace* trace = nullptr);
// One custom op with a hand-written backward (lisa_attention_fused.cpp). Saves only its inputs
// and recomputes the weights in the backward: the op adds O(L D) memory to its O(L B W) inputs,
// never O(L^2).
Var lisa_histogram_attention_fused(const Var& tables,
                                   const Var& values,
                                   const Var& histograms,
                                   const Tensor& query_index,
                                   const Var& query_probs = {},
                                   double scale = 0.0);

// Causal histograms and hard-query attention in one op, from the selections of the quantized
// rows item_selection [U, B, W] (ProductQuantizer::forward_ids: QuantizedItems::item_selection)
// and inverse int64 [N, L] (the row of each position); keep [N, L] of 0s and 1s (undefined: all
// real), decay >= 0, query_index int64 [N, L, B]. Equal, values and gradients bit for bit, to
//   lisa_histogram_attention_fused(tables, values,
//       lisa_histograms(index_select(item_selection, 0, inverse), keep, decay, true), query_index)
// without any [N, L, B, W] tensor (lisa_item_attention.cpp): it saves its inputs only.
Var lisa_item_histogram_attention(const Var& tables,
                                  const Var& values,
                                  const Var& item_selection,
                                  const Tensor& inverse,
                                  const Tensor& keep,
                                  double decay,
                                  const Tensor& query_index,
                                  double scale = 0.0);

// ---- inference --------------------------------------------------------------------------------
// Precomputed tables and values (plain tensors): computed once, they make every later item cost
// O(B W D) with no projection at run time.
struct LisaTables {
  Tensor tables;  // [B, W, W]
  Tensor values;  // [B, W, D]
  double scale = 0;
  double decay = 0;
};

// One user's state: the decayed histogram [B, W], updated one item at a time in O(B W), and the
// next output in O(B W D) whatever the history length. Reproduces the batched causal outputs.
class LisaStream {
 public:
  explicit LisaStream(LisaTables tables);
  // Appends one item and returns its output y [D]. selection [B, W] (one-hot or probabilities);
  // the query: query_index int64 [B] (hard) or, when undefined, the expected row of `selection`.
  Tensor step(const Tensor& selection, const Tensor& query_index = {});
  // Hard codes only: selection = one_hot(codes), query = codes.
  Tensor step_codes(const Tensor& codes);
  void reset();
  const Tensor& histogram() const { return hist_; }  // [B, W]
  int64_t length() const { return steps_; }
  const LisaTables& tables() const { return t_; }

 private:
  LisaTables t_;
  Tensor hist_;
  int64_t steps_ = 0;
};

// ---- the layer --------------------------------------------------------------------------------
struct LisaAttentionOptions {
  int64_t dim = 64;        // D
  int64_t codebooks = 8;   // B
  int64_t codewords = 16;  // W
  double decay = 0.1;      // lambda; g = exp(-lambda) (the configs' counts_decay 0.1)
  bool causal = true;
  LisaQuery query = LisaQuery::Hard;
  LisaImpl impl = LisaImpl::Fused;
  bool project_qk = true;  // W_Q, W_K (false: T = C C^T)
  bool project_v = true;   // W_V (false: values = codewords)
  double scale = 0.0;      // 0: 1/sqrt(D)
  // As the official code (libertyeagle/LISA): xavier-uniform with PyTorch's 3-D fans (fan_in =
  // D D, fan_out = B D: bound sqrt(6 / (D (D + B)))).
  InitSpec projection_init{Init::XavierUniform};
};

// Owns the per-codebook projections w_q, w_k, w_v [B, D, D]; the codebooks belong to the
// product quantizer and are passed in.
class LisaAttention : public Module {
 public:
  LisaAttention(const LisaAttentionOptions& options, Generator& init_rng);
  // codebooks [B, W, D], selections [N, L, B, W], codes int64 [N, L, B] (the query codewords),
  // keep [N, L] (0 = padding; undefined: none). Returns [N, L, D].
  Var forward(const Var& codebooks,
              const Var& selections,
              const Tensor& codes,
              const Tensor& keep = {},
              LisaTrace* trace = nullptr);
  // The same from the selections of the quantized rows, item_selection [U, B, W], and the row of
  // each position, inverse int64 [N, L] (QuantizedItems::item_selection and inverse): causal,
  // hard-query, fused layers take lisa_item_histogram_attention (no [N, L, B, W] tensor; the
  // trace then holds tables, values and query_index only), the others gather the selections
  // and call forward. Equal to forward(codebooks, index_select(item_selection, 0, inverse), ...).
  Var forward_items(const Var& codebooks,
                    const Var& item_selection,
                    const Tensor& inverse,
                    const Tensor& codes,
                    const Tensor& keep = {},
                    LisaTrace* trace = nullptr);
  // Tables and values for inference (no gradient).
  LisaTables precompute(const Var& codebooks) const;
  std::string describe() const override;
  const LisaAttentionOptions& options() const { return options_; }
  LisaAttentionOptions& mutable_options() { return options_; }

  Var w_q, w_k, w_v;  // undefined when the projection is off

 private:
  LisaAttentionOptions options_;
};

namespace detail {
// Shape and dtype checks shared by both implementations (errors name `op` and the shapes).
void check_lisa_inputs(const Tensor& tables,
                       const Tensor& values,
                       const Tensor& histograms,
                       const Tensor& query_index,
                       const Tensor& query_probs,
                       const char* op);
}  // namespace detail

}  // namespace attnlab::nn
