// FAVOR+ random projections (Choromanski et al. 2021, "Rethinking Attention with Performers";
// docs/derivations/favor_feature_maps.md 3).
//
// The projection W [m, d] holds the random directions w_1..w_m as rows. Two constructions:
//   iid:        every entry N(0, 1), so every row is N(0, I_d) (Lemma 1: unbiased for SM);
//   orthogonal: blocks of d rows that are exactly orthogonal (Theorem 2: lower MSE). Each block is
//               Q^T of a Householder QR G = QR of a Gaussian d x d matrix, with the column sign fix
//               Q[:, j] *= sign(R_jj) (Mezzadri 2007). Without the fix Q is not Haar distributed:
//               LAPACK-style Householder QR (ours included) returns a first column whose first
//               coordinate is negative with probability 1, which biases the softmax-kernel
//               estimate by about -28 % (favor_feature_maps.md 3; Google's and
//               performer-pytorch's code do not apply the fix). When d does not divide m the last
//               block is truncated; blocks are independent of each other (orthogonality holds
//               within a block).
// Row norms: FeatureNorm::Chi multiplies each orthogonal row by the norm of an independent
// N(0, I_d) vector, so every row is marginally N(0, I_d) again (unbiased); FeatureNorm::Fixed
// gives every row the norm sqrt(d) (the SMREG estimator of Theorem 1: biased low, lower variance).
// For iid rows Chi leaves the Gaussian rows as they are and Fixed rescales them to sqrt(d).
//
// Determinism: draw number n of a RandomFeatures module uses only (seed, n) through the
// counter-based Philox generator, so a replay, a recompute (activation checkpointing) or a resumed
// run that restores the call counter sees bit-identical features, whatever the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/enum_names.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "layers/nn/module.hpp"

namespace attnlab::nn {

enum class FeatureNorm { Chi, Fixed };
const EnumNames<FeatureNorm>& enum_names(FeatureNorm);  // chi, fixed (sqrt-d: alias)
const char* feature_norm_name(FeatureNorm n);        // "chi", "fixed"
FeatureNorm parse_feature_norm(const std::string&);  // ValueError for an unknown name

struct ProjectionOptions {
  int64_t features = 256;  // m: rows of W (any m >= 1; need not be a multiple of dim)
  int64_t dim = 64;        // d: the head width
  bool orthogonal = true;
  FeatureNorm norm = FeatureNorm::Chi;
};

// A fresh projection [m, d] in float64, a pure function of (options, key).
Tensor draw_projection(const ProjectionOptions& options, RngKey key);

// A d x d orthogonal matrix Q from the Householder QR of a Gaussian matrix drawn from `key`
// (float64). sign_fix = true applies Q[:, j] *= sign(R_jj) and gives a Haar-distributed Q;
// false returns the raw LAPACK-convention factor (for teaching and the tests of the pitfall).
Tensor random_orthogonal(int64_t d, RngKey key, bool sign_fix = true);

// Householder QR of a row-major n x n float64 matrix: a becomes Q (row-major), r_diag the
// diagonal of R. The reflector sign follows LAPACK (v = x + sign(x_1) |x| e_1, so R_11 has the
// opposite sign of x_1).
void householder_qr(double* a, double* r_diag, int64_t n);

// When to draw new features. Redraws happen only in training mode, at the start of a forward
// call; evaluation always uses the current W (deterministic inference).
enum class RedrawPolicy {
  Never,        // draw once at construction (or keep what set_projection installed)
  EveryNCalls,  // draw number floor(call / interval): performer-pytorch's default (1000 calls)
  EveryCall,    // draw number = call index (Google's JAX/TF code draws at every call)
};
const EnumNames<RedrawPolicy>& enum_names(RedrawPolicy);
const char* redraw_policy_name(RedrawPolicy p);        // "never", "every-n", "every-call"
RedrawPolicy parse_redraw_policy(const std::string&);  // ValueError for an unknown name

struct RedrawOptions {
  RedrawPolicy policy = RedrawPolicy::EveryNCalls;
  int64_t interval = 1000;  // for EveryNCalls
};

// Owns the projection as the buffer "projection" [m, d] (saved with the model, converted by
// Module::to) and the redraw counters as the int64 buffer "redraw_state" = [calls, draw].
//   call = the number of training forwards seen so far; draw = the draw number W came from
//   (-1 after set_projection). Restoring both (load_state_dict) resumes the exact sequence.
class RandomFeatures : public Module {
 public:
  RandomFeatures(const ProjectionOptions& projection,
                 const RedrawOptions& redraw = {},
                 uint64_t seed = 0);

  // The projection to use for one forward call: applies the redraw policy (training mode only)
  // and advances the call counter. Call it exactly once per forward.
  const Tensor& next();
  const Tensor& projection() const { return buffer("projection"); }
  // Installs a user projection; ShapeError unless it is a float [m, d] tensor. It is kept until
  // the policy's next redraw (use RedrawPolicy::Never to keep it for good).
  void set_projection(const Tensor& w);
  // Replaces W with draw number n of this module's sequence (what the policy would have drawn).
  void redraw(int64_t n);

  int64_t calls() const;  // training forwards seen
  int64_t draw() const;   // draw number of the current W (-1: set by the user)
  // Rewinds or advances the call counter, e.g. to replay a step: the next training forward
  // then uses exactly the features that call number `calls` saw the first time.
  void set_calls(int64_t calls);
  // The Philox key of draw number n: (seed mixed with a FAVOR+ tag, n).
  RngKey draw_key(int64_t n) const;

  const ProjectionOptions& projection_options() const { return proj_; }
  const RedrawOptions& redraw_options() const { return redraw_; }
  void set_redraw_options(const RedrawOptions& r);
  uint64_t seed() const { return seed_; }
  std::string describe() const override;

 private:
  int64_t draw_for_call(int64_t call) const;
  void set_state(int64_t calls, int64_t draw);

  ProjectionOptions proj_;
  RedrawOptions redraw_;
  uint64_t seed_;
};

}  // namespace attnlab::nn
