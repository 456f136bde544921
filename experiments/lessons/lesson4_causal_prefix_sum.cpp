// Lesson 4: causal attention as a prefix sum (Katharopoulos et al. 2020, Sec. 3.3; Performer
// App. B.1; docs/derivations/favor_causal_backward.md).
//
// With features Q' = phi(Q), K' = phi(K), causal linear attention is
//   out_i = q'_i^T S_i / q'_i^T z_i,   S_i = sum_{j<=i} k'_j v_j^T  (m x d),  z_i = sum_{j<=i}
//   k'_j,
// the masked matrix form (tril(Q' K'^T) V) / (tril(Q' K'^T) 1) evaluated left to right with a
// running state instead of an L x L matrix. This lesson computes both by hand on a tiny example,
// compares them with attnlab's fused op, and measures why its backward needs only the O(m d)
// state: it recomputes S_i in a forward sweep and the adjoint state in a reverse sweep instead of
// storing L states (an L x m x d tensor).
#include <cmath>
#include <iostream>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/lessons/lesson.hpp"
#include "layers/attention/favor/favor_attention.hpp"

namespace attnlab::lessons {
namespace {

using ag::Var;

double largest_difference(const Tensor& a, const Tensor& b) {
  return max(abs(a - b)).item();
}

bool lesson_causal_prefix_sum(std::ostream& out, bool quick) {
  nn::AttentionMask causal;
  causal.causal = true;
  const int64_t L = 6, d = 2, m = 4;
  const Tensor q = randn({1, 1, L, d}, RngKey{7, 0}, kFloat64) * 0.7;
  const Tensor k = randn({1, 1, L, d}, RngKey{7, 1}, kFloat64) * 0.7;
  const Tensor v = randn({1, 1, L, d}, RngKey{7, 2}, kFloat64);
  nn::ProjectionOptions po;
  po.features = m;
  po.dim = d;
  const Var w(nn::draw_projection(po, RngKey{7, 3}));
  nn::FeatureMapSpec spec;  // positive features, epsilon 0
  const Tensor qf = nn::favor_feature_map(Var(q), w, spec, nn::FeatureShift::None).features.value();
  const Tensor kf = nn::favor_feature_map(Var(k), w, spec, nn::FeatureShift::None).features.value();

  heading(out, "1. The masked matrix form: O(L^2)");
  Tensor a = matmul(qf, kf, false, true).reshape({L, L});  // q'_i . k'_j
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = i + 1; j < L; ++j) a.data<double>()[i * L + j] = 0.0;  // the causal mask
  out << "A = tril(Q' K'^T), the unnormalised causal attention (row i: what query i sees):\n"
      << a << "\n";
  const Tensor by_matrix = matmul(a, v.reshape({L, d})) / sum(a, -1, true);

  heading(out, "2. The same as a running state: O(m d) memory");
  Tensor by_state = zeros({L, d}, kFloat64);
  std::vector<double> S(m * d, 0.0), z(m, 0.0);
  const double* pq = qf.data<double>();
  const double* pk = kf.data<double>();
  const double* pv = v.data<double>();
  for (int64_t t = 0; t < L; ++t) {
    // S_t = S_(t-1) + k'_t v_t^T,  z_t = z_(t-1) + k'_t
    for (int64_t r = 0; r < m; ++r) {
      z[r] += pk[t * m + r];
      for (int64_t c = 0; c < d; ++c) S[r * d + c] += pk[t * m + r] * pv[t * d + c];
    }
    double den = 0;
    for (int64_t r = 0; r < m; ++r) den += pq[t * m + r] * z[r];
    for (int64_t c = 0; c < d; ++c) {
      double num = 0;
      for (int64_t r = 0; r < m; ++r) num += pq[t * m + r] * S[r * d + c];
      by_state.data<double>()[t * d + c] = num / den;
    }
    out << "t = " << t << ": state S is " << m << " x " << d << " and z has " << m
        << " entries whatever t is; out_t = " << by_state.reshape({L, d}).data<double>()[t * d]
        << ", ...\n";
  }
  const Tensor fused =
      nn::favor_attention(Var(q), Var(k), Var(v), w, causal).value().reshape({L, d});
  out << "\nmax |matrix form - running state| = " << largest_difference(by_matrix, by_state)
      << "\nmax |matrix form - attnlab's fused causal op| = "
      << largest_difference(by_matrix, fused) << "\n";

  heading(out, "3. Causality: changing the future does not change the past");
  Tensor k2 = k.clone();
  k2.data<double>()[(L - 1) * d] += 5.0;  // perturb the last key only
  const Tensor fused2 =
      nn::favor_attention(Var(q), Var(k2), Var(v), w, causal).value().reshape({L, d});
  const double past_change =
      largest_difference(slice(fused, 0, 0, L - 1), slice(fused2, 0, 0, L - 1));
  const double last_change =
      largest_difference(slice(fused, 0, L - 1, L), slice(fused2, 0, L - 1, L));
  out << "perturbing key " << L - 1 << ": outputs 0.." << L - 2 << " move by " << past_change
      << ", output " << L - 1 << " by " << last_change << "\n";

  heading(out, "4. Memory of forward + backward: the fused op against materialised prefix sums");
  // The reference keeps every prefix state, [L, m, d + 1]; the fused op keeps Q', K', V and, in
  // its backward, one m x d state swept forward (for dQ') and one swept in reverse (for dK', dV).
  const int64_t D = 32, M = 64;
  po.features = M;
  po.dim = D;
  const Var W(nn::draw_projection(po, RngKey{7, 4}).to(kFloat32));
  auto peak_mib = [&](int64_t len, bool reference) {
    const Tensor Q = randn({1, 1, len, D}, RngKey{8, 0}), K = randn({1, 1, len, D}, RngKey{8, 1}),
                 V = randn({1, 1, len, D}, RngKey{8, 2});
    const int64_t before = memory_stats().live_bytes;
    reset_peak_memory();
    {
      Var vq(Q, true), vk(K, true), vv(V, true);
      nn::FavorAttentionOptions o;
      o.impl = reference ? nn::FavorImpl::Reference : nn::FavorImpl::Fused;
      ag::sum(nn::favor_attention(vq, vk, vv, W, causal, o)).backward();
    }
    return static_cast<double>(memory_stats().peak_bytes - before) / 1048576.0;
  };
  const int64_t L1 = quick ? 256 : 1024;
  const double fused_1 = peak_mib(L1, false), fused_4 = peak_mib(4 * L1, false);
  const double ref_1 = peak_mib(L1, true);
  out << "m = " << M << ", d = " << D << ", float32, fwd + bwd peak tensor memory:\n"
      << "  fused,     L = " << L1 << ": " << fused_1 << " MiB\n"
      << "  fused,     L = " << 4 * L1 << ": " << fused_4 << " MiB  (x" << fused_4 / fused_1
      << ": linear in L)\n"
      << "  reference, L = " << L1 << ": " << ref_1 << " MiB  (x" << ref_1 / fused_1
      << " the fused op: it stores L prefix states of m x (d + 1))\n\n";

  bool ok = check(out,
                  "the running state reproduces the masked matrix form",
                  largest_difference(by_matrix, by_state) < 1e-12);
  ok &= check(
      out, "the fused causal op agrees with both", largest_difference(by_matrix, fused) < 1e-12);
  ok &= check(out, "a future key changes no past output", past_change == 0.0 && last_change > 0.0);
  ok &= check(out,
              "the fused op's memory grows linearly in L (x4 length: x3 to x5 memory)",
              fused_4 / fused_1 > 3.0 && fused_4 / fused_1 < 5.0);
  ok &= check(
      out, "materialising the prefix states costs at least 5x more memory", ref_1 > 5 * fused_1);
  return ok;
}

const Register lesson_4(4, "Causal attention as a prefix sum", lesson_causal_prefix_sum);

}  // namespace
}  // namespace attnlab::lessons
