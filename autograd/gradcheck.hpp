// gradcheck: compares the engine's gradients with central finite differences, PyTorch-style.
//
// The function under test maps Vars to Vars; its float inputs are cast to float64 (unless
// cast_to_double is false) and checked against (f(x + eps) - f(x - eps)) / 2 eps with
// |analytic - numeric| <= atol + rtol * |numeric| (defaults eps 1e-6, atol 1e-5, rtol 1e-3).
//   slow mode: the full Jacobian: one backward per output element, two forwards per input element;
//   fast mode: random projections v^T J u (one backward, two forwards per trial), with the atol
//              scaled by sum(u) * sum(v) as in PyTorch; a failure is re-checked in slow mode when
//              the inputs are small enough, so the report names the worst entries.
// Both modes also check that backward is reentrant (two runs give bit-identical gradients) and
// that a zero output gradient gives zero input gradients. int64 inputs are passed through as
// constants. Stochastic functions must take their noise as an input so f is deterministic.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/var.hpp"

namespace attnlab::ag {

using GradcheckFn = std::function<std::vector<Var>(const std::vector<Var>& inputs)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  bool fast_mode = false;
  int fast_trials = 2;         // random (u, v) pairs in fast mode
  uint64_t seed = 0;           // for fast mode's directions and the reentrancy check
  bool cast_to_double = true;  // cast float32 inputs to float64 first
  // Which inputs to differentiate (empty: every float input).
  std::vector<bool> wrt;
  // Leaves the function uses without taking them as inputs (a module's parameters): checked too.
  // Their values are perturbed in place for the finite differences and restored afterwards; they
  // must be float64 (convert a module with Module::to(kFloat64)). In reports they are numbered
  // after the inputs.
  std::vector<Var> params;
  int max_reported = 5;                // worst entries listed on failure
  int64_t slow_fallback_limit = 4096;  // re-run a failed fast check in slow mode up to this size

  // Settings for checking in float32: eps 3e-2, rtol 2e-2, atol 1e-3. A central difference has
  // a rounding error of about u |f| / eps (u = 6e-8 in float32), which swamps the derivative at
  // eps 1e-6 (PyTorch's gradcheck documents its defaults as meant for double precision); the
  // larger step trades it against the O(eps^2) truncation error.
  static GradcheckOptions float32();
};

struct GradcheckMismatch {
  int output = 0;
  int input = 0;
  int64_t flat_index = 0;      // of the input element
  std::vector<int64_t> index;  // of the input element
  double analytic = 0;
  double numeric = 0;
  // The output element of the Jacobian entry (slow mode); -1 and empty in the modes that compare
  // a vector-Jacobian product (one value per input element, not per pair).
  int64_t output_flat_index = -1;
  std::vector<int64_t> output_index;
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;
  double max_rel_error = 0;  // max |analytic - numeric| / max(|numeric|, atol)
  std::string mode;          // "slow" or "fast"
  std::vector<GradcheckMismatch> worst;
  std::vector<std::string> problems;  // failed checks, in words
  std::string report() const;         // a readable summary (also when ok)
};

GradcheckResult gradcheck(const GradcheckFn& f,
                          const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});
// Single-output convenience.
GradcheckResult gradcheck(const std::function<Var(const std::vector<Var>&)>& f,
                          const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

// Straight-through estimators cannot be finite-differenced (their true derivative is zero almost
// everywhere). This checks what they promise instead: the forward of `st` equals the forward of
// `hard` exactly, and st's gradient (for a random output gradient) equals the gradient of
// `surrogate` to within 1e-12 relative (float64). `params`: captured float64 leaves (a module's
// parameters) whose gradients are compared too, numbered after the inputs as in gradcheck.
GradcheckResult check_straight_through(const GradcheckFn& st,
                                       const GradcheckFn& hard,
                                       const GradcheckFn& surrogate,
                                       const std::vector<Tensor>& inputs,
                                       uint64_t seed = 0,
                                       const std::vector<Var>& params = {});

}  // namespace attnlab::ag
