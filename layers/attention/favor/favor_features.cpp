// FAVOR+ random projections: iid and block-orthogonal (Householder QR with the sign fix), chi or
// fixed row norms, and the redraw schedule. See favor_features.hpp and
// docs/derivations/favor_feature_maps.md 3.
#include "layers/attention/favor/favor_features.hpp"

#include <cmath>
#include <sstream>
#include <vector>

#include "core/core.hpp"

namespace attnlab::nn {
namespace {

// splitmix64 finaliser: decorrelates the sub-keys of one draw (blocks, norms).
inline uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// An independent stream of the same draw for `purpose` (0: Gaussian blocks, 1: norms) and block.
inline RngKey sub_key(RngKey key, uint64_t purpose, uint64_t block) {
  return RngKey{mix(key.seed ^ mix((purpose << 40) ^ block)), key.stream};
}

constexpr uint64_t kFavorTag = 0xFA7050F7A77E0001ull;

}  // namespace


const EnumNames<FeatureNorm>& enum_names(FeatureNorm) {
  static const EnumNames<FeatureNorm> names{
      {FeatureNorm::Chi, "chi", "chi(d) row norms: unbiased"},
      {FeatureNorm::Fixed, "fixed", "every row sqrt(d): lower variance, biased"},
      {FeatureNorm::Fixed, "sqrt-d", "same as fixed"}};
  return names;
}
const char* feature_norm_name(FeatureNorm n) {
  return enum_names(n).name(n);
}
FeatureNorm parse_feature_norm(const std::string& s) {
  return enum_names(FeatureNorm{}).parse(s, "feature norm");
}

const EnumNames<RedrawPolicy>& enum_names(RedrawPolicy) {
  static const EnumNames<RedrawPolicy> names{
      {RedrawPolicy::Never, "never", "draw once"},
      {RedrawPolicy::EveryNCalls, "every-n", "every --redraw-interval training calls"},
      {RedrawPolicy::EveryCall, "every-call", "at every training call"}};
  return names;
}
const char* redraw_policy_name(RedrawPolicy p) {
  return enum_names(p).name(p);
}
RedrawPolicy parse_redraw_policy(const std::string& s) {
  return enum_names(RedrawPolicy{}).parse(s, "redraw policy");
}

void householder_qr(double* a, double* r_diag, int64_t n) {
  // Reflectors H_k = I - 2 v_k v_k^T (|v_k| = 1) stored as the rows of vs; R overwrites a.
  std::vector<double> vs(static_cast<std::size_t>(n * n), 0.0);
  std::vector<char> reflect(static_cast<std::size_t>(n), 0);
  for (int64_t k = 0; k < n; ++k) {
    double norm2 = 0;
    for (int64_t i = k; i < n; ++i) norm2 += a[i * n + k] * a[i * n + k];
    const double x0 = a[k * n + k];
    // LAPACK's dlarfg: no reflector for the last column or for a column that is already zero
    // below the diagonal; otherwise R_kk = -sign(x0) |x|.
    if (k == n - 1 || norm2 - x0 * x0 <= 0) {
      r_diag[k] = x0;
      continue;
    }
    const double norm = std::sqrt(norm2);
    const double alpha = x0 >= 0 ? -norm : norm;
    double* v = vs.data() + k * n;
    v[k] = x0 - alpha;
    for (int64_t i = k + 1; i < n; ++i) v[i] = a[i * n + k];
    double vn = 0;
    for (int64_t i = k; i < n; ++i) vn += v[i] * v[i];
    vn = std::sqrt(vn);
    for (int64_t i = k; i < n; ++i) v[i] /= vn;
    for (int64_t j = k; j < n; ++j) {  // A[k:, k:] -= 2 v (v^T A[k:, k:])
      double s = 0;
      for (int64_t i = k; i < n; ++i) s += v[i] * a[i * n + j];
      for (int64_t i = k; i < n; ++i) a[i * n + j] -= 2 * s * v[i];
    }
    r_diag[k] = alpha;
    reflect[k] = 1;
  }
  // Q = H_0 H_1 ... H_(n-2): apply the reflectors to the identity, the last one first.
  for (int64_t i = 0; i < n * n; ++i) a[i] = 0;
  for (int64_t i = 0; i < n; ++i) a[i * n + i] = 1;
  for (int64_t k = n - 1; k >= 0; --k) {
    if (!reflect[k])
      continue;
    const double* v = vs.data() + k * n;
    for (int64_t j = k; j < n; ++j) {
      double s = 0;
      for (int64_t i = k; i < n; ++i) s += v[i] * a[i * n + j];
      for (int64_t i = k; i < n; ++i) a[i * n + j] -= 2 * s * v[i];
    }
  }
}

Tensor random_orthogonal(int64_t d, RngKey key, bool sign_fix) {
  ATTNLAB_CHECK(d >= 1, ValueError, "random_orthogonal: d must be >= 1, got ", d);
  Tensor q = randn({d, d}, key, kFloat64);
  std::vector<double> r(static_cast<std::size_t>(d));
  double* a = q.data<double>();
  householder_qr(a, r.data(), d);
  if (sign_fix) {
    for (int64_t j = 0; j < d; ++j) {
      if (r[j] < 0)
        for (int64_t i = 0; i < d; ++i) a[i * d + j] = -a[i * d + j];
    }
  }
  return q;
}

Tensor draw_projection(const ProjectionOptions& o, RngKey key) {
  ATTNLAB_CHECK(o.features >= 1 && o.dim >= 1,
                ValueError,
                "draw_projection: features and dim must be >= 1, got features ",
                o.features,
                ", dim ",
                o.dim);
  const int64_t m = o.features, d = o.dim;
  Tensor w = Tensor::empty({m, d}, kFloat64);
  double* pw = w.data<double>();
  if (!o.orthogonal) {
    Tensor g = randn({m, d}, sub_key(key, 0, 0), kFloat64);
    w.copy_from(g);
  } else {
    const int64_t blocks = (m + d - 1) / d;
    for (int64_t b = 0; b < blocks; ++b) {
      const Tensor q = random_orthogonal(d, sub_key(key, 0, static_cast<uint64_t>(b)), true);
      const double* pq = q.data<double>();
      const int64_t rows = std::min(d, m - b * d);
      // Block rows = rows of Q^T = columns of Q (orthonormal).
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < d; ++j) pw[(b * d + i) * d + j] = pq[j * d + i];
    }
  }
  // Row norms. iid + Chi: the Gaussian rows already have chi(d) norms.
  if (o.orthogonal || o.norm == FeatureNorm::Fixed) {
    Tensor g = o.norm == FeatureNorm::Chi ? randn({m, d}, sub_key(key, 1, 0), kFloat64) : Tensor();
    for (int64_t i = 0; i < m; ++i) {
      double target = std::sqrt(static_cast<double>(d));
      if (o.norm == FeatureNorm::Chi) {
        const double* gr = g.data<double>() + i * d;
        double s = 0;
        for (int64_t j = 0; j < d; ++j) s += gr[j] * gr[j];
        target = std::sqrt(s);
      }
      double* row = pw + i * d;
      double s = 0;
      for (int64_t j = 0; j < d; ++j) s += row[j] * row[j];
      const double scale = s > 0 ? target / std::sqrt(s) : 0.0;
      for (int64_t j = 0; j < d; ++j) row[j] *= scale;
    }
  }
  return w;
}

// ---- RandomFeatures ---------------------------------------------------------------------------

RandomFeatures::RandomFeatures(const ProjectionOptions& p, const RedrawOptions& r, uint64_t seed)
    : Module("RandomFeatures"), proj_(p), redraw_(r), seed_(seed) {
  ATTNLAB_CHECK(p.features >= 1 && p.dim >= 1,
                ValueError,
                "RandomFeatures: features and dim must be >= 1, got features ",
                p.features,
                ", dim ",
                p.dim);
  set_redraw_options(r);
  register_buffer("projection", draw_projection(proj_, draw_key(0)).to(kFloat32));
  register_buffer("redraw_state", zeros({3}, kInt64));  // [calls, draw, set by user]
}

void RandomFeatures::set_redraw_options(const RedrawOptions& r) {
  ATTNLAB_CHECK(r.policy != RedrawPolicy::EveryNCalls || r.interval >= 1,
                ValueError,
                "RandomFeatures: the redraw interval must be >= 1, got ",
                r.interval);
  redraw_ = r;
}

RngKey RandomFeatures::draw_key(int64_t n) const {
  return RngKey{mix(seed_ ^ kFavorTag),
                static_cast<uint64_t>(n)};
}

int64_t RandomFeatures::draw_for_call(int64_t call) const {
  switch (redraw_.policy) {
    case RedrawPolicy::Never:
      return 0;
    case RedrawPolicy::EveryNCalls:
      return call / redraw_.interval;
    default:
      return call;
  }
}

int64_t RandomFeatures::calls() const {
  return buffer("redraw_state").data<int64_t>()[0];
}

int64_t RandomFeatures::draw() const {
  const int64_t* s = buffer("redraw_state").data<int64_t>();
  return s[2] ? -1 : s[1];
}

void RandomFeatures::set_state(int64_t calls, int64_t draw) {
  int64_t* s = buffer("redraw_state").data<int64_t>();
  s[0] = calls;
  s[1] = draw;
}

void RandomFeatures::redraw(int64_t n) {
  ATTNLAB_CHECK(n >= 0, ValueError, "RandomFeatures::redraw: draw number must be >= 0, got ", n);
  Tensor& w = buffer("projection");
  w = draw_projection(proj_, draw_key(n)).to(w.dtype());
  int64_t* s = buffer("redraw_state").data<int64_t>();
  s[1] = n;
  s[2] = 0;
}

const Tensor& RandomFeatures::next() {
  if (is_training()) {
    const int64_t c = calls();
    const int64_t want = draw_for_call(c);
    const int64_t* s = buffer("redraw_state").data<int64_t>();
    // A user projection (s[2] = 1) stands until the draw number changes.
    if (redraw_.policy != RedrawPolicy::Never && want != s[1])
      redraw(want);
    set_state(c + 1, buffer("redraw_state").data<int64_t>()[1]);
  }
  return projection();
}

void RandomFeatures::set_calls(int64_t c) {
  ATTNLAB_CHECK(c >= 0, ValueError, "RandomFeatures::set_calls: calls must be >= 0, got ", c);
  const int64_t* s = buffer("redraw_state").data<int64_t>();
  if (redraw_.policy != RedrawPolicy::Never && (draw_for_call(c) != s[1] || s[2]))
    redraw(draw_for_call(c));
  set_state(c, buffer("redraw_state").data<int64_t>()[1]);
}

void RandomFeatures::set_projection(const Tensor& w) {
  ATTNLAB_CHECK(
      w.defined() && is_floating(w.dtype()) && w.shape() == Shape({proj_.features, proj_.dim}),
      ShapeError,
      "RandomFeatures::set_projection: expected a float [",
      proj_.features,
      ", ",
      proj_.dim,
      "] tensor, got ",
      w.defined() ? w.shape().str() : std::string("an undefined tensor"),
      w.defined() ? std::string(" ") + dtype_name(w.dtype()) : std::string());
  Tensor& p = buffer("projection");
  p = w.to(p.dtype());
  int64_t* s = buffer("redraw_state").data<int64_t>();
  s[1] = draw_for_call(s[0]);
  s[2] = 1;
}

std::string RandomFeatures::describe() const {
  std::ostringstream os;
  os << "RandomFeatures(m=" << proj_.features << ", d=" << proj_.dim << ", "
     << (proj_.orthogonal ? "orthogonal" : "iid") << ", norm=" << feature_norm_name(proj_.norm)
     << ", redraw=" << redraw_policy_name(redraw_.policy);
  if (redraw_.policy == RedrawPolicy::EveryNCalls)
    os << " " << redraw_.interval;
  os << ")";
  return os.str();
}

}  // namespace attnlab::nn
