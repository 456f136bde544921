#include "autograd/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "autograd/engine.hpp"
#include "core/core.hpp"

namespace attnlab::ag {
namespace {

struct Problem {
  std::vector<Tensor> x;  // the inputs, in the dtype the check runs in
  std::vector<bool> wrt;
  std::vector<Var> params;  // captured leaves, checked after the inputs
  // Input i for i < x.size(), else parameter i - x.size(): the tensor to perturb.
  std::size_t count() const { return x.size() + params.size(); }
};

Problem prepare(const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
  Problem p;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    ATTNLAB_CHECK(t.defined(), ValueError, "gradcheck: input ", i, " is undefined");
    const bool floating = is_floating(t.dtype());
    p.x.push_back(floating && o.cast_to_double ? t.to(kFloat64) : t.clone());
    const bool wanted = o.wrt.empty() ? floating : (i < o.wrt.size() && o.wrt[i]);
    ATTNLAB_CHECK(!wanted || floating,
                  DTypeError,
                  "gradcheck: input ",
                  i,
                  " is ",
                  t.dtype(),
                  " and cannot be differentiated");
    p.wrt.push_back(wanted);
  }
  for (std::size_t i = 0; i < o.params.size(); ++i) {
    const Var& v = o.params[i];
    ATTNLAB_CHECK(v.defined() && v.requires_grad() && v.is_leaf(),
                  ValueError,
                  "gradcheck: params[",
                  i,
                  "] must be a leaf that requires grad");
    ATTNLAB_CHECK(!o.cast_to_double || v.dtype() == kFloat64,
                  DTypeError,
                  "gradcheck: params[",
                  i,
                  "] is ",
                  v.dtype(),
                  "; convert the module to float64 first (Module::to)");
  }
  p.params = o.params;
  ATTNLAB_CHECK(std::count(p.wrt.begin(), p.wrt.end(), true) > 0 || !p.params.empty(),
                ValueError,
                "gradcheck: no input to differentiate (pass float inputs or set options.wrt)");
  return p;
}

// f's output values without recording a graph. Copies: an output may share storage with an input
// (reshape does), and inputs are perturbed and restored in place.
std::vector<Tensor> evaluate(const GradcheckFn& f, const std::vector<Tensor>& x) {
  NoGradGuard no_grad;
  std::vector<Var> vars;
  for (const Tensor& t : x) vars.push_back(constant(t));
  std::vector<Tensor> out;
  for (const Var& v : f(vars)) out.push_back(v.value().clone());
  return out;
}

// The graph of f at x, for repeated vector-Jacobian products.
class Vjp {
 public:
  Vjp(const GradcheckFn& f, const Problem& p) {
    EnableGradGuard grad_on;
    for (std::size_t i = 0; i < p.x.size(); ++i) params_.push_back(Var(p.x[i], p.wrt[i]));
    captured_ = p.params;
    outputs_ = f(params_);
    ATTNLAB_CHECK(!outputs_.empty(), ValueError, "gradcheck: the function returned no outputs");
    const DType want = work_dtype(p);
    for (std::size_t o = 0; o < outputs_.size(); ++o) {
      ATTNLAB_CHECK(outputs_[o].dtype() == want,
                    DTypeError,
                    "gradcheck: output ",
                    o,
                    " is ",
                    outputs_[o].dtype(),
                    " but the inputs are ",
                    want,
                    " (compute in the inputs' dtype)");
    }
  }
  const std::vector<Var>& outputs() const { return outputs_; }

  // Gradients of sum_o <v_o, out_o> with respect to every input (zeros for non-wrt inputs).
  std::vector<Tensor> operator()(const std::vector<Tensor>& v) {
    for (const Var& p : params_) p.zero_grad();
    for (const Var& p : captured_) p.zero_grad();
    std::vector<Var> roots;
    std::vector<Tensor> grads;
    for (std::size_t o = 0; o < outputs_.size(); ++o) {
      if (!outputs_[o].requires_grad())
        continue;  // does not depend on any wrt input
      roots.push_back(outputs_[o]);
      grads.push_back(v[o]);
    }
    if (!roots.empty())
      backward(roots, grads, /*retain_graph=*/true);
    std::vector<Tensor> g;
    for (const Var& p : params_) {
      g.push_back(p.has_grad() ? p.grad().clone() : zeros(p.shape(), p.dtype()));
    }
    for (const Var& p : captured_) {
      g.push_back(p.has_grad() ? p.grad().clone() : zeros(p.shape(), p.dtype()));
    }
    return g;
  }

 private:
  static DType work_dtype(const Problem& p) {
    const auto it = std::find(p.wrt.begin(), p.wrt.end(), true);
    return it != p.wrt.end() ? p.x[it - p.wrt.begin()].dtype() : p.params[0].dtype();
  }
  std::vector<Var> params_;
  std::vector<Var> captured_;
  std::vector<Var> outputs_;
};

std::vector<int64_t> unravel(int64_t flat, const Shape& s) {
  std::vector<int64_t> idx(s.rank());
  for (int d = s.rank() - 1; d >= 0; --d) {
    idx[d] = s[d] ? flat % s[d] : 0;
    flat = s[d] ? flat / s[d] : 0;
  }
  return idx;
}

void add_at(const Tensor& t, int64_t i, double delta) {
  dispatch_float(t.dtype(), "gradcheck", [&](auto tag) {
    using T = decltype(tag);
    t.data<T>()[i] = static_cast<T>(static_cast<double>(t.data<T>()[i]) + delta);
  });
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += a.flat(i) * b.flat(i);
  return s;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// Whether entry i of a Vjp result (inputs, then captured parameters) is being checked.
bool checked(const Problem& p, std::size_t i) {
  return i >= p.x.size() || p.wrt[i];
}

// The tensor to perturb for entry i (an input copy, or a parameter's live value).
const Tensor& target(const Problem& p, std::vector<Tensor>& x, std::size_t i) {
  return i < x.size() ? x[i] : p.params[i - x.size()].value();
}

// Checks shared by both modes: reentrancy and linearity in the output gradient.
void common_checks(Vjp& vjp, const Problem& p, const GradcheckOptions& o, GradcheckResult& r) {
  std::vector<Tensor> v, zero;
  uint64_t stream = 9000;
  for (const Var& out : vjp.outputs()) {
    v.push_back(randn(out.shape(), RngKey{o.seed, stream++}, out.dtype()));
    zero.push_back(zeros(out.shape(), out.dtype()));
  }
  const auto g1 = vjp(v), g2 = vjp(v);
  for (std::size_t i = 0; i < g1.size(); ++i) {
    if (checked(p, i) && !bit_equal(g1[i], g2[i])) {
      r.ok = false;
      r.problems.push_back(
          "backward is not reentrant: two runs gave different gradients for "
          "input " +
          std::to_string(i));
    }
  }
  const auto gz = vjp(zero);
  for (std::size_t i = 0; i < gz.size(); ++i) {
    if (checked(p, i) && max_abs_diff(gz[i], zeros_like(gz[i])) != 0) {
      r.ok = false;
      r.problems.push_back(
          "backward is not linear in the output gradient: a zero output "
          "gradient gave a non-zero gradient for input " +
          std::to_string(i));
    }
  }
}

// The output element of a Jacobian entry (slow mode; none for a vector-Jacobian product).
struct OutputElement {
  int64_t flat = -1;
  const Shape* shape = nullptr;  // the output's (not copied per entry)
};

void record(GradcheckResult& r,
            const GradcheckOptions& o,
            int out,
            int in,
            int64_t flat,
            const Shape& shape,
            double a,
            double n,
            std::vector<std::pair<double, GradcheckMismatch>>& bad,
            const OutputElement& at = {}) {
  const double err = std::fabs(a - n);
  const double excess = err - (o.atol + o.rtol * std::fabs(n));
  if (std::isnan(err) || err > r.max_abs_error)
    r.max_abs_error = std::isnan(err) ? INFINITY : err;
  // Relative to the numeric value, floored at atol: where the numeric derivative is ~0 (padded
  // positions, exact zeros up to rounding) a ratio to 1e-17 would report noise as 1e+283.
  const double rel = err / std::max(std::fabs(n), o.atol);
  if (err > 0 && (std::isnan(rel) || rel > r.max_rel_error)) {
    r.max_rel_error = std::isnan(rel) ? INFINITY : rel;
  }
  if (std::isnan(excess) || excess > 0) {
    r.ok = false;
    GradcheckMismatch m;
    m.output = out;
    m.input = in;
    m.flat_index = flat;
    m.index = unravel(flat, shape);
    m.analytic = a;
    m.numeric = n;
    if (at.flat >= 0) {
      m.output_flat_index = at.flat;
      m.output_index = unravel(at.flat, *at.shape);
    }
    bad.push_back({std::isnan(excess) ? INFINITY : excess, std::move(m)});
  }
}

// Keeps the `max` worst mismatches and states how many there were ("<count> <what>").
void keep_worst(GradcheckResult& r,
                std::vector<std::pair<double, GradcheckMismatch>>& bad,
                int max,
                const std::string& what) {
  std::sort(bad.begin(), bad.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  for (std::size_t i = 0; i < bad.size() && static_cast<int>(i) < max; ++i) {
    r.worst.push_back(bad[i].second);
  }
  if (!bad.empty())
    r.problems.push_back(std::to_string(bad.size()) + " " + what);
}

GradcheckResult slow(const GradcheckFn& f, const Problem& p, const GradcheckOptions& o) {
  GradcheckResult r;
  r.mode = "slow";
  Vjp vjp(f, p);
  const auto& outs = vjp.outputs();
  // Analytic Jacobian: one VJP per output element (row by row).
  std::vector<std::vector<std::vector<Tensor>>> rows(outs.size());  // [out][elem][input]
  for (std::size_t oi = 0; oi < outs.size(); ++oi) {
    for (int64_t e = 0; e < outs[oi].numel(); ++e) {
      std::vector<Tensor> v;
      for (std::size_t k = 0; k < outs.size(); ++k)
        v.push_back(zeros(outs[k].shape(), outs[k].dtype()));
      add_at(v[oi], e, 1.0);
      rows[oi].push_back(vjp(v));
    }
  }
  // Numeric Jacobian: central differences, column by column, compared as we go. Inputs are
  // perturbed on copies; captured parameters in place (restored exactly afterwards).
  std::vector<std::pair<double, GradcheckMismatch>> bad;
  for (std::size_t i = 0; i < p.count(); ++i) {
    if (!checked(p, i))
      continue;
    std::vector<Tensor> x = p.x;
    if (i < p.x.size())
      x[i] = p.x[i].clone();
    const Tensor& t = target(p, x, i);
    const Tensor original = t.clone();
    for (int64_t j = 0; j < t.numel(); ++j) {
      add_at(t, j, o.eps);
      const auto fp = evaluate(f, x);
      t.copy_from(original);
      add_at(t, j, -o.eps);
      const auto fm = evaluate(f, x);
      t.copy_from(original);
      for (std::size_t oi = 0; oi < outs.size(); ++oi) {
        ATTNLAB_CHECK(fp[oi].shape() == outs[oi].shape(),
                      ShapeError,
                      "gradcheck: output ",
                      oi,
                      " changed shape under a perturbation of input ",
                      i);
        for (int64_t e = 0; e < outs[oi].numel(); ++e) {
          const double numeric = (fp[oi].flat(e) - fm[oi].flat(e)) / (2 * o.eps);
          const double analytic = rows[oi][e][i].flat(j);
          record(r,
                 o,
                 static_cast<int>(oi),
                 static_cast<int>(i),
                 j,
                 t.shape(),
                 analytic,
                 numeric,
                 bad,
                 OutputElement{e, &outs[oi].shape()});
        }
      }
    }
  }
  keep_worst(r, bad, o.max_reported, "Jacobian entries differ beyond atol + rtol * |numeric|");
  common_checks(vjp, p, o, r);
  return r;
}

GradcheckResult fast(const GradcheckFn& f, const Problem& p, const GradcheckOptions& o) {
  GradcheckResult r;
  r.mode = "fast";
  Vjp vjp(f, p);
  const auto& outs = vjp.outputs();
  std::vector<std::pair<double, GradcheckMismatch>> bad;
  for (int trial = 0; trial < o.fast_trials; ++trial) {
    // Directions with positive entries and unit norm (PyTorch's choice; the atol scales with
    // their sums).
    std::vector<Tensor> u, v;
    double sum_u = 0, sum_v = 0, norm_u = 0;
    // Inputs that are not checked (int64 indices among them) get no direction (undefined).
    std::vector<Tensor> x0 = p.x;
    for (std::size_t i = 0; i < p.count(); ++i) {
      const Tensor& t = target(p, x0, i);
      const RngKey key{o.seed, 1000 * static_cast<uint64_t>(trial) + 100 + i};
      u.push_back(checked(p, i) ? rand(t.shape(), key, t.dtype()) : Tensor());
      if (u[i].defined())
        norm_u += dot(u[i], u[i]);
    }
    for (Tensor& ui : u) {
      if (!ui.defined())
        continue;
      scale_(ui, 1.0 / std::sqrt(norm_u));
      sum_u += sum(ui).item();
    }
    for (std::size_t k = 0; k < outs.size(); ++k) {
      const Var& out = outs[k];
      const RngKey key{o.seed, 1000 * static_cast<uint64_t>(trial) + 500 + k};
      Tensor vi = rand(out.shape(), key, out.dtype());
      const double n = std::sqrt(dot(vi, vi));
      if (n > 0)
        scale_(vi, 1.0 / n);
      sum_v += sum(vi).item();
      v.push_back(vi);
    }
    // f(x + eps u) and f(x - eps u), moving inputs and captured parameters together.
    std::vector<Tensor> originals;
    for (const Var& prm : p.params) originals.push_back(prm.value().clone());
    auto shifted = [&](double sgn) {
      std::vector<Tensor> x = p.x;
      for (std::size_t i = 0; i < p.x.size(); ++i) {
        if (p.wrt[i])
          x[i] = attnlab::add(p.x[i], attnlab::mul(u[i], sgn * o.eps));
      }
      for (std::size_t k = 0; k < p.params.size(); ++k) {
        p.params[k].value().copy_from(
            attnlab::add(originals[k], attnlab::mul(u[p.x.size() + k], sgn * o.eps)));
      }
      auto values = evaluate(f, x);
      for (std::size_t k = 0; k < p.params.size(); ++k) p.params[k].value().copy_from(originals[k]);
      return values;
    };
    const auto fp = shifted(1.0), fm = shifted(-1.0);
    double numeric = 0;
    for (std::size_t oi = 0; oi < outs.size(); ++oi) {
      numeric += dot(attnlab::div(attnlab::sub(fp[oi], fm[oi]), 2 * o.eps), v[oi]);
    }
    const auto g = vjp(v);
    double analytic = 0;
    for (std::size_t i = 0; i < g.size(); ++i) {
      if (u[i].defined())
        analytic += dot(g[i], u[i]);
    }
    GradcheckOptions scaled = o;
    scaled.atol = o.atol * sum_u * sum_v;
    record(r, scaled, -1, -1, trial, Shape{}, analytic, numeric, bad);
  }
  if (!bad.empty()) {
    r.problems.push_back("fast mode: v^T J u differs from the finite difference in " +
                         std::to_string(bad.size()) + " of " + std::to_string(o.fast_trials) +
                         " random projections (analytic " + std::to_string(bad[0].second.analytic) +
                         ", numeric " + std::to_string(bad[0].second.numeric) + ")");
  }
  common_checks(vjp, p, o, r);
  return r;
}

}  // namespace

GradcheckOptions GradcheckOptions::float32() {
  GradcheckOptions o;
  o.eps = 3e-2;
  o.rtol = 2e-2;
  o.atol = 1e-3;
  o.cast_to_double = false;
  return o;
}

GradcheckResult gradcheck(const GradcheckFn& f,
                          const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  const Problem p = prepare(inputs, options);
  if (!options.fast_mode)
    return slow(f, p, options);
  GradcheckResult r = fast(f, p, options);
  int64_t total = 0;
  for (const Tensor& t : p.x) total += t.numel();
  for (const Var& v : p.params) total += v.numel();
  if (!r.ok && total <= options.slow_fallback_limit) {
    GradcheckResult detail = slow(f, p, options);
    detail.mode = "fast (failed), re-checked in slow mode";
    detail.ok = false;
    detail.problems.insert(detail.problems.begin(), r.problems.begin(), r.problems.end());
    return detail;
  }
  return r;
}

GradcheckResult gradcheck(const std::function<Var(const std::vector<Var>&)>& f,
                          const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  return gradcheck(GradcheckFn([f](const std::vector<Var>& x) { return std::vector<Var>{f(x)}; }),
                   inputs,
                   options);
}

GradcheckResult check_straight_through(const GradcheckFn& st,
                                       const GradcheckFn& hard,
                                       const GradcheckFn& surrogate,
                                       const std::vector<Tensor>& inputs,
                                       uint64_t seed,
                                       const std::vector<Var>& params) {
  GradcheckOptions o;
  o.seed = seed;
  o.params = params;
  const Problem p = prepare(inputs, o);
  GradcheckResult r;
  r.mode = "straight-through";
  const auto st_values = evaluate(st, p.x), hard_values = evaluate(hard, p.x);
  ATTNLAB_CHECK(st_values.size() == hard_values.size(),
                ValueError,
                "check_straight_through: st and hard return different numbers of outputs");
  for (std::size_t k = 0; k < st_values.size(); ++k) {
    if (!bit_equal(st_values[k], hard_values[k])) {
      r.ok = false;
      r.problems.push_back("forward of output " + std::to_string(k) +
                           " differs from the hard function (max diff " +
                           std::to_string(max_abs_diff(st_values[k], hard_values[k])) + ")");
    }
  }
  Vjp st_vjp(st, p), sur_vjp(surrogate, p);
  std::vector<Tensor> v;
  for (std::size_t k = 0; k < st_vjp.outputs().size(); ++k) {
    v.push_back(randn(st_vjp.outputs()[k].shape(), RngKey{seed, 77 + k}, kFloat64));
  }
  const auto g_st = st_vjp(v), g_sur = sur_vjp(v);
  std::vector<std::pair<double, GradcheckMismatch>> bad;
  GradcheckOptions tight;
  tight.atol = 1e-12;
  tight.rtol = 1e-12;
  for (std::size_t i = 0; i < g_st.size(); ++i) {
    if (!checked(p, i))
      continue;
    for (int64_t j = 0; j < g_st[i].numel(); ++j) {
      record(r,
             tight,
             0,
             static_cast<int>(i),
             j,
             g_st[i].shape(),
             g_st[i].flat(j),
             g_sur[i].flat(j),
             bad);
    }
  }
  keep_worst(r,
             bad,
             5,
             "gradient entries differ from the surrogate's gradient (analytic = "
             "straight-through, numeric = surrogate)");
  return r;
}

std::string GradcheckResult::report() const {
  std::ostringstream os;
  os << "gradcheck (" << mode << "): " << (ok ? "PASS" : "FAIL") << ", max abs error "
     << max_abs_error << ", max rel error " << max_rel_error << "\n";
  for (const std::string& p : problems) os << "  - " << p << "\n";
  for (const GradcheckMismatch& m : worst) {
    auto print_index = [&os](const std::vector<int64_t>& index, int64_t flat) {
      os << "[";
      for (std::size_t k = 0; k < index.size(); ++k) os << (k ? ", " : "") << index[k];
      os << "] (flat " << flat << ")";
    };
    os << "  output " << m.output;
    if (m.output_flat_index >= 0) {  // d out[e] / d in[j]: which e
      os << " at ";
      print_index(m.output_index, m.output_flat_index);
    }
    os << " wrt input " << m.input << " at ";
    print_index(m.index, m.flat_index);
    os << ": analytic " << m.analytic << ", numeric " << m.numeric << "\n";
  }
  return os.str();
}

}  // namespace attnlab::ag
