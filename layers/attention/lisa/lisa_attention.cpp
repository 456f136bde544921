// LISA histogram attention: input checks, histograms, projections, the composed reference, the
// streaming state and the layer. The fused op is in lisa_attention_fused.cpp.
#include "layers/attention/lisa/lisa_attention.hpp"

#include <cmath>
#include <limits>
#include <sstream>

#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {
namespace detail {

void check_lisa_inputs(const Tensor& t,
                       const Tensor& v,
                       const Tensor& h,
                       const Tensor& idx,
                       const Tensor& q,
                       const char* op) {
  ATTNLAB_CHECK(t.dim() == 3 && t.size(1) == t.size(2) && t.size(1) > 0,
                ShapeError,
                op,
                ": tables must be [B, W, W], got ",
                t.shape());
  const int64_t nb = t.size(0), w = t.size(1);
  ATTNLAB_CHECK(v.dim() == 3 && v.size(0) == nb && v.size(1) == w && v.size(2) > 0,
                ShapeError,
                op,
                ": values must be [B, W, D] = [",
                nb,
                ", ",
                w,
                ", D], got ",
                v.shape(),
                " (tables ",
                t.shape(),
                ")");
  ATTNLAB_CHECK(h.dim() == 4 && h.size(2) == nb && h.size(3) == w,
                ShapeError,
                op,
                ": histograms must be [N, L, B, W] = [N, L, ",
                nb,
                ", ",
                w,
                "], got ",
                h.shape());
  ATTNLAB_CHECK(t.dtype() == v.dtype() && t.dtype() == h.dtype() && is_floating(t.dtype()),
                DTypeError,
                op,
                ": tables, values and histograms must share a float dtype, got ",
                t.dtype(),
                ", ",
                v.dtype(),
                ", ",
                h.dtype());
  ATTNLAB_CHECK(idx.defined() != q.defined(),
                ValueError,
                op,
                ": pass exactly one query: an index [N, L, B] (hard) or probabilities [N, L, B, W] "
                "(expected row)");
  if (idx.defined()) {
    ATTNLAB_CHECK(idx.dtype() == kInt64 && idx.shape() == Shape({h.size(0), h.size(1), nb}),
                  ShapeError,
                  op,
                  ": query_index must be int64 [N, L, B] = [",
                  h.size(0),
                  ", ",
                  h.size(1),
                  ", ",
                  nb,
                  "], got ",
                  idx.dtype(),
                  " ",
                  idx.shape());
    const int64_t* p = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i) {
      ATTNLAB_CHECK(p[i] >= 0 && p[i] < w,
                    ValueError,
                    op,
                    ": query_index ",
                    p[i],
                    " at flat position ",
                    i,
                    " outside [0, ",
                    w,
                    ")");
    }
  } else {
    ATTNLAB_CHECK(q.shape() == h.shape() && q.dtype() == h.dtype(),
                  ShapeError,
                  op,
                  ": query_probs must match the histograms ",
                  h.shape(),
                  " ",
                  h.dtype(),
                  ", got ",
                  q.shape(),
                  " ",
                  q.dtype());
  }
}

}  // namespace detail

const EnumNames<LisaQuery>& enum_names(LisaQuery) {
  static const EnumNames<LisaQuery> names{
      {LisaQuery::Hard, "hard", "its own codeword's row, detached (the official code)"},
      {LisaQuery::Expected, "expected", "the row expected under its soft codes"}};
  return names;
}
const char* lisa_query_name(LisaQuery q) {
  return enum_names(q).name(q);
}
LisaQuery parse_lisa_query(const std::string& name) {
  return enum_names(LisaQuery{}).parse(name, "parse_lisa_query: query");
}

Var lisa_histograms(const Var& sel, const Tensor& keep, double decay, bool causal) {
  constexpr const char* op = "lisa_histograms";
  ATTNLAB_CHECK(
      sel.dim() == 4, ShapeError, op, ": selections must be [N, L, B, W], got ", sel.shape());
  ATTNLAB_CHECK(decay >= 0 && std::isfinite(decay),
                ValueError,
                op,
                ": decay must be finite and >= 0, got ",
                decay);
  Var x = sel;
  if (keep.defined()) {
    ATTNLAB_CHECK(keep.shape() == Shape({sel.size(0), sel.size(1)}),
                  ShapeError,
                  op,
                  ": keep must be [N, L] = [",
                  sel.size(0),
                  ", ",
                  sel.size(1),
                  "], got ",
                  keep.shape());
    // Padded positions are excluded from every histogram (docs/derivations/lisa_histograms.md 2).
    x = x * ag::constant(keep.to(sel.dtype()).reshape({sel.size(0), sel.size(1), 1, 1}));
  }
  const double g = std::exp(-decay);
  if (causal)
    return ag::decayed_scan(x, 1, g);  // h_t = g h_(t-1) + o_t (lisa_histograms.md 2)
  if (decay == 0)
    return ag::broadcast_to(ag::sum(x, 1, true), x.shape());
  // sum_j g^|i-j| o_j = (forward scan) + (reverse scan) - o_i.
  return ag::decayed_scan(x, 1, g) + ag::decayed_scan(x, 1, g, true) - x;
}

LisaProjection lisa_project(const Var& c, const Var& w_q, const Var& w_k, const Var& w_v) {
  constexpr const char* op = "lisa_project";
  ATTNLAB_CHECK(c.dim() == 3, ShapeError, op, ": codebooks must be [B, W, D], got ", c.shape());
  const Shape proj{c.size(0), c.size(2), c.size(2)};
  for (const Var* p : {&w_q, &w_k, &w_v}) {
    ATTNLAB_CHECK(!p->defined() || p->shape() == proj,
                  ShapeError,
                  op,
                  ": projections must be [B, D, D] = ",
                  proj,
                  ", got ",
                  p->shape());
  }
  Var qt = w_q.defined() ? ag::matmul(c, w_q) : c;  // Qt_b = C_b W_Q^b (projected codebooks)
  Var kt = w_k.defined() ? ag::matmul(c, w_k) : c;
  LisaProjection out;
  out.tables = ag::matmul(qt, kt, false, true);  // T_b = Qt_b Kt_b^T
  out.values = w_v.defined() ? ag::matmul(c, w_v) : c;
  return out;
}

Var lisa_histogram_attention_reference(const Var& tables,
                                       const Var& values,
                                       const Var& hist,
                                       const Tensor& query_index,
                                       const Var& query_probs,
                                       double scale,
                                       LisaTrace* trace) {
  detail::check_lisa_inputs(tables.value(),
                            values.value(),
                            hist.value(),
                            query_index,
                            query_probs.defined() ? query_probs.value() : Tensor(),
                            "lisa_histogram_attention_reference");
  const int64_t n = hist.size(0), l = hist.size(1), nb = tables.size(0), w = tables.size(1),
                d = values.size(2);
  if (scale == 0.0)
    scale = 1.0 / std::sqrt(static_cast<double>(d));
  // G [N, L, B, W]: the query's table row (hard) or the expected row sum_u q[u] T_b[u, :].
  Var rows;
  if (query_index.defined()) {
    Tensor flat = query_index.clone();  // row index into T viewed as [B * W, W]
    int64_t* p = flat.data<int64_t>();
    for (int64_t i = 0; i < flat.numel(); ++i) p[i] += (i % nb) * w;
    rows = ag::index_select(ag::reshape(tables, {nb * w, w}), 0, flat);
  } else {
    Var q = ag::reshape(ag::permute(query_probs, {2, 0, 1, 3}), {nb, n * l, w});
    rows = ag::permute(ag::reshape(ag::matmul(q, tables), {nb, n, l, w}), {1, 2, 0, 3});
  }
  Var z = rows * scale;
  // Masked log-sum-exp: a detached max over the codewords present (h > 0); it cancels in alpha.
  const Tensor present = gt(hist.value(), 0.0);
  const Tensor zm = where(present, z.value(), full_like(z.value(), -INFINITY));
  Tensor m = max(zm, -1, true);
  const Tensor nonempty = gt(m, -INFINITY);
  m = where(nonempty, m, zeros_like(m));
  Var a = hist * ag::exp(z - ag::constant(m));
  Var s = ag::sum(a, -1, true);
  // Empty rows: alpha = 0 with zero gradient (divide by 1 and multiply by 0 there).
  Var alpha = a / (s + ag::constant(sub(1.0, nonempty))) * ag::constant(nonempty);
  if (trace) {
    trace->weights = ag::label(alpha, "weights");
    trace->query_index = query_index;
  }
  // y = sum_b alpha_b V_b: B batched [N L, W] x [W, D] products, summed.
  Var ab = ag::reshape(ag::permute(alpha, {2, 0, 1, 3}), {nb, n * l, w});
  return ag::reshape(ag::sum(ag::matmul(ab, values), 0), {n, l, d});
}

Var lisa_histogram_attention(const Var& tables,
                             const Var& values,
                             const Var& histograms,
                             const Tensor& query_index,
                             const Var& query_probs,
                             double scale,
                             LisaImpl impl,
                             LisaTrace* trace) {
  if (trace) {
    trace->tables = ag::label(tables, "tables");
    trace->values = ag::label(values, "values");
    trace->histograms = ag::label(histograms, "histograms");
    trace->query_index = query_index;
  }
  if (impl == LisaImpl::Reference) {
    return lisa_histogram_attention_reference(
        tables, values, histograms, query_index, query_probs, scale, trace);
  }
  return lisa_histogram_attention_fused(
      tables, values, histograms, query_index, query_probs, scale);
}

// ---- streaming --------------------------------------------------------------------------------
namespace {

// y = sum_b sum_w alpha_b[w] V_b[w] for one position: the fused forward's row computation.
template <class T>
void output_row(const LisaTables& t, const T* hist, const T* sel, const int64_t* idx, T* y) {
  const int64_t nb = t.tables.size(0), w = t.tables.size(1), d = t.values.size(2);
  const T* tab = t.tables.data<T>();
  const T* val = t.values.data<T>();
  std::vector<T> z(w);
  std::fill(y, y + d, T(0));
  for (int64_t b = 0; b < nb; ++b) {
    const T* h = hist + b * w;
    const T* tb = tab + b * w * w;
    for (int64_t c = 0; c < w; ++c) {
      T g = 0;
      if (idx) {
        g = tb[idx[b] * w + c];
      } else {
        for (int64_t u = 0; u < w; ++u) g += sel[b * w + u] * tb[u * w + c];
      }
      z[c] = static_cast<T>(t.scale) * g;
    }
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t c = 0; c < w; ++c)
      if (h[c] > 0)
        m = std::max(m, z[c]);
    if (m == -std::numeric_limits<T>::infinity())
      continue;
    T s = 0;
    for (int64_t c = 0; c < w; ++c) {
      z[c] = std::exp(z[c] - m);
      if (h[c] != 0)
        s += h[c] * z[c];
    }
    for (int64_t c = 0; c < w; ++c) {
      if (h[c] == 0)
        continue;
      const T alpha = h[c] * z[c] / s;
      const T* v = val + (b * w + c) * d;
      for (int64_t k = 0; k < d; ++k) y[k] += alpha * v[k];
    }
  }
}

}  // namespace

LisaStream::LisaStream(LisaTables tables) : t_(std::move(tables)) {
  detail::check_lisa_inputs(t_.tables,
                            t_.values,
                            zeros({1, 1, t_.tables.size(0), t_.tables.size(1)}, t_.tables.dtype()),
                            zeros({1, 1, t_.tables.size(0)}, kInt64),
                            Tensor(),
                            "LisaStream");
  if (t_.scale == 0)
    t_.scale = 1.0 / std::sqrt(static_cast<double>(t_.values.size(2)));
  reset();
}

void LisaStream::reset() {
  hist_ = zeros({t_.tables.size(0), t_.tables.size(1)}, t_.tables.dtype());
  steps_ = 0;
}

Tensor LisaStream::step(const Tensor& selection, const Tensor& query_index) {
  constexpr const char* op = "LisaStream::step";
  const int64_t nb = t_.tables.size(0), w = t_.tables.size(1);
  ATTNLAB_CHECK(selection.shape() == Shape({nb, w}),
                ShapeError,
                op,
                ": selection must be [B, W] = [",
                nb,
                ", ",
                w,
                "], got ",
                selection.shape());
  const Tensor sel = selection.to(hist_.dtype());
  Tensor idx;
  if (query_index.defined()) {
    ATTNLAB_CHECK(query_index.dtype() == kInt64 && query_index.shape() == Shape({nb}),
                  ShapeError,
                  op,
                  ": query_index must be int64 [B] = [",
                  nb,
                  "], got ",
                  query_index.dtype(),
                  " ",
                  query_index.shape());
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t u = query_index.data<int64_t>()[b];
      ATTNLAB_CHECK(u >= 0 && u < w, ValueError, op, ": query index ", u, " outside [0, ", w, ")");
    }
    idx = query_index;
  }
  // h <- g h + o: O(B W) per interaction, whatever the history length.
  scale_(hist_, std::exp(-t_.decay));
  add_(hist_, sel);
  ++steps_;
  Tensor y = Tensor::empty({t_.values.size(2)}, hist_.dtype());
  dispatch_float(hist_.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    output_row<T>(t_,
                  hist_.data<T>(),
                  sel.data<T>(),
                  idx.defined() ? idx.data<int64_t>() : nullptr,
                  y.data<T>());
  });
  return y;
}

Tensor LisaStream::step_codes(const Tensor& codes) {
  return step(one_hot(codes, t_.tables.size(1), t_.tables.dtype()), codes);
}

// ---- the layer --------------------------------------------------------------------------------
LisaAttention::LisaAttention(const LisaAttentionOptions& o, Generator& init_rng)
    : Module("LisaAttention"), options_(o) {
  ATTNLAB_CHECK(o.dim > 0 && o.codebooks > 0 && o.codewords > 0,
                ValueError,
                "LisaAttention: dim, codebooks and codewords must be positive");
  ATTNLAB_CHECK(o.decay >= 0 && std::isfinite(o.decay),
                ValueError,
                "LisaAttention: decay must be finite and >= 0, got ",
                o.decay);
  const Shape s{o.codebooks, o.dim, o.dim};
  if (o.project_qk) {
    w_q = register_parameter("w_q", initialize(s, o.projection_init, init_rng.next()));
    w_k = register_parameter("w_k", initialize(s, o.projection_init, init_rng.next()));
  }
  if (o.project_v)
    w_v = register_parameter("w_v", initialize(s, o.projection_init, init_rng.next()));
}

Var LisaAttention::forward(const Var& codebooks,
                           const Var& selections,
                           const Tensor& codes,
                           const Tensor& keep,
                           LisaTrace* trace) {
  constexpr const char* op = "LisaAttention";
  const auto& o = options_;
  ATTNLAB_CHECK(codebooks.shape() == Shape({o.codebooks, o.codewords, o.dim}),
                ShapeError,
                op,
                ": codebooks must be [B, W, D] = [",
                o.codebooks,
                ", ",
                o.codewords,
                ", ",
                o.dim,
                "], got ",
                codebooks.shape());
  LisaProjection p = lisa_project(codebooks, w_q, w_k, w_v);
  Var sel = selections;
  if (keep.defined() && o.query == LisaQuery::Expected)
    sel = sel * ag::constant(keep.to(sel.dtype()).reshape({sel.size(0), sel.size(1), 1, 1}));
  Var h = lisa_histograms(selections, keep, o.decay, o.causal);
  if (trace)
    trace->selections = ag::label(sel, "selections");
  const bool hard = o.query == LisaQuery::Hard;
  return lisa_histogram_attention(
      p.tables, p.values, h, hard ? codes : Tensor(), hard ? Var() : sel, o.scale, o.impl, trace);
}

Var LisaAttention::forward_items(const Var& codebooks,
                                 const Var& item_selection,
                                 const Tensor& inverse,
                                 const Tensor& codes,
                                 const Tensor& keep,
                                 LisaTrace* trace) {
  const auto& o = options_;
  ATTNLAB_CHECK(inverse.defined() && inverse.dim() == 2,
                ShapeError,
                "LisaAttention::forward_items: inverse must be int64 [N, L], got ",
                inverse.shape());
  if (!(o.causal && o.query == LisaQuery::Hard && o.impl == LisaImpl::Fused)) {
    const int64_t n = inverse.size(0), l = inverse.size(1);
    Var sel = ag::reshape(ag::index_select(item_selection, 0, inverse.reshape({n * l})),
                          {n, l, item_selection.size(1), item_selection.size(2)});
    return forward(codebooks, sel, codes, keep, trace);
  }
  ATTNLAB_CHECK(codebooks.shape() == Shape({o.codebooks, o.codewords, o.dim}),
                ShapeError,
                "LisaAttention::forward_items: codebooks must be [B, W, D] = [",
                o.codebooks,
                ", ",
                o.codewords,
                ", ",
                o.dim,
                "], got ",
                codebooks.shape());
  LisaProjection p = lisa_project(codebooks, w_q, w_k, w_v);
  if (trace) {
    trace->tables = ag::label(p.tables, "tables");
    trace->values = ag::label(p.values, "values");
    trace->query_index = codes;
  }
  return lisa_item_histogram_attention(
      p.tables, p.values, item_selection, inverse, keep, o.decay, codes, o.scale);
}

LisaTables LisaAttention::precompute(const Var& codebooks) const {
  ag::NoGradGuard no_grad;
  LisaProjection p = lisa_project(codebooks, w_q, w_k, w_v);
  LisaTables t;
  t.tables = p.tables.value();
  t.values = p.values.value();
  t.scale =
      options_.scale != 0 ? options_.scale : 1.0 / std::sqrt(static_cast<double>(options_.dim));
  t.decay = options_.decay;
  return t;
}

std::string LisaAttention::describe() const {
  std::ostringstream os;
  os << "LisaAttention(B=" << options_.codebooks << ", W=" << options_.codewords
     << ", D=" << options_.dim << ", decay=" << options_.decay
     << (options_.causal ? ", causal" : ", bidirectional")
     << ", query=" << lisa_query_name(options_.query)
     << (options_.impl == LisaImpl::Fused ? ", fused" : ", reference") << ")";
  return os.str();
}

}  // namespace attnlab::nn
