// Lesson 5: LISA's codeword histograms (Wu et al., WWW 2021; docs/derivations/lisa_histograms.md).
//
// Quantize every item into one codeword per codebook; items that share a codeword share their key
// and value, so softmax attention over the L positions of a sequence collapses to attention over
// the W codewords of each codebook, weighted by how often (and how recently) each codeword was
// seen: the (decayed) histogram h_i[w] = sum_(j<=i) gamma^(i-j) [code_j = w]. This lesson
// quantizes a tiny sequence, prints its histograms, shows that histogram attention IS exact causal
// softmax attention over codeword projections with the bias -lambda (i - j) (one codebook, and a
// sum over two), counts the cost, and compares the gradients that make the discrete codes
// trainable: straight-through, Gumbel straight-through and soft selection.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/lessons/lesson.hpp"
#include "layers/attention/lisa/lisa_attention.hpp"
#include "layers/attention/lisa/product_quantizer.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"

namespace attnlab::lessons {
namespace {

using ag::Var;

// A row of numbers with fixed decimals (the stream's own formatting stays untouched).
std::string row(const std::vector<double>& x, int width = 8, int decimals = 4) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(decimals);
  for (double v : x) s << std::setw(width) << v;
  return s.str();
}

std::vector<double> values_of(const Tensor& t) {
  return t.to(kFloat64).to_vector<double>();
}

double largest_difference(const Tensor& a, const Tensor& b) {
  return max(abs(a - b)).item();
}

// A quantizer with B codebooks of W codewords for D-dim items, in float64 and evaluation mode
// (hard codes, the argmax of the bilinear scores).
struct Quantized {
  Tensor codebooks;   // [B, W, D]
  Tensor codes;       // int64 [1, L, B]
  Tensor selections;  // [1, L, B, W] one-hot
};
Quantized quantize(const Tensor& items, int64_t B, int64_t W, uint64_t seed) {
  nn::ProductQuantizerOptions o;
  o.dim = items.size(-1);
  o.codebooks = B;
  o.codewords = W;
  Generator init(seed);
  nn::ProductQuantizer pq(o, init, nullptr);
  pq.to(kFloat64);
  pq.eval();
  const nn::QuantizedItems q = pq.forward(Var(items));
  return {pq.codebooks.value(), q.codes, q.selection.value()};
}

// The explicit form (docs/derivations/lisa_histograms.md 4): per codebook b, exact causal softmax
// attention with query (C_b W_Q^b)[u_i], key (C_b W_K^b)[u_j], value (C_b W_V^b)[u_j] and bias
// -lambda (i - j); the codebooks' outputs summed. `weights0` receives codebook 0's L x L attention
// weights.
Tensor exact_attention(const Tensor& codebooks,
                       const Tensor& wq,
                       const Tensor& wk,
                       const Tensor& wv,
                       const Tensor& codes,
                       double decay,
                       Tensor* weights0 = nullptr) {
  const int64_t B = codebooks.size(0), L = codes.size(1), D = codebooks.size(2);
  const Tensor qt = matmul(codebooks, wq), kt = matmul(codebooks, wk), vt = matmul(codebooks, wv);
  nn::AttentionMask mask;
  mask.causal = true;
  mask.decay = decay;
  Tensor total;
  for (int64_t b = 0; b < B; ++b) {
    const Tensor u = slice(codes, 2, b, b + 1).reshape({L});  // codebook b's code per position
    auto rows = [&](const Tensor& proj) {
      return index_select(slice(proj, 0, b, b + 1).reshape({-1, D}), 0, u).reshape({1, 1, L, D});
    };
    nn::AttentionTrace trace;
    const Tensor y = nn::softmax_attention_reference(
                         Var(rows(qt)), Var(rows(kt)), Var(rows(vt)), mask, 0.0, {}, &trace)
                         .value()
                         .reshape({1, L, D});
    if (b == 0 && weights0)
      *weights0 = trace.weights.value().reshape({L, L});
    total = b == 0 ? y : total + y;
  }
  return total;
}

// The lesson's tiny example: L items of dimension D, codebooks of W codewords, and a decay lambda
// large enough for the decay to be visible.
constexpr int64_t L = 6, D = 4, W = 4;
constexpr double lambda = 0.5;

// A claim the lesson checks at its end, and whether it held.
struct Claim {
  std::string what;
  bool holds;
};
using Claims = std::vector<Claim>;

// Section 1's results, which section 2 reuses.
struct Histograms {
  Quantized q1;                 // one codebook
  std::vector<int64_t> codes1;  // each position's code
  Tensor hist1;                 // [L, W], decayed
};

Histograms codes_and_histograms(std::ostream& out, const Tensor& items) {
  const double gamma = std::exp(-lambda);
  heading(out, "1. Codes and codeword histograms (one codebook, B = 1, W = 4, D = 4)");
  const Quantized q1 = quantize(items, 1, W, 11);
  const std::vector<int64_t> codes1 = q1.codes.to_vector<int64_t>();
  out << "each item's code (argmax_w of (x M) C^T):\n  position ";
  for (int64_t i = 0; i < L; ++i) out << "  " << i;
  out << "\n  code     ";
  for (int64_t c : codes1) out << "  " << c;
  const nn::CodewordUsage usage = nn::codeword_usage(q1.codes, W);
  out << "\n  usage: " << usage.str() << "\n\n";
  const Var sel1(q1.selections);
  const Tensor counts = nn::lisa_histograms(sel1, {}, 0.0, true).value().reshape({L, W});
  const Tensor hist1 = nn::lisa_histograms(sel1, {}, lambda, true).value().reshape({L, W});
  out << "causal histograms h_i[w] = sum_(j<=i) gamma^(i-j) [code_j = w], one row per position:\n"
      << "     plain counts (gamma = 1)           decayed (lambda = " << lambda
      << ", gamma = " << std::setprecision(4) << gamma << std::setprecision(6) << ")\n";
  for (int64_t i = 0; i < L; ++i) {
    out << "  i=" << i << row(values_of(slice(counts, 0, i, i + 1)), 7, 0) << "     "
        << row(values_of(slice(hist1, 0, i, i + 1)), 8, 3) << "\n";
  }
  out << "\nEach row is the previous row times gamma plus the one-hot of the new code: O(W) per\n"
         "step, whatever the history length. The W counts are all attention needs to know about\n"
         "the past, because every item with code w has the same key and the same value.\n";
  return {q1, codes1, hist1};
}

// W_Q, W_K and W_V for B codebooks, drawn in that order from `rng`.
std::vector<Tensor> projections(int64_t B, Generator& rng) {
  return std::vector<Tensor>{randn({B, D, D}, rng, kFloat64) * 0.8,
                             randn({B, D, D}, rng, kFloat64) * 0.8,
                             randn({B, D, D}, rng, kFloat64)};
}

// Section 2, B = 1: the largest differences of LISA's outputs from exact attention's, and of
// LISA's weights over codewords from the exact weights summed per codeword.
struct OneCodebook {
  double diff1, alpha_diff;
};

OneCodebook one_codebook(std::ostream& out, const Histograms& h, Generator& proj_rng) {
  const std::vector<Tensor> p1 = projections(1, proj_rng);
  const nn::LisaProjection lp1 =
      nn::lisa_project(Var(h.q1.codebooks), Var(p1[0]), Var(p1[1]), Var(p1[2]));
  nn::LisaTrace trace1;
  const Tensor lisa1 = nn::lisa_histogram_attention(lp1.tables,
                                                    lp1.values,
                                                    Var(h.hist1.reshape({1, L, 1, W})),
                                                    h.q1.codes,
                                                    {},
                                                    0.0,
                                                    nn::LisaImpl::Reference,
                                                    &trace1)
                           .value();
  Tensor weights_exact;
  const Tensor exact1 =
      exact_attention(h.q1.codebooks, p1[0], p1[1], p1[2], h.q1.codes, lambda, &weights_exact);
  const double diff1 = largest_difference(lisa1, exact1);
  out << "The last position (i = " << L - 1 << ") in both forms:\n"
      << "  exact attention, weight of position j:"
      << row(values_of(slice(weights_exact, 0, L - 1, L)))
      << "\n  the code of position j:               ";
  for (int64_t c : h.codes1) out << std::setw(8) << c;
  const std::vector<double> alpha_last =
      values_of(slice(trace1.weights.value().reshape({L, W}), 0, L - 1, L));
  std::vector<double> grouped(W, 0.0);
  for (int64_t j = 0; j < L; ++j) grouped[h.codes1[j]] += weights_exact.get({L - 1, j});
  out << "\n  exact weights summed per codeword:    " << row(grouped)
      << "\n  LISA's weights alpha over codewords:  " << row(alpha_last)
      << "\n\nLISA: alpha_i[w] = h_i[w] e^(z[w]) / sum_w' h_i[w'] e^(z[w'])\n"
         "      with z[w] = T[u_i, w] / sqrt(D), u_i the query's own code:\n"
         "the decayed count h_i[w] multiplies the one exp that all positions with code w share\n"
         "(the bias -lambda (i - j) is exactly the gamma^(i - j) inside h).\n\n"
      << "B = 1: max |histogram attention - exact attention| over all " << L << " x " << D
      << " outputs = " << diff1 << "\n";
  double alpha_diff = 0;
  for (int64_t w = 0; w < W; ++w)
    alpha_diff = std::max(alpha_diff, std::fabs(alpha_last[w] - grouped[w]));
  return {diff1, alpha_diff};
}

// Section 2, B = 2 (residual quantization): one attention per codebook, outputs summed.
struct TwoCodebooks {
  Quantized q2;
  nn::LisaProjection lp2;
  Tensor lisa2;  // the fused op's outputs [1, L, D]
  double diff2;  // against the sum of exact attentions
};

TwoCodebooks two_codebooks(std::ostream& out, const Tensor& items, Generator& proj_rng) {
  const Quantized q2 = quantize(items, 2, W, 13);
  const std::vector<Tensor> p2 = projections(2, proj_rng);
  const nn::LisaProjection lp2 =
      nn::lisa_project(Var(q2.codebooks), Var(p2[0]), Var(p2[1]), Var(p2[2]));
  const Var hist2 = nn::lisa_histograms(Var(q2.selections), {}, lambda, true);
  const Tensor lisa2 =
      nn::lisa_histogram_attention(lp2.tables, lp2.values, hist2, q2.codes).value();  // fused
  const Tensor exact2 = exact_attention(q2.codebooks, p2[0], p2[1], p2[2], q2.codes, lambda);
  const double diff2 = largest_difference(lisa2, exact2);
  out << "B = 2: codes per position (codebook 0 / 1):";
  for (int64_t i = 0; i < L; ++i)
    out << "  " << q2.codes.at<int64_t>({0, i, 0}) << "/" << q2.codes.at<int64_t>({0, i, 1});
  out << "\n       max |histogram attention (fused op) - sum over codebooks of exact attention| = "
      << diff2
      << "\n\nWith B codebooks every codebook is its own attention \"head\" with full-D values;\n"
         "cross-codebook query-key terms are dropped (the approximation; see\n"
         "docs/derivations/lisa_histograms.md, section 4).\n";
  return {q2, lp2, lisa2, diff2};
}

// Section 2, online: one item at a time, the [B, W] histogram is the whole state. Returns the
// largest difference from the batched outputs.
double stream_difference(std::ostream& out, const TwoCodebooks& two) {
  nn::LisaTables tables;
  tables.tables = two.lp2.tables.value();
  tables.values = two.lp2.values.value();
  tables.decay = lambda;
  nn::LisaStream stream(tables);
  double stream_diff = 0;
  for (int64_t i = 0; i < L; ++i) {
    const Tensor y = stream.step_codes(slice(two.q2.codes, 1, i, i + 1).reshape({2}));
    stream_diff =
        std::max(stream_diff, largest_difference(y, slice(two.lisa2, 1, i, i + 1).reshape({D})));
  }
  out << "\nLisaStream (append one item, O(B W) update, O(B W D) output): max |stream - batched| = "
      << stream_diff << "\n";
  return stream_diff;
}

Claims histogram_attention_is_exact(std::ostream& out, const Tensor& items, const Histograms& h) {
  heading(out, "2. Histogram attention is exact attention over codeword projections");
  Generator proj_rng(12);
  const OneCodebook one = one_codebook(out, h, proj_rng);
  const TwoCodebooks two = two_codebooks(out, items, proj_rng);
  const double stream_diff = stream_difference(out, two);
  return {{"histogram attention equals exact attention over codeword projections, B = 1 "
           "(max diff < 1e-12)",
           one.diff1 < 1e-12},
          {"B = 2: histogram attention equals the sum over codebooks of exact attentions",
           two.diff2 < 1e-12},
          {"the exact weights of the last position, summed per codeword, are LISA's alpha",
           one.alpha_diff < 1e-12},
          {"LisaStream one item at a time equals the batched outputs", stream_diff < 1e-12}};
}

void cost_of_histograms(std::ostream& out) {
  heading(out, "3. The cost: O(L B W) instead of O(L^2)");
  const int64_t Bc = 8, Wc = 16;
  out << "score entries per sequence, causal exact attention L (L + 1) / 2 against LISA's L B W\n"
         "(B x W = "
      << Bc << " x " << Wc << ", the Soft configs; the value sums scale the same way times D):\n\n"
      << "       L    exact L(L+1)/2      LISA L*B*W    exact / LISA\n";
  double ratio_4096 = 0;
  for (int64_t len : {64, 128, 512, 4096}) {
    const double exact = static_cast<double>(len) * (len + 1) / 2, lisa = double(len * Bc * Wc);
    out << std::setw(8) << len << std::setw(18) << std::fixed << std::setprecision(0) << exact
        << std::setw(16) << lisa << std::setw(16) << std::setprecision(2) << exact / lisa << "\n"
        << std::defaultfloat << std::setprecision(6);
    if (len == 4096)
      ratio_4096 = exact / lisa;
  }
  out << "\nThe advantage needs L > B W against the full L x L matrix, L > 2 B W\n"
         "against causal attention, which computes only half of it: at L = 64 LISA does more\n"
         "work. At L = 4096 the histogram form needs x"
      << std::setprecision(3) << ratio_4096 << std::setprecision(6)
      << " fewer score entries, and a decoder keeps\n"
         "a B x W histogram per user instead of a key/value cache of L rows.\n";
}

// Sections 4 and 5: selecting one of W codewords from fixed logits, with a downstream loss linear
// in the selection (the selected codeword's cost), so that every mode receives the same
// downstream gradient dloss/dselection = cost.
struct SelectionProblem {
  double tau = 0.7;  // the configs' temperature
  std::vector<double> lv{1.0, 0.5, -0.5, 0.0};
  std::vector<double> cost{0.5, -1.0, 2.0, 0.3};
  Tensor logits = from_vector(lv, {1, W}, kFloat64);
  Tensor g = from_vector(cost, {1, W}, kFloat64);
};

struct Grad {
  Tensor selection, grad, index;
};

Grad select_and_differentiate(const SelectionProblem& sp, nn::Selection mode, const Tensor& noise) {
  Var l(sp.logits.clone(), true);
  nn::CodewordSelection s = nn::select_codewords(l, mode, sp.tau, noise);
  ag::sum(ag::mul(s.selection, Var(sp.g))).backward();
  return Grad{s.selection.value(), l.grad(), s.index};
}

void print_selection_row(std::ostream& out, const std::string& label, const Grad& r) {
  out << "  " << std::left << std::setw(20) << label << std::right << row(values_of(r.selection))
      << "    " << row(values_of(r.grad)) << "\n";
}

bool is_one_hot(const Tensor& selection) {
  return sum(selection).item() == 1.0 && max(selection).item() == 1.0;
}

// Section 4's claims, and the straight-through gradient that section 5 compares against.
struct StraightThrough {
  Tensor grad;
  Claims claims;
};

StraightThrough straight_through_vs_gumbel(std::ostream& out, const SelectionProblem& sp) {
  heading(out, "4. Making discrete codes trainable: straight-through vs Gumbel");
  const Grad st = select_and_differentiate(sp, nn::Selection::StraightThrough, {});
  const Grad soft = select_and_differentiate(sp, nn::Selection::Soft, {});
  out << "logits " << row(sp.lv) << ", tau = " << sp.tau << "\n"
      << "loss = sum_w selection[w] cost[w] with cost " << row(sp.cost) << "\n\n"
      << "                         forward (the selection)             d loss / d logits\n";
  print_selection_row(out, "soft", soft);
  print_selection_row(out, "straight-through", st);
  bool one_hot_forward = is_one_hot(st.selection);
  bool gumbel_grad_is_noisy_softmax = true;
  for (uint64_t r = 0; r < 4; ++r) {
    const Tensor noise = gumbel({1, W}, RngKey{21, r}, kFloat64);
    const Grad gumbel_st =
        select_and_differentiate(sp, nn::Selection::GumbelStraightThrough, noise);
    one_hot_forward &= is_one_hot(gumbel_st.selection);
    // The gradient of Gumbel-ST is the soft gradient at the noisy logits.
    Var l(sp.logits + noise, true);
    ag::sum(ag::mul(nn::select_codewords(l, nn::Selection::Soft, sp.tau).selection, Var(sp.g)))
        .backward();
    gumbel_grad_is_noisy_softmax &= largest_difference(l.grad(), gumbel_st.grad) < 1e-15;
    print_selection_row(out, "Gumbel-ST, noise #" + std::to_string(r), gumbel_st);
  }
  out << "\nStraight-through: the forward is the hard one-hot of argmax p, the backward pretends\n"
         "it was the softmax p = softmax(logits / tau): d logits = p (cost - p . cost) / tau, a\n"
         "dense vector. With a loss linear in the selection this is exactly the soft gradient; "
         "the\n"
         "two differ only through the forward (and, for a non-linear loss, where the downstream\n"
         "gradient is evaluated). Gumbel-ST adds noise G ~ Gumbel(0, 1) to the logits: the "
         "selected\n"
         "codeword changes from draw to draw, and the gradient is that of softmax((logits + G) / "
         "tau):\n"
         "draws #1 and #2 select the same codeword and still send different gradients.\n";
  bool dense = true;
  for (double v : values_of(st.grad)) dense &= v != 0.0;
  return {
      st.grad,
      {{"straight-through: the forward is one-hot, the gradient dense", one_hot_forward && dense},
       {"straight-through's gradient equals the soft selection's",
        largest_difference(st.grad, soft.grad) < 1e-15},
       {"Gumbel-ST's gradient is the soft gradient at the noisy logits",
        gumbel_grad_is_noisy_softmax}}};
}

// The largest |frequency - p| over the codewords, in standard errors of a frequency over n draws.
double largest_gap_in_standard_errors(const std::vector<double>& freq,
                                      const std::vector<double>& p,
                                      int64_t n) {
  double worst = 0;
  for (int64_t w = 0; w < W; ++w)
    worst = std::max(worst, std::fabs(freq[w] - p[w]) / std::sqrt(p[w] * (1 - p[w]) / n));
  return worst;
}

// n selections with the same logits and cost, each under its own Gumbel noise (the same noise
// for every mode), and their gradients.
Grad gumbel_draws(const SelectionProblem& sp, nn::Selection mode, int64_t n) {
  std::vector<double> tiled, cost_tiled;
  for (int64_t i = 0; i < n; ++i) {
    tiled.insert(tiled.end(), sp.lv.begin(), sp.lv.end());
    cost_tiled.insert(cost_tiled.end(), sp.cost.begin(), sp.cost.end());
  }
  const Tensor noise = gumbel({n, W}, RngKey{22, 0}, kFloat64);
  Var l(from_vector(tiled, {n, W}, kFloat64), true);
  nn::CodewordSelection s = nn::select_codewords(l, mode, sp.tau, noise);
  ag::sum(ag::mul(s.selection, Var(from_vector(cost_tiled, {n, W}, kFloat64)))).backward();
  return Grad{s.selection.value(), l.grad(), s.index};
}

// How often Gumbel-ST selects each codeword, against softmax(logits) and softmax(logits / tau).
// Returns the largest gap from softmax(logits), in standard errors.
double selection_frequencies(std::ostream& out, const SelectionProblem& sp, int64_t n) {
  const Grad gst = gumbel_draws(sp, nn::Selection::GumbelStraightThrough, n);
  std::vector<double> freq(W, 0.0);
  for (int64_t v : gst.index.to_vector<int64_t>()) freq[v] += 1.0 / n;
  const std::vector<double> p_logits = values_of(softmax(sp.logits, -1));
  const std::vector<double> p_tau = values_of(softmax(sp.logits / sp.tau, -1));
  const double worst_z = largest_gap_in_standard_errors(freq, p_logits, n);
  const double worst_z_tau = largest_gap_in_standard_errors(freq, p_tau, n);
  out << "which codeword Gumbel-ST selects:\n"
      << "  frequency over the draws       " << row(freq) << "\n"
      << "  softmax(logits)                " << row(p_logits) << "   (largest gap "
      << std::setprecision(3) << worst_z << " standard errors)\n"
      << "  softmax(logits / tau)          " << row(p_tau) << "   (largest gap " << worst_z_tau
      << " standard errors)\n"
      << std::setprecision(6)
      << "\nThe Gumbel-max trick: argmax(logits + G) is distributed as softmax(logits) whatever\n"
         "tau is (dividing by tau > 0 does not move the argmax). tau only shapes the relaxed\n"
         "sample p and its gradient; it is NOT the temperature of the sampled distribution.\n\n";
  return worst_z;
}

// The mean Gumbel-soft gradient against straight-through's and the true objective's. Returns the
// largest gap from straight-through's, in standard errors.
double mean_gumbel_gradient(std::ostream& out,
                            const SelectionProblem& sp,
                            int64_t n,
                            const Tensor& st_grad) {
  const Grad gsoft = gumbel_draws(sp, nn::Selection::GumbelSoft, n);
  // The average gradient of the Gumbel-soft samples (equal, sample by sample, to the Gumbel-ST
  // gradients here: the loss is linear), with its standard error per component.
  const Tensor mean_g = mean(gsoft.grad, 0);
  const Tensor se = sqrt(mean(square(gsoft.grad - mean_g), 0) / static_cast<double>(n - 1));
  double worst_gap = 0;
  for (int64_t w = 0; w < W; ++w)
    worst_gap = std::max(worst_gap, std::fabs(mean_g.get({w}) - st_grad.get({0, w})) / se.get({w}));
  // The gradient of the true objective E_G[loss] = sum_w softmax(logits)_w cost_w.
  const std::vector<double> p_logits = values_of(softmax(sp.logits, -1));
  std::vector<double> truth(W);
  double pc = 0;
  for (int64_t w = 0; w < W; ++w) pc += p_logits[w] * sp.cost[w];
  for (int64_t w = 0; w < W; ++w) truth[w] = p_logits[w] * (sp.cost[w] - pc);
  out << "d loss / d logits:\n"
      << "  Gumbel-soft, mean of the draws " << row(values_of(mean_g)) << "\n"
      << "     its standard error          " << row(values_of(se)) << "\n"
      << "  straight-through (no noise)    " << row(values_of(st_grad)) << "   (largest gap "
      << std::setprecision(3) << worst_gap << " standard errors)\n"
      << std::setprecision(6) << "  d E[loss] / d logits           " << row(truth) << "\n"
      << "\nGumbel gradients are random (each draw above differs) and their average is not the\n"
         "deterministic straight-through gradient: the noise moves p before it is differentiated.\n"
         "The sampled code's expected loss is E[loss] = sum_w softmax(logits)_w cost_w; neither\n"
         "gradient equals its gradient (the last row): both are biased surrogate gradients,\n"
         "and the official LISA code uses plain straight-through (no Gumbel noise).\n\n";
  return worst_gap;
}

Claims gumbel_statistics(std::ostream& out,
                         bool quick,
                         const SelectionProblem& sp,
                         const Tensor& st_grad) {
  const int64_t n = quick ? 2000 : 20000;
  heading(out, "5. Gumbel statistics over " + std::to_string(n) + " draws");
  const double worst_z = selection_frequencies(out, sp, n);
  const double worst_gap = mean_gumbel_gradient(out, sp, n, st_grad);
  return {{"Gumbel-ST frequencies are within 5 standard errors of softmax(logits)", worst_z < 5.0},
          {"the mean Gumbel-soft gradient differs from the straight-through gradient (> 5 "
           "standard errors)",
           worst_gap > 5.0}};
}

// The sections in order, then every section's claims checked (all of them printed).
bool lesson_lisa_histograms(std::ostream& out, bool quick) {
  // A tiny "sequence": 6 item embeddings (what the recommender's embedding table would give).
  const Tensor items = randn({1, L, D}, RngKey{5, 0}, kFloat64) * 2.0;
  const Histograms h = codes_and_histograms(out, items);
  Claims claims = histogram_attention_is_exact(out, items, h);
  cost_of_histograms(out);
  const SelectionProblem sp;
  const StraightThrough st = straight_through_vs_gumbel(out, sp);
  claims.insert(claims.end(), st.claims.begin(), st.claims.end());
  const Claims gumbel = gumbel_statistics(out, quick, sp, st.grad);
  claims.insert(claims.end(), gumbel.begin(), gumbel.end());
  bool ok = true;
  for (const Claim& c : claims) ok &= check(out, c.what, c.holds);
  return ok;
}

const Register lesson_5(5, "LISA: codeword histograms", lesson_lisa_histograms);

}  // namespace
}  // namespace attnlab::lessons
