// FAVOR+ attention (Choromanski et al., "Rethinking Attention with Performers", ICLR 2021) on
// [batch, heads, L, d]:
//
//   bidirectional (Eq. 4 / Alg. 1):  out = D^-1 (Q' ((K')^T V)),  D = diag(Q' ((K')^T 1))
//   causal (App. B.1, Eq. 11):       out_i = q'_i^T S_i / q'_i^T z_i,  S_i = sum_{j<=i} k'_j v_j^T,
//                                    z_i = sum_{j<=i} k'_j   (prefix sums, Katharopoulos Eq. 9-12)
//
// with Q' = phi(q), K' = phi(k) the random features of favor_feature_maps.hpp. The computation is
// split into three tape nodes, so that every intermediate is a Var a user can label, hook and
// differentiate:
//   1. the feature maps  Q' ("q_features"), K' ("k_features");
//   2. the sums  N = numerator [B, H, Lq, dv] and D = normaliser [B, H, Lq] ("normalizer"): one
//      fused op, bidirectional (two GEMMs with [V 1] augmented) or causal (the token recurrence);
//   3. out = N / D  (a row with D = 0, e.g. no real key at all, gives zeros, never NaN).
//
// The fused causal op (favor_causal.cpp) keeps one m x dv state per (batch, head) and never an
// L x m x dv tensor: the forward saves only Q', K' and V; the backward is the two-sweep recompute
// of Katharopoulos et al. (Sec. 3.3.1) extended to the normaliser: a forward sweep rebuilds S_t
// for dQ', a reverse sweep with a fresh state gives dK' and another dV. States are recomputed,
// never reconstructed by subtraction, which loses precision at the first positions and, with the
// log-scale below, can overflow (docs/derivations/favor_causal_backward.md).
//
// Key stabiliser (the detached shift c of favor_feature_maps.hpp) for the keys:
//   bidirectional: Global (max over the sequence and features per (b, h)) by default, or None;
//   causal: RunningMax by default, or None. A max over the whole sequence would let future keys
//     change past outputs whenever eps > 0 (and is unknown while streaming), so Global is refused.
//     RunningMax stores K'_j = phi(k_j) e^(-c_j) with c_j the running max of the keys' log-features
//     up to j, and the fused op rescales its prefix state by e^(c_(t-1) - c_t) whenever the max
//     grows (the online-softmax trick). It thus computes
//       N_i = sum_{j<=i} e^(c_j - c_i) (q'_i . k'_j) v_j
//       D_i = sum_{j<=i} e^(c_j - c_i) (q'_i . k'_j)
//     in which e^(-c_i) cancels between N_i and D_i: with eps = 0 the output is exactly that of the
//     unshifted features, with no overflow for any input norm (all rescale factors are <= 1).
//     With eps > 0 the effective key features are phi(k_j) + eps e^(c_j): still causal (c_j sees
//     keys <= j only). None: no key shift; safe in float32 while |w|^2 / 2 < 88 (the positive
//     exponent w.x~ - |x~|^2/2 is at most |w|^2/2), i.e. for head widths up to ~128, but keys of
//     large norm can underflow together.
// Query stabiliser: each query row's own max (RowMax), which cancels per row when eps = 0.
//
// Masks: causal (Lq == Lk required) and key padding [B, Lk] (padded keys' feature rows are zero,
// so they leave numerator and normaliser alike). Distance decay is not supported (ValueError).
#pragma once

#include <memory>
#include <string>

#include "layers/attention/attention.hpp"
#include "layers/attention/attention_kernel.hpp"
#include "layers/attention/favor/favor_feature_maps.hpp"
#include "layers/attention/favor/favor_features.hpp"

namespace attnlab::nn {

enum class KeyStabilizer { Auto, Global, RunningMax, None };
const EnumNames<KeyStabilizer>& enum_names(KeyStabilizer);
const char* key_stabilizer_name(KeyStabilizer s);  // "auto", "global", "running-max", "none"
KeyStabilizer parse_key_stabilizer(const std::string& name);

enum class FavorImpl { Fused, Reference };
const EnumNames<FavorImpl>& enum_names(FavorImpl);  // "fused", "reference"

struct FavorAttentionOptions {
  FeatureMapSpec features;  // map, generalized f, epsilon
  bool query_stabilizer = true;
  KeyStabilizer key_stabilizer = KeyStabilizer::Auto;
  FavorImpl impl = FavorImpl::Fused;
  // Frozen shifts [B, H, L] (docs/derivations/favor_feature_maps.md 4): when defined they replace
  // the stabilisers (for the causal op the key shift is also the log-scale of the prefix state).
  Tensor query_shift, key_shift;
};

// What one call exposes (labelled Vars: retain_grad() or hook them before backward).
struct FavorTrace {
  Var projection;                 // "projection" [m, d] (as passed in)
  Var q_features;                 // "q_features" Q' [B, H, Lq, r]
  Var k_features;                 // "k_features" K' [B, H, Lk, r]
  Var numerator;                  // "numerator"  N [B, H, Lq, dv]
  Var normalizer;                 // "normalizer" D [B, H, Lq]
  Tensor query_shift, key_shift;  // the constants c used [B, H, L]
};

// The whole FAVOR+ attention: features, sums, normalisation. projection: [m, d] (ignored by the
// elu+1 map; may require grad). Dropout does not apply (there are no attention weights).
Var favor_attention(const Var& q,
                    const Var& k,
                    const Var& v,
                    const Var& projection,
                    const AttentionMask& mask = {},
                    const FavorAttentionOptions& options = {},
                    FavorTrace* trace = nullptr);

// ---- the sums on given features (step 2) ------------------------------------------------------
struct FavorSums {
  Var numerator;   // [B, H, Lq, dv]
  Var normalizer;  // [B, H, Lq]
};
// qf [B, H, Lq, r], kf [B, H, Lk, r], v [B, H, Lk, dv].
FavorSums favor_bidirectional(const Var& qf, const Var& kf, const Var& v);
// Causal (Lq == Lk). key_log_scale [B, H, L] (undefined: all zeros): the c_j above; it should be
// non-decreasing along L (a running max) for the rescale factors to stay <= 1.
FavorSums favor_causal(const Var& qf,
                       const Var& kf,
                       const Var& v,
                       const Tensor& key_log_scale = {});
// Composed references: bidirectional by matmuls; causal with materialised prefix sums
// cumsum_j(k'_j [v_j 1]^T), an [B, H, L, r, dv + 1] tensor (teaching and tests only).
FavorSums favor_bidirectional_reference(const Var& qf, const Var& kf, const Var& v);
FavorSums favor_causal_reference(const Var& qf,
                                 const Var& kf,
                                 const Var& v,
                                 const Tensor& key_log_scale = {});
// out = N / D per row. A row whose |D| is below sqrt(smallest normal) (no real key, or features
// that share no mass with any key's at huge input norms, where N and D are underflow noise) gives
// 0 and zero gradients, never NaN. The backward uses dD = -(g . out) / D (no 1 / D^2).
Var favor_normalize(const Var& numerator, const Var& normalizer);

// ---- the attention kernel (MultiHeadAttention, TransformerBlock, the factory) ------------------
struct FavorOptions {
  FeatureMapSpec features;    // map, generalized f, epsilon
  int64_t head_dim = 64;      // d
  int64_t projections = 256;  // m (rows of W); hyperbolic and trig maps emit 2m features
  bool orthogonal = true;
  FeatureNorm norm = FeatureNorm::Chi;
  RedrawOptions redraw;
  uint64_t seed = 0;
  bool query_stabilizer = true;
  KeyStabilizer key_stabilizer = KeyStabilizer::Auto;
  FavorImpl impl = FavorImpl::Fused;
};

// FAVOR+ as an AttentionKernel. Owns the submodule "features" (RandomFeatures: the buffer
// "projection" and the redraw counters). attend() draws per the redraw policy (training only),
// then runs favor_attention and keeps the call's trace.
class FavorKernel : public AttentionKernel {
 public:
  explicit FavorKernel(const FavorOptions& options);
  Var attend(const Var& q, const Var& k, const Var& v, const AttentionMask& mask) override;
  // The running state S, z of the causal form (favor_stream.cpp); eval mode (no redraw).
  std::unique_ptr<AttentionStream> begin_stream(int64_t heads) const override;
  std::string describe() const override;

  // The projection W [m, d] and its owner (ValueError for the elu+1 map, which has none).
  const Tensor& projection() const { return random_features().projection(); }
  void set_projection(const Tensor& w) { random_features().set_projection(w); }
  RandomFeatures& random_features() const;
  const FavorOptions& options() const { return options_; }

  // The last call's labelled Vars (kept until the next call; set keep_trace = false to drop them
  // and their memory right away; a call under nn::FreezeTracesGuard, as in rec::evaluate or a
  // gradient shadow's replay, leaves them). With trace_gradients the next calls also make the
  // projection a leaf that requires grad and retain_grad() Q', K', N and D, so after backward
  // last_trace().q_features.grad(), ... .projection.grad() hold dL/dQ', ..., dL/dW.
  const FavorTrace& last_trace() const { return trace_; }
  bool keep_trace = true;
  bool trace_gradients = false;

 private:
  FavorOptions options_;
  Child<RandomFeatures> features_;
  FavorTrace trace_;
};

}  // namespace attnlab::nn
