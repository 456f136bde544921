// `attnlab approx --study lisa`: how far LISA's codeword-histogram attention is from the exact
// softmax attention it replaces, in value and in gradient (docs/derivations/lisa_histograms.md 4:
// what is exact and what is approximated).
//
// Setting (one sample): item embeddings E [n, D] drawn around 64 cluster centres; codebooks
// C [B, W, D] fitted by residual k-means on E (what a trained quantizer approaches); a sequence
// X [L, D] of random items; per-codebook projections W_Q, W_K, W_V [B, D, D]; a cotangent G.
//   LISA:   residual quantization r_1 = X, s_b = select(2 r_b C_b^T - |C_b|^2) (nearest codeword
//           by Euclidean distance, softmax with temperature tau, any selection mode),
//           r_(b+1) = r_b - s_b C_b; decayed causal histograms of the s_b; histogram attention
//           with tables (C_b W_Q^b)(C_b W_K^b)^T and values C_b W_V^b, summed over b.
//   exact:  the same B heads with the unquantized residuals: sum_b causal softmax attention of
//           (R_b W_Q^b, R_b W_K^b, R_b W_V^b) with the same decay bias -lambda (i - j), where
//           R_b = X - (the codewords chosen before stage b), so dR_b/dX = I.
// The difference is exactly the quantization of queries, keys and values; the gradients with
// respect to X show what the selection's estimator (straight-through, Gumbel, soft) passes on.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/commands/approx/approx.hpp"
#include "experiments/support/models.hpp"
#include "experiments/support/plot.hpp"
#include "experiments/support/progress.hpp"
#include "layers/attention/lisa/lisa_attention.hpp"
#include "layers/attention/lisa/product_quantizer.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"

namespace attnlab::approx {
namespace {

using ag::Var;

// Index of the nearest row of `centres` [W, D] for every row of `x` [n, D].
std::vector<int64_t> nearest(const Tensor& x, const Tensor& centres) {
  const Tensor d2 = sum(centres * centres, -1).reshape({1, centres.size(0)}) -
                    matmul(x, centres, false, true) * 2.0;  // + |x|^2, the same for every w
  const Tensor idx = argmin(d2, 1);
  return std::vector<int64_t>(idx.data<int64_t>(), idx.data<int64_t>() + idx.numel());
}

// Residual k-means: B codebooks of W codewords [B, W, D] for the rows of `e` [n, D].
Tensor residual_kmeans(const Tensor& e, int64_t B, int64_t W, uint64_t seed) {
  const int64_t n = e.size(0), D = e.size(1);
  Tensor residual = e.clone();
  Tensor books = zeros({B, W, D}, kFloat64);
  for (int64_t b = 0; b < B; ++b) {
    // k-means++-free init: W distinct random rows (n >= W is checked by the caller).
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(order[i], order[uniform_int(RngKey{seed, static_cast<uint64_t>(b)}, i, 0, i + 1)]);
    Tensor c = index_select(
        residual, 0, from_vector(std::vector<int64_t>(order.begin(), order.begin() + W), {W}));
    for (int iter = 0; iter < 10; ++iter) {
      const std::vector<int64_t> a = nearest(residual, c);
      Tensor acc = zeros({W, D}, kFloat64);
      std::vector<int64_t> count(W, 0);
      const double* r = residual.data<double>();
      double* s = acc.data<double>();
      for (int64_t i = 0; i < n; ++i) {
        ++count[a[i]];
        for (int64_t k = 0; k < D; ++k) s[a[i] * D + k] += r[i * D + k];
      }
      double* pc = c.data<double>();
      for (int64_t w = 0; w < W; ++w)  // an empty cluster keeps its centre
        if (count[w] > 0)
          for (int64_t k = 0; k < D; ++k) pc[w * D + k] = s[w * D + k] / count[w];
    }
    const std::vector<int64_t> a = nearest(residual, c);
    residual = residual - index_select(c, 0, from_vector(a, {n}));
    std::copy(c.data<double>(), c.data<double>() + W * D, books.data<double>() + b * W * D);
  }
  return books;
}

int64_t unique_count(const Tensor& index) {
  std::vector<int64_t> v(index.data<int64_t>(), index.data<int64_t>() + index.numel());
  std::sort(v.begin(), v.end());
  return std::unique(v.begin(), v.end()) - v.begin();
}

struct Result {
  Tensor out, dx, dwq, dwv;
  double used = 0;  // mean fraction of codewords used per codebook (LISA only)
};

}  // namespace

int run_lisa_study(const cli::Parser& p, const LisaStudyOptions& o) {
  const uint64_t seed = p.common().seed;
  const int64_t L = o.length, D = o.dim, n_items = kLisaStudyItems, clusters = 64;
  nn::AttentionMask mask;
  mask.causal = true;
  mask.decay = o.decay;
  cli::Table table({"B",
                    "W",
                    "selection",
                    "tau",
                    "L",
                    "D",
                    "decay",
                    "samples",
                    "out_mse",
                    "rel_err",
                    "cos_dx",
                    "rel_dx",
                    "cos_dwq",
                    "rel_dwq",
                    "cos_dwv",
                    "rel_dwv",
                    "used"});
  cli::Progress progress(
      static_cast<int64_t>(o.codebooks.size() * o.selections.size() * o.taus.size()) * o.samples,
      "approx lisa");
  for (const std::string& bw : o.codebooks) {
    const auto [B, W] = cli::parse_codebooks(bw, "--codebooks");
    if (W > n_items)
      throw cli::UsageError("--codebooks: W must be at most " + std::to_string(n_items));
    for (const std::string& sel_name : o.selections) {
      const nn::Selection mode = nn::parse_selection(sel_name);
      const bool gumbel =
          mode == nn::Selection::GumbelSoft || mode == nn::Selection::GumbelStraightThrough;
      for (double tau : o.taus) {
        double mse = 0, rel = 0, cx = 0, rx = 0, cq = 0, rq = 0, cv = 0, rv = 0, used = 0;
        for (int64_t s = 0; s < o.samples; ++s) {
          const uint64_t st = 100 * static_cast<uint64_t>(s);
          const Tensor centres = randn({clusters, D}, RngKey{seed, st}, kFloat64);
          Tensor assign = randint({n_items}, 0, clusters, RngKey{seed, st + 1});
          const Tensor e = index_select(centres, 0, assign) +
                           randn({n_items, D}, RngKey{seed, st + 2}, kFloat64) * 0.35;
          const Tensor books = residual_kmeans(e, B, W, seed + st);
          const Tensor ids = randint({L}, 0, n_items, RngKey{seed, st + 3});
          const Tensor x = index_select(e, 0, ids).reshape({1, L, D});
          const double wstd = 1.0 / std::sqrt(static_cast<double>(D));
          const Tensor wq = randn({B, D, D}, RngKey{seed, st + 4}, kFloat64, 0, wstd);
          const Tensor wk = randn({B, D, D}, RngKey{seed, st + 5}, kFloat64, 0, wstd);
          const Tensor wv = randn({B, D, D}, RngKey{seed, st + 6}, kFloat64, 0, wstd);
          const Tensor g = randn({1, L, D}, RngKey{seed, st + 7}, kFloat64);
          const Tensor noise =
              gumbel ? ::attnlab::gumbel({B, 1, L, W}, RngKey{seed, st + 8}, kFloat64) : Tensor();

          // LISA.
          Result lisa;
          std::vector<Tensor> residual_before(B);
          {
            Var vx(x, true), vq(wq, true), vk(wk), vv(wv, true);
            const Var cb(books);
            Var r = vx;
            std::vector<Var> sels;
            std::vector<Tensor> index;
            for (int64_t b = 0; b < B; ++b) {
              residual_before[b] = r.value();
              const Var c = ag::reshape(ag::slice(cb, 0, b, b + 1), {W, D});
              const Tensor csq = sum(c.value() * c.value(), -1).reshape({1, 1, W});
              const Var logits = ag::sub(ag::mul(ag::matmul(r, c, false, true), 2.0), Var(csq));
              const Tensor nb = gumbel ? slice(noise, 0, b, b + 1).reshape({1, L, W}) : Tensor();
              const nn::CodewordSelection cs = nn::select_codewords(logits, mode, tau, nb);
              sels.push_back(ag::unsqueeze(cs.selection, 2));
              index.push_back(cs.index.reshape({1, L, 1}));
              r = ag::sub(r, ag::matmul(cs.selection, c));
              used += static_cast<double>(unique_count(cs.index)) / static_cast<double>(W) /
                      static_cast<double>(B * o.samples);
            }
            const Var sel = ag::concat(sels, 2);  // [1, L, B, W]
            const Var hist = nn::lisa_histograms(sel, Tensor(), o.decay, /*causal=*/true);
            const nn::LisaProjection proj = nn::lisa_project(cb, vq, vk, vv);
            const Var y =
                nn::lisa_histogram_attention(proj.tables, proj.values, hist, concat(index, 2));
            ag::sum(ag::mul(y, Var(g))).backward();
            lisa = {y.value(), vx.grad(), vq.grad(), vv.grad(), 0};
          }
          // Exact attention on the unquantized residuals.
          Result exact;
          {
            Var vx(x, true), vq(wq, true), vk(wk), vv(wv, true);
            Var y;
            for (int64_t b = 0; b < B; ++b) {
              const Var rb = ag::sub(vx, Var(x - residual_before[b]));  // dR_b/dX = I
              auto head = [&](const Var& w) {
                return ag::reshape(ag::matmul(rb, ag::reshape(ag::slice(w, 0, b, b + 1), {D, D})),
                                   {1, 1, L, D});
              };
              const Var yb = nn::softmax_attention(head(vq), head(vk), head(vv), mask);
              y = y.defined() ? ag::add(y, yb) : yb;
            }
            y = ag::reshape(y, {1, L, D});
            ag::sum(ag::mul(y, Var(g))).backward();
            exact = {y.value(), vx.grad(), vq.grad(), vv.grad(), 0};
          }
          const Tensor diff = lisa.out - exact.out;
          mse += sum(diff * diff).item() / static_cast<double>(diff.numel()) / o.samples;
          rel += agreement(lisa.out, exact.out).second / o.samples;
          auto add = [&](const Tensor& a, const Tensor& b, double& c, double& r) {
            const auto [ci, ri] = agreement(a, b);
            c += ci / o.samples;
            r += ri / o.samples;
          };
          add(lisa.dx, exact.dx, cx, rx);
          add(lisa.dwq, exact.dwq, cq, rq);
          add(lisa.dwv, exact.dwv, cv, rv);
          progress.step(1, bw + " " + sel_name);
        }
        table.add_row({B,
                       W,
                       sel_name,
                       cli::Cell(tau, 2),
                       L,
                       D,
                       cli::Cell(o.decay, 2),
                       o.samples,
                       cli::Cell::sci(mse),
                       cli::Cell::sci(rel),
                       cli::Cell(cx, 4),
                       cli::Cell::sci(rx),
                       cli::Cell(cq, 4),
                       cli::Cell::sci(rq),
                       cli::Cell(cv, 4),
                       cli::Cell::sci(rv),
                       cli::Cell(used, 3)});
      }
    }
  }
  std::cout << "LISA against exact softmax attention over the unquantized residuals (causal, "
               "decay "
            << o.decay << ", float64, seed " << seed
            << "; gradients of sum(out . G) w.r.t. the inputs X and the projections; used = "
               "share of codewords the sequence uses)\n";
  table.print(std::cout);
  const std::string& out = p.common().out;
  if (!out.empty()) {
    table.write(out, "approx_lisa");
    table.write(out, "result");  // what `attnlab sweep --command approx` collects
    cli::PlotSpec spec;
    spec.title = "LISA: relative error of the output against W";
    spec.x = "W";
    spec.y = "rel_err";
    spec.group = {"B", "selection", "tau"};
    spec.log_x = spec.log_y = true;
    spec.data = "approx_lisa";
    cli::plot(table, out, "approx_lisa_err", spec);
    std::cout << "wrote " << out << "/approx_lisa.csv, .jsonl\n";
  }
  return 0;
}

}  // namespace attnlab::approx
