// The studies of `attnlab approx` (approx.cpp: the command and the FAVOR+ study;
// approx_lisa.cpp: the LISA study; approx_kinds.cpp: any registered kind).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.hpp"
#include "core/core.hpp"
#include "experiments/support/cli.hpp"
#include "layers/attention/attention_kernel.hpp"

namespace attnlab::approx {

inline double frobenius(const Tensor& x) {
  return std::sqrt(sum(x * x).item());
}

// A leaf's gradient after backward, or zeros when the output does not depend on it: a kind may
// ignore q and k (a mean over the values), and then its gradient to them is zero, not missing.
inline Tensor gradient_or_zeros(const ag::Var& leaf) {
  return leaf.grad().defined() ? leaf.grad() : zeros_like(leaf.value());
}

// Cosine similarity and relative error of `approx` against `exact` (the gradient-agreement
// metrics of both studies).
inline std::pair<double, double> agreement(const Tensor& approx, const Tensor& exact) {
  const double na = frobenius(approx), ne = frobenius(exact);
  const double cos = na > 0 && ne > 0 ? sum(approx * exact).item() / (na * ne) : 0.0;
  return {cos, ne > 0 ? frobenius(approx - exact) / ne : frobenius(approx)};
}

// The LISA study's item vocabulary (its codebooks' W is at most this).
constexpr int64_t kLisaStudyItems = 512;

struct LisaStudyOptions {
  std::vector<std::string> codebooks;   // "BxW" each
  std::vector<std::string> selections;  // soft, st, gumbel-soft, gumbel-st
  std::vector<double> taus;
  int64_t length = 256;
  int64_t dim = 32;
  int64_t samples = 3;
  double decay = 0.1;
};

// Runs the LISA study and prints / writes its table (approx_lisa.csv in --out).
int run_lisa_study(const cli::Parser& parser, const LisaStudyOptions& options);

// --study kinds: registered attention kinds against exact softmax attention (approx_kinds.cpp).
struct KindsStudyOptions {
  std::vector<std::string> kinds;
  std::vector<double> scales;
  int64_t length = 256, head_dim = 32, heads = 1, samples = 3;
  bool causal = false;
  DType dtype = kFloat32;
  uint64_t seed = 0;
};

// A kernel's output and dL/d(q, k, v) for L = sum(out . g), on fresh leaves (eval mode is the
// caller's). An input the output does not depend on gets a zero gradient.
struct KernelGradients {
  Tensor out, dq, dk, dv;
};
KernelGradients attend_with_gradients(nn::AttentionKernel& kernel,
                                      const Tensor& q,
                                      const Tensor& k,
                                      const Tensor& v,
                                      const Tensor& g,
                                      const nn::AttentionMask& mask);

// Runs the kinds study and prints / writes its table (approx_kinds.csv in --out).
int run_kinds_study(const cli::Parser& parser, const KindsStudyOptions& options);

}  // namespace attnlab::approx
