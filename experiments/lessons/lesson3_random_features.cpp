// Lesson 3: from softmax attention to random features (Performer's FAVOR+, Choromanski et al.,
// ICLR 2021; docs/derivations/favor_feature_maps.md).
//
// The softmax kernel is an expectation over Gaussian directions w (Lemma 1):
//   exp(x . y) = E_w[ exp(w.x - |x|^2/2) exp(w.y - |y|^2/2) ],  w ~ N(0, I_d),
// so m sampled directions give features phi(x) in R^m with phi(q) . phi(k) ~ exp(q . k / sqrt d),
// and attention becomes D^-1 Q'((K')^T V): linear in L. This lesson measures how good that is:
// positive vs trigonometric features, iid vs orthogonal directions, the error against m, and
// against the input norm, for the output AND for the gradients a model would train on.
#include <cmath>
#include <iostream>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/lessons/lesson.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"

namespace attnlab::lessons {
namespace {

using ag::Var;

double norm2(const Tensor& x) {
  return std::sqrt(sum(x * x).item());
}

// The estimate phi(q) . phi(k) of exp(q . k / sqrt(d)) for one pair, with m directions from `key`.
double kernel_estimate(
    const Tensor& q, const Tensor& k, nn::FeatureMap map, int64_t m, bool orthogonal, RngKey key) {
  nn::ProjectionOptions po;
  po.features = m;
  po.dim = q.size(3);
  po.orthogonal = orthogonal;
  const Var w(nn::draw_projection(po, key));
  nn::FeatureMapSpec spec;
  spec.map = map;
  const Tensor qf = nn::favor_feature_map(Var(q), w, spec, nn::FeatureShift::None).features.value();
  const Tensor kf = nn::favor_feature_map(Var(k), w, spec, nn::FeatureShift::None).features.value();
  return sum(qf * kf).item();
}

struct Errors {
  double out = 0, dq = 0;  // relative errors of the output and of dL/dq
};

// FAVOR+ against exact attention on random inputs of the given norm scale, averaged over samples.
Errors attention_errors(
    int64_t L, int64_t d, int64_t m, bool orthogonal, double scale, int samples) {
  Errors e;
  for (int s = 0; s < samples; ++s) {
    const uint64_t st = 10 + 4 * static_cast<uint64_t>(s);
    const Tensor q = randn({1, 1, L, d}, RngKey{3, st}, kFloat64) * scale;
    const Tensor k = randn({1, 1, L, d}, RngKey{3, st + 1}, kFloat64) * scale;
    const Tensor v = randn({1, 1, L, d}, RngKey{3, st + 2}, kFloat64);
    const Tensor g = randn({1, 1, L, d}, RngKey{3, st + 3}, kFloat64);
    nn::ProjectionOptions po;
    po.features = m;
    po.dim = d;
    po.orthogonal = orthogonal;
    const Tensor w = nn::draw_projection(po, RngKey{4, static_cast<uint64_t>(s)});
    auto run = [&](bool exact, Tensor& out, Tensor& dq) {
      Var vq(q, true), vk(k, true), vv(v, true);
      Var y = exact ? nn::softmax_attention(vq, vk, vv) : nn::favor_attention(vq, vk, vv, Var(w));
      ag::sum(ag::mul(y, Var(g))).backward();
      out = y.value();
      dq = vq.grad();
    };
    Tensor y0, dq0, y1, dq1;
    run(true, y0, dq0);
    run(false, y1, dq1);
    e.out += norm2(y1 - y0) / norm2(y0) / samples;
    e.dq += norm2(dq1 - dq0) / norm2(dq0) / samples;
  }
  return e;
}

bool lesson_random_features(std::ostream& out, bool quick) {
  const int64_t d = 16;
  heading(out, "1. The softmax kernel as an expectation");
  // Two vectors with a small kernel value (they point in opposite directions): the regime in
  // which attention must say "ignore this key", where trigonometric features are bad.
  Tensor q = randn({1, 1, 1, d}, RngKey{1, 0}, kFloat64);
  q = q * (1.2 / norm2(q)) * std::pow(static_cast<double>(d), 0.25);
  // Not exactly -q: for k = -q the positive estimate would be exact (x + y = 0 in Lemma 2).
  Tensor noise = randn({1, 1, 1, d}, RngKey{1, 1}, kFloat64);
  noise = noise * (norm2(q) / norm2(noise));
  const Tensor k = q * -0.8 + noise * 0.4;
  const double exact = std::exp(sum(q * k).item() / std::sqrt(static_cast<double>(d)));
  out << "q . k / sqrt(d) = " << std::log(exact) << ", exact kernel exp(q . k / sqrt d) = " << exact
      << "\n\n   m   positive estimate (mean +- std over draws)   trig estimate\n";
  const int draws = quick ? 60 : 200;
  double mse_pos = 0, mse_trig = 0, mean_pos_big = 0, sd_pos_big = 0;
  for (int64_t m : {16, 256, 4096}) {
    std::vector<double> pos, trig;
    for (int r = 0; r < draws; ++r) {
      const RngKey key{2, static_cast<uint64_t>(r)};
      pos.push_back(kernel_estimate(q, k, nn::FeatureMap::Positive, m, false, key));
      trig.push_back(kernel_estimate(q, k, nn::FeatureMap::Trigonometric, m, false, key));
    }
    auto stats = [](const std::vector<double>& x, double truth, double& mse) {
      double mean = 0, sq = 0;
      for (double v : x) mean += v / x.size();
      for (double v : x) sq += (v - mean) * (v - mean) / (x.size() - 1);
      mse = 0;
      for (double v : x) mse += (v - truth) * (v - truth) / x.size();
      return std::pair<double, double>(mean, std::sqrt(sq));
    };
    double mp, mt;
    const auto [pm, ps] = stats(pos, exact, mp);
    const auto [tm, ts] = stats(trig, exact, mt);
    out << "  " << m << "   " << pm << " +- " << ps << "          " << tm << " +- " << ts << "\n";
    if (m == 256) {
      mse_pos = mp;
      mse_trig = mt;
    }
    if (m == 4096) {
      mean_pos_big = pm;
      sd_pos_big = ps;
    }
  }
  out << "\nBoth are unbiased, but positive features never go negative and their variance is\n"
         "small exactly where the kernel is small; trig features are signed and their variance\n"
         "does not shrink with the kernel value (Performer, Lemma 2). At m = 256: MSE positive "
      << mse_pos << ", trig " << mse_trig << ".\n";

  heading(out, "2. iid vs orthogonal directions, and the error against m");
  const int64_t L = quick ? 64 : 256;
  const int samples = quick ? 3 : 6;
  out << "FAVOR+ (positive) against exact attention, L = " << L << ", d = " << d
      << ", inputs of norm scale 0.5; relative error of the output and of dL/dq\n\n"
      << "   m    iid out   orth out    iid dq   orth dq\n";
  std::vector<Errors> iid, orth;
  for (int64_t m : {16, 64, 256}) {
    iid.push_back(attention_errors(L, d, m, false, 0.5, samples));
    orth.push_back(attention_errors(L, d, m, true, 0.5, samples));
    out << "  " << m << "    " << iid.back().out << "   " << orth.back().out << "   "
        << iid.back().dq << "   " << orth.back().dq << "\n";
  }
  out << "\nx16 features cut the error by x" << iid[0].out / iid[2].out << " (iid) and x"
      << orth[0].out / orth[2].out
      << " (orthogonal): about the 1/sqrt(m) = x4 of a Monte-Carlo estimate. Orthogonal\n"
         "directions (exactly orthogonal blocks, rows rescaled to chi(d) norms) are better on\n"
         "average (Theorem 2); with m = d = 16 there is a single block and little to gain.\n"
         "The gradient is approximated much worse than the output, and a model trained\n"
         "through FAVOR+ follows these gradients.\n";

  heading(out, "3. The error grows exponentially with the input norm");
  out << "  scale   rel. error of the output (orthogonal, m = 64)\n";
  std::vector<double> by_scale;
  for (double scale : {0.25, 0.5, 1.0}) {
    by_scale.push_back(attention_errors(L, d, 64, true, scale, samples).out);
    out << "  " << scale << "    " << by_scale.back() << "\n";
  }
  out << "\nThe estimator's variance grows like exp(|q + k|^2 / sqrt d): large query/key norms\n"
         "(peaked attention) need many more features. Models trained with FAVOR+ learn small\n"
         "norms; that is why a pretrained softmax model does not transfer for free.\n\n";

  bool ok = check(out,
                  "the positive estimate at m = 4096 is within 5 standard errors of the exact "
                  "kernel",
                  std::fabs(mean_pos_big - exact) < 5 * sd_pos_big / std::sqrt(draws) + 1e-12);
  ok &= check(
      out, "for a small kernel value, positive features beat trig features", mse_pos < mse_trig);
  ok &= check(out,
              "16x more features cut the output error by at least 2x (iid and orthogonal)",
              iid[2].out < iid[0].out / 2 && orth[2].out < orth[0].out / 2);
  ok &= check(out,
              "orthogonal features are better than iid on average over m",
              orth[0].out + orth[1].out + orth[2].out < iid[0].out + iid[1].out + iid[2].out);
  ok &= check(out,
              "the gradient error exceeds the output error",
              iid[1].dq > iid[1].out && orth[1].dq > orth[1].out);
  ok &= check(out,
              "the error grows with the input norm",
              by_scale[0] < by_scale[1] && by_scale[1] < by_scale[2]);
  return ok;
}

const Register lesson_3(3, "From softmax attention to random features", lesson_random_features);

}  // namespace
}  // namespace attnlab::lessons
