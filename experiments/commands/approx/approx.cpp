// `attnlab approx`: how good each approximation is against exact softmax attention, in value AND
// in gradient. Written against the public layers API, as a user's own study would be.
//
// For every configuration and sample s (fresh inputs and fresh random features from (seed, s)):
//   q, k ~ N(0, scale^2 I), v ~ N(0, I), all [1, heads, L, d]; a fixed random cotangent G;
//   exact  Y* = softmax attention (fused kernel),   approx Y = FAVOR+ (fused kernel);
//   loss = sum(Y . G) for both, so dL/dq, dL/dk, dL/dv are the vector-Jacobian products with G.
// Metrics (averaged over samples, with the sample std of the MSE):
//   out_mse = mean (Y - Y*)^2;  rel_err = |Y - Y*|_F / |Y*|_F;
//   kl = mean over query rows of KL(A*_i || A_i), where A_i = q'_i K'^T / q'_i . sum_j k'_j is the
//        attention row FAVOR+ implies (materialised only for L <= --kl-max-length; empty for
//        maps whose rows can be negative (trig), where KL is undefined);
//   cos_dX, rel_dX = cosine similarity and relative error of dL/dX against the exact gradient.
// None of the public Performer implementations report gradient agreement; a model trained
// through an approximation follows these gradients, not the exact ones.
//
// --preset fig4 reproduces the setting of the Performer paper's Fig. 4 (L = 4096, d = 16, 15
// samples; MSE against m for positive/trig x iid/orthogonal features) over several input norms,
// which also shows the error's exponential growth with the norm (the MSE of Lemma 2 grows as
// exp(|x + y|^2); docs/derivations/favor_feature_maps.md 2).
#include "experiments/commands/approx/approx.hpp"

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "core/option_binder.hpp"
#include "experiments/support/cli.hpp"
#include "experiments/support/models.hpp"
#include "experiments/support/plot.hpp"
#include "experiments/support/progress.hpp"
#include "experiments/support/table.hpp"
#include "layers/attention/attention_registry.hpp"
#include "layers/attention/favor/favor_attention.hpp"
#include "layers/attention/softmax/softmax_attention.hpp"

namespace attnlab {
namespace {

using ag::Var;

struct MapChoice {
  std::string name;  // as given on the command line
  nn::FeatureMapSpec spec;
};

// A feature map by the registry's name of a FAVOR+ kind (favor, favor-hyp, favor-trig, favor-relu,
// linear-elu: its map, with --epsilon), or by the map's own name (positive, hyperbolic, trig,
// relu, softplus, elu+1: the spellings of the paper's figures, kept for the presets and because
// softplus has no kind of its own).
MapChoice parse_map(const std::string& name, double epsilon) {
  MapChoice c{name, {}};
  const nn::AttentionKind* kind = nn::find_attention_kind(name);
  if (kind != nullptr) {
    const OptionValues defaults = kind->options.defaults();
    try {
      c.spec = defaults.as<nn::FavorOptions>().features;
    } catch (const ValueError&) {
      throw cli::UsageError("--maps: attention kind '" + name + "' has no feature map");
    }
    c.spec.epsilon = epsilon;
    return c;
  }
  c.spec.epsilon = epsilon;
  if (name == "relu" || name == "softplus") {
    c.spec.map = nn::FeatureMap::Generalized;
    c.spec.fn = name == "relu" ? nn::GeneralizedFn::ReLU : nn::GeneralizedFn::Softplus;
    return c;
  }
  try {
    c.spec.map = nn::parse_feature_map(name);
  } catch (const Error&) {
    throw cli::UsageError("--maps: unknown feature map '" + name +
                          "' (a FAVOR+ kind, or positive, hyperbolic, trig, relu, softplus, "
                          "elu+1)");
  }
  if (c.spec.map == nn::FeatureMap::Generalized)
    throw cli::UsageError("--maps: say relu or softplus instead of generalized");
  return c;
}

using approx::agreement;

struct Gradients {
  Tensor out, dq, dk, dv;
};

// Runs `attend` on fresh leaves and returns the output and dL/d(q, k, v) for L = sum(out . g).
template <class Attend>
Gradients run_with_gradients(
    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, Attend attend) {
  Var vq(q, true), vk(k, true), vv(v, true);
  Var out = attend(vq, vk, vv);
  ag::sum(ag::mul(out, Var(g))).backward();
  return {out.value(),
          approx::gradient_or_zeros(vq),
          approx::gradient_or_zeros(vk),
          approx::gradient_or_zeros(vv)};
}

// Mean over query rows of KL(exact_i || approx_i); NaN when some approx weight is <= 0 where the
// exact one is positive (signed features) or L is too large to materialise.
double attention_kl(const Tensor& q,
                    const Tensor& k,
                    const Tensor& projection,
                    const nn::FeatureMapSpec& spec,
                    bool causal) {
  ag::NoGradGuard no_grad;
  const int64_t L = q.size(2), d = q.size(3);
  // Exact weights: softmax of the scaled, masked scores (float64 for a trustworthy reference).
  const Tensor q64 = q.to(kFloat64), k64 = k.to(kFloat64);
  Tensor scores = matmul(q64, k64, false, true) * (1.0 / std::sqrt(static_cast<double>(d)));
  Tensor allowed = ones({L, L}, kFloat64);
  if (causal) {
    double* a = allowed.data<double>();
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = i + 1; j < L; ++j) a[i * L + j] = 0.0;
  }
  scores = where(allowed, scores, full({}, -INFINITY, kFloat64));
  const Tensor exact = softmax(scores, -1);
  // Implied FAVOR+ weights. The query's row-max shift cancels within a row; the keys get none
  // (float64: no overflow at the norms studied).
  const Var p(projection.to(kFloat64));
  const Tensor qf =
      nn::favor_feature_map(Var(q64), p, spec, nn::FeatureShift::RowMax).features.value();
  const Tensor kf =
      nn::favor_feature_map(Var(k64), p, spec, nn::FeatureShift::None).features.value();
  Tensor raw = matmul(qf, kf, false, true) * allowed;
  const Tensor approx = raw / sum(raw, -1, /*keepdim=*/true);
  // KL(p || a) = sum p (log p - log a) over p > 0.
  const auto* pe = exact.data<double>();
  const auto* pa = approx.data<double>();
  double total = 0.0;
  for (int64_t i = 0; i < exact.numel(); ++i) {
    if (pe[i] <= 0.0)
      continue;
    if (!(pa[i] > 0.0))
      return NAN;
    total += pe[i] * (std::log(pe[i]) - std::log(pa[i]));
  }
  return total / static_cast<double>(q.numel() / d);
}

struct Accumulator {
  std::vector<double> mse;
  double rel = 0, kl = 0, cq = 0, rq = 0, ck = 0, rk = 0, cv = 0, rv = 0;
  int n = 0;
  double mse_mean() const {
    double s = 0;
    for (double x : mse) s += x;
    return s / static_cast<double>(mse.size());
  }
  double mse_std() const {
    if (mse.size() < 2)
      return 0.0;
    const double m = mse_mean();
    double s = 0;
    for (double x : mse) s += (x - m) * (x - m);
    return std::sqrt(s / static_cast<double>(mse.size() - 1));
  }
};

// --validate-only stops here, every flag checked.
int flags_are_valid() {
  std::cout << "approx: the flags are valid\n";
  return 0;
}

void add_options(cli::Parser& p) {
  p.options().add_options()(
      "study",
      cli::po::value<std::string>()->default_value("favor"),
      "favor (FAVOR+ feature maps), lisa (LISA codebooks and selection modes) or kinds (any "
      "registered attention kind, built with its defaults)")(
      "kinds",
      cli::po::value<std::string>()->default_value("favor,cosformer,linear-elu"),
      "kinds: the attention kinds to compare (attnlab kinds lists them)")(
      "codebooks",
      cli::po::value<std::string>()->default_value("1x16,8x16,8x32,8x128"),
      "lisa: B x W of the quantizer (comma-separated)")(
      "selections",
      cli::po::value<std::string>()->default_value("st,gumbel-st,soft"),
      "lisa: codeword selection modes (soft, st, gumbel-soft, gumbel-st)")(
      "taus", cli::po::value<std::string>()->default_value("0.7"), "lisa: temperatures")(
      "decay", cli::po::value<double>()->default_value(0.1), "lisa: histogram decay lambda")(
      "preset",
      cli::po::value<std::string>()->default_value("default"),
      "default (L 512, d 64, 5 samples) or fig4 (Performer Fig. 4: L 4096, d 16, 15 samples, "
      "positive and trig); explicit flags override the preset")(
      "maps",
      cli::po::value<std::string>(),
      "feature maps: FAVOR+ kinds (favor, favor-trig, ...) or maps (positive, trig, softplus, "
      "...)")(
      "features", cli::po::value<std::string>(), "random features: iid, orth (comma-separated)")(
      "m", cli::po::value<std::string>(), "numbers of random projections (comma-separated)")(
      "scales", cli::po::value<std::string>(), "input-norm scales of q and k (comma-separated)")(
      "length", cli::po::value<int64_t>(), "sequence length L")(
      "head-dim", cli::po::value<int64_t>(), "head width d")(
      "heads", cli::po::value<int64_t>()->default_value(1), "heads")(
      "samples", cli::po::value<int64_t>(), "samples per configuration")(
      "causal", cli::po::value<bool>()->default_value(false), "causal (prefix-sum) attention")(
      "epsilon", cli::po::value<double>()->default_value(0.0), "additive feature epsilon")(
      "kl-max-length",
      cli::po::value<int64_t>()->default_value(1024),
      "materialise attention rows for the KL only up to this L");
}

approx::LisaStudyOptions parse_lisa_study(const cli::Parser& p) {
  approx::LisaStudyOptions lo;
  lo.codebooks = cli::split_list(p.get<std::string>("codebooks"), "--codebooks");
  lo.selections = cli::split_list(p.get<std::string>("selections"), "--selections");
  for (const auto& s : lo.selections) {
    if (s != "soft" && s != "st" && s != "gumbel-soft" && s != "gumbel-st")
      throw cli::UsageError("--selections: expected soft, st, gumbel-soft or gumbel-st, got '" + s +
                            "'");
  }
  for (const auto& t : cli::split_list(p.get<std::string>("taus"), "--taus")) {
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (end == t.c_str() || *end != '\0' || !(v > 0))
      throw cli::UsageError("--taus: expected positive numbers, got '" + t + "'");
    lo.taus.push_back(v);
  }
  for (const auto& bw : lo.codebooks) {
    if (cli::parse_codebooks(bw, "--codebooks").second > approx::kLisaStudyItems)
      throw cli::UsageError("--codebooks: W must be at most " +
                            std::to_string(approx::kLisaStudyItems));
  }
  lo.length = p.has("length") ? p.get<int64_t>("length") : 256;
  lo.dim = p.has("head-dim") ? p.get<int64_t>("head-dim") : 32;
  lo.samples = p.has("samples") ? p.get<int64_t>("samples") : 3;
  lo.decay = p.get<double>("decay");
  if (lo.length < 1 || lo.dim < 1 || lo.samples < 1)
    throw cli::UsageError("--length, --head-dim and --samples must be >= 1");
  if (!(lo.decay >= 0))
    throw cli::UsageError("--decay: must be >= 0");
  return lo;
}

// The FAVOR+ study's grid and sizes (the preset's values unless a flag overrides them).
struct FavorStudy {
  bool fig4 = false, causal = false;
  int64_t length = 512, head_dim = 64, heads = 1, samples = 5, kl_max_length = 1024;
  std::vector<MapChoice> maps;
  std::vector<bool> orthogonal;
  std::vector<int64_t> ms;
  std::vector<double> scales;
  DType dtype = kFloat32;
  uint64_t seed = 0;
};

std::vector<double> parse_scales(const std::string& text) {
  std::vector<double> scales;
  for (const auto& s : cli::split_list(text, "--scales")) {
    const std::optional<double> scale = parse_number(s);
    if (!scale || !(*scale > 0))
      throw cli::UsageError("--scales: expected positive numbers, got '" + s + "'");
    scales.push_back(*scale);
  }
  return scales;
}

approx::KindsStudyOptions parse_kinds_study(const cli::Parser& p) {
  approx::KindsStudyOptions o;
  o.kinds = cli::split_list(p.get<std::string>("kinds"), "--kinds");
  o.scales = parse_scales(p.has("scales") ? p.get<std::string>("scales") : "0.5,1");
  o.length = p.has("length") ? p.get<int64_t>("length") : 256;
  o.head_dim = p.has("head-dim") ? p.get<int64_t>("head-dim") : 32;
  o.heads = p.get<int64_t>("heads");
  o.samples = p.has("samples") ? p.get<int64_t>("samples") : 3;
  o.causal = p.get<bool>("causal");
  o.dtype = p.common().dtype;
  o.seed = p.common().seed;
  if (o.length < 1 || o.head_dim < 1 || o.heads < 1 || o.samples < 1)
    throw cli::UsageError("--length, --head-dim, --heads and --samples must be >= 1");
  return o;
}

FavorStudy parse_favor_study(const cli::Parser& p) {
  FavorStudy st;
  const std::string preset = p.get<std::string>("preset");
  if (preset != "default" && preset != "fig4")
    throw cli::UsageError("--preset: expected default or fig4, got '" + preset + "'");
  st.fig4 = preset == "fig4";
  auto text = [&](const char* flag, const char* def, const char* fig4_def) {
    return p.has(flag) ? p.get<std::string>(flag) : std::string(st.fig4 ? fig4_def : def);
  };
  auto number = [&](const char* flag, int64_t def, int64_t fig4_def) {
    return p.has(flag) ? p.get<int64_t>(flag) : (st.fig4 ? fig4_def : def);
  };
  st.length = number("length", 512, 4096);
  st.head_dim = number("head-dim", 64, 16);
  st.heads = p.get<int64_t>("heads");
  st.samples = number("samples", 5, 15);
  st.causal = p.get<bool>("causal");
  st.kl_max_length = p.get<int64_t>("kl-max-length");
  const double epsilon = p.get<double>("epsilon");
  if (st.length < 1 || st.head_dim < 1 || st.heads < 1 || st.samples < 1)
    throw cli::UsageError("--length, --head-dim, --heads and --samples must be >= 1");
  if (epsilon < 0)
    throw cli::UsageError("--epsilon: must be >= 0");
  for (const auto& name :
       cli::split_list(text("maps", "positive,hyperbolic,trig", "positive,trig"), "--maps"))
    st.maps.push_back(parse_map(name, epsilon));
  for (const auto& f : cli::split_list(text("features", "iid,orth", "iid,orth"), "--features")) {
    if (f != "iid" && f != "orth")
      throw cli::UsageError("--features: expected iid or orth, got '" + f + "'");
    st.orthogonal.push_back(f == "orth");
  }
  st.ms = cli::parse_int_list(text("m", "16,64,256", "16,32,64,128,256"), "--m");
  for (int64_t m : st.ms)
    if (m < 1)
      throw cli::UsageError("--m: every value must be >= 1");
  st.scales = parse_scales(text("scales", "0.25,0.5,1", "0.5,1,1.5"));
  st.dtype = p.common().dtype;
  st.seed = p.common().seed;
  return st;
}

// Inputs and exact results per (scale, sample), shared by every approximate configuration.
class ExactCache {
 public:
  struct Entry {
    Tensor q, k, v, g;
    Gradients grads;
  };
  explicit ExactCache(const FavorStudy& st) : st_(st) { mask_.causal = st.causal; }
  const Entry& get(size_t scale_index, int64_t sample) {
    auto it = entries_.find({scale_index, sample});
    if (it != entries_.end())
      return it->second;
    const uint64_t stream = static_cast<uint64_t>(sample) * 4;
    const Shape s{1, st_.heads, st_.length, st_.head_dim};
    Entry e;
    e.q = randn(s, RngKey{st_.seed, stream}, st_.dtype) * st_.scales[scale_index];
    e.k = randn(s, RngKey{st_.seed, stream + 1}, st_.dtype) * st_.scales[scale_index];
    e.v = randn(s, RngKey{st_.seed, stream + 2}, st_.dtype);
    e.g = randn(s, RngKey{st_.seed, stream + 3}, st_.dtype);
    e.grads = run_with_gradients(e.q, e.k, e.v, e.g, [&](const Var& q, const Var& k, const Var& v) {
      return nn::softmax_attention(q, k, v, mask_, nn::SoftmaxImpl::Fused);
    });
    return entries_.emplace(std::make_pair(scale_index, sample), std::move(e)).first->second;
  }

 private:
  const FavorStudy& st_;
  nn::AttentionMask mask_;
  std::map<std::pair<size_t, int64_t>, Entry> entries_;
};

// One FAVOR+ configuration on one sample, added to the accumulator.
void measure_sample(const FavorStudy& st,
                    const MapChoice& mc,
                    bool orth,
                    int64_t m,
                    int64_t sample,
                    const ExactCache::Entry& e,
                    Accumulator& acc,
                    bool& kl_defined) {
  const bool projected = nn::uses_projection(mc.spec.map);
  nn::ProjectionOptions po;
  po.features = m;
  po.dim = st.head_dim;
  po.orthogonal = orth;
  // Every configuration of a sample sees the same Gaussian stream: iid vs orth and the m sweep
  // differ only in construction (common random numbers: lower-variance comparisons).
  const Tensor w =
      projected
          ? draw_projection(po, RngKey{st.seed + 1, static_cast<uint64_t>(sample)}).to(st.dtype)
          : Tensor();
  nn::FavorAttentionOptions fo;
  fo.features = mc.spec;
  nn::AttentionMask mask;
  mask.causal = st.causal;
  const Gradients a =
      run_with_gradients(e.q, e.k, e.v, e.g, [&](const Var& q, const Var& k, const Var& v) {
        return nn::favor_attention(q, k, v, w.defined() ? Var(w) : Var(), mask, fo);
      });
  const Tensor diff = a.out - e.grads.out;
  acc.mse.push_back(sum(diff * diff).item() / static_cast<double>(diff.numel()));
  acc.rel += agreement(a.out, e.grads.out).second;
  auto [cq, rq] = agreement(a.dq, e.grads.dq);
  auto [ck, rk] = agreement(a.dk, e.grads.dk);
  auto [cv, rv] = agreement(a.dv, e.grads.dv);
  acc.cq += cq, acc.rq += rq, acc.ck += ck, acc.rk += rk, acc.cv += cv, acc.rv += rv;
  if (kl_defined && projected) {
    const double kl = attention_kl(e.q, e.k, w, mc.spec, st.causal);
    kl_defined = std::isfinite(kl);
    acc.kl += kl;
  } else {
    kl_defined = false;
  }
  ++acc.n;
}

cli::Table favor_table() {
  return cli::Table({"map",
                     "features",
                     "m",
                     "scale",
                     "L",
                     "d",
                     "causal",
                     "samples",
                     "out_mse",
                     "mse_std",
                     "rel_err",
                     "kl",
                     "cos_dq",
                     "rel_dq",
                     "cos_dk",
                     "rel_dk",
                     "cos_dv",
                     "rel_dv"});
}

// Every (map, iid/orth, m, scale) configuration over the samples: one row each.
cli::Table run_favor_study(const FavorStudy& st) {
  cli::Table table = favor_table();
  int64_t total = 0;
  for (const auto& mc : st.maps)
    total += static_cast<int64_t>(
                 nn::uses_projection(mc.spec.map) ? st.orthogonal.size() * st.ms.size() : 1) *
             static_cast<int64_t>(st.scales.size()) * st.samples;
  cli::Progress progress(total, "approx");
  ExactCache exact(st);
  for (const auto& mc : st.maps) {
    const bool projected = nn::uses_projection(mc.spec.map);
    // elu+1 has no random features: one row per scale.
    const std::vector<bool> orth_list = projected ? st.orthogonal : std::vector<bool>{false};
    const std::vector<int64_t> m_list = projected ? st.ms : std::vector<int64_t>{st.head_dim};
    for (bool orth : orth_list) {
      for (int64_t m : m_list) {
        for (size_t si = 0; si < st.scales.size(); ++si) {
          Accumulator acc;
          bool kl_defined = st.length <= st.kl_max_length;
          for (int64_t s = 0; s < st.samples; ++s) {
            measure_sample(st, mc, orth, m, s, exact.get(si, s), acc, kl_defined);
            progress.step(1, mc.name + (orth ? " orth" : " iid") + " m=" + std::to_string(m));
          }
          const double n = acc.n;
          table.add_row({mc.name,
                         projected ? (orth ? "orth" : "iid") : "-",
                         m,
                         cli::Cell(st.scales[si], 2),
                         st.length,
                         st.head_dim,
                         st.causal ? "yes" : "no",
                         st.samples,
                         cli::Cell::sci(acc.mse_mean()),
                         cli::Cell::sci(acc.mse_std()),
                         cli::Cell::sci(acc.rel / n),
                         kl_defined ? cli::Cell::sci(acc.kl / n) : cli::Cell(""),
                         cli::Cell(acc.cq / n, 4),
                         cli::Cell::sci(acc.rq / n),
                         cli::Cell(acc.ck / n, 4),
                         cli::Cell::sci(acc.rk / n),
                         cli::Cell(acc.cv / n, 4),
                         cli::Cell::sci(acc.rv / n)});
        }
      }
    }
  }
  return table;
}

cli::PlotSpec log_plot(const std::string& stem,
                       std::string title,
                       std::string x,
                       std::string y,
                       std::vector<std::string> group,
                       bool log_x) {
  cli::PlotSpec ps;
  ps.title = std::move(title);
  ps.x = std::move(x);
  ps.y = std::move(y);
  ps.group = std::move(group);
  ps.log_x = log_x;
  ps.log_y = true;
  ps.data = stem;
  return ps;
}

void write_favor_outputs(const FavorStudy& st, const cli::Table& table, const std::string& out) {
  const std::string stem = st.fig4 ? "approx_fig4" : "approx_favor";
  table.write(out, stem);
  table.write(out, "result");  // what `attnlab sweep --command approx` collects
  const std::string sizes =
      "(L = " + std::to_string(st.length) + ", d = " + std::to_string(st.head_dim) + ")";
  bool made = cli::plot(table,
                        out,
                        stem + "_mse_vs_m",
                        log_plot(stem,
                                 "FAVOR+ output MSE against m " + sizes,
                                 "m",
                                 "out_mse",
                                 {"map", "features", "scale"},
                                 true));
  made = cli::plot(table,
                   out,
                   stem + "_err_vs_scale",
                   log_plot(stem,
                            "FAVOR+ relative error against the input-norm scale",
                            "scale",
                            "rel_err",
                            {"map", "features", "m"},
                            false)) &&
         made;
  made = cli::plot(table,
                   out,
                   stem + "_dq_vs_m",
                   log_plot(stem,
                            "Gradient agreement: relative error of dL/dq against m",
                            "m",
                            "rel_dq",
                            {"map", "features", "scale"},
                            true)) &&
         made;
  std::cout << "wrote " << out << "/" << stem << ".csv, .jsonl" << (made ? " and plots (.png)" : "")
            << "\n";
}

// parse -> run the chosen study -> report.
int run_approx(int argc, char** argv) {
  cli::Parser p("approx",
                "[--study favor|lisa|kinds] [--preset default|fig4] [--maps LIST] [options]");
  p.enable_validate_only();
  add_options(p);
  if (!p.parse(argc, argv))
    return 0;
  if (p.common().threads > 0)
    set_num_threads(p.common().threads);
  const std::string study = p.get<std::string>("study");
  if (study != "favor" && study != "lisa" && study != "kinds")
    throw cli::UsageError("--study: expected favor, lisa or kinds, got '" + study + "'");
  if (study == "kinds") {
    const approx::KindsStudyOptions ko = parse_kinds_study(p);
    return p.validate_only() ? flags_are_valid() : approx::run_kinds_study(p, ko);
  }
  if (study == "lisa") {
    // The LISA study computes in float64 throughout: another --dtype is refused, not ignored.
    if (p.given("dtype") && p.common().dtype != kFloat64)
      throw cli::UsageError("--dtype: approx --study lisa runs in float64 only");
    const approx::LisaStudyOptions lo = parse_lisa_study(p);
    return p.validate_only() ? flags_are_valid() : approx::run_lisa_study(p, lo);
  }
  const FavorStudy st = parse_favor_study(p);
  if (p.validate_only())
    return flags_are_valid();
  const cli::Table table = run_favor_study(st);
  std::cout << "FAVOR+ against exact softmax attention ("
            << (st.causal ? "causal" : "bidirectional") << ", " << dtype_name(st.dtype) << ", seed "
            << st.seed << "; gradients of sum(out . G))\n";
  table.print(std::cout);
  if (!p.common().out.empty())
    write_favor_outputs(st, table, p.common().out);
  return 0;
}

const cli::Register approx_command(
    "approx",
    "approximation error against exact attention, in value and gradient (FAVOR+, LISA, any kind)",
    run_approx,
    cli::Validates::Yes);

}  // namespace
}  // namespace attnlab
