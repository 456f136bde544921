// Losses. The fused ones (bce_with_logits, the softmax cross-entropies, masked_mean) accumulate in
// double in a fixed order (per-row partial results summed sequentially), so they are
// deterministic for any thread count; the rest is composed from autograd ops.
#include "layers/nn/losses.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {
namespace {

using ag::BackwardContext;
using ag::InputGrads;
using ag::OpRecorder;

void check_logits(const Var& x, const char* op, const char* what) {
  ATTNLAB_CHECK(x.defined(), ValueError, op, ": ", what, " is undefined");
  ATTNLAB_CHECK(is_floating(x.dtype()),
                DTypeError,
                op,
                ": ",
                what,
                " must be float32 or float64, got ",
                x.dtype());
}

// A float side input (targets, weights, masks) in `dtype`; int64 is refused.
Tensor float_input(const Tensor& t, DType dtype, const char* op, const char* what) {
  ATTNLAB_CHECK(t.defined(), ValueError, op, ": ", what, " is undefined");
  ATTNLAB_CHECK(is_floating(t.dtype()),
                DTypeError,
                op,
                ": ",
                what,
                " must be float32 or float64 (converted to the input's dtype), got ",
                t.dtype());
  return t.dtype() == dtype ? t : t.to(dtype);
}

// `t` materialised at `shape`, which it must broadcast to (not the other way round).
Tensor broadcast_input(const Tensor& t, const Shape& shape, const char* op, const char* what) {
  const bool fits = t.dim() <= shape.rank() && [&] {
    for (int i = 1; i <= t.dim(); ++i) {
      const int64_t a = t.shape()[t.dim() - i], b = shape[shape.rank() - i];
      if (a != b && a != 1)
        return false;
    }
    return true;
  }();
  ATTNLAB_CHECK(fits, ShapeError, op, ": ", what, " ", t.shape(), " does not broadcast to ", shape);
  return t.shape() == shape ? t : attnlab::broadcast_to(t, shape);
}

template <class T>
double stable_sigmoid(T x) {
  const double v = x;
  if (v >= 0)
    return 1.0 / (1.0 + std::exp(-v));
  const double e = std::exp(v);
  return e / (1.0 + e);
}

// ---- softmax cross-entropy over rows of a [rows, C] view ----------------------------------------
// active(r): row r counts (target not ignored and weight != 0).
struct CeRows {
  int64_t rows = 0, classes = 0, ignore_index = -100;
  const int64_t* target = nullptr;
  bool active(int64_t r, const double* w) const {
    return target[r] != ignore_index && (w == nullptr || w[r] != 0);
  }
};

// Forward: per-row logsumexp (saved, in double) and the weighted sum of the row losses.
template <class T>
double ce_forward(const CeRows& ce, const T* x, const double* w, double* lse) {
  std::vector<double> row_loss(static_cast<std::size_t>(ce.rows), 0.0);
  const int64_t c = ce.classes;
  parallel_for(0, ce.rows, std::max<int64_t>(1, 4096 / c), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      lse[r] = 0;
      if (!ce.active(r, w))
        continue;
      const T* xr = x + r * c;
      double m = xr[0];
      for (int64_t j = 1; j < c; ++j) m = std::max(m, static_cast<double>(xr[j]));
      double s = 0;
      for (int64_t j = 0; j < c; ++j) s += std::exp(static_cast<double>(xr[j]) - m);
      lse[r] = m + std::log(s);
      row_loss[r] = (w ? w[r] : 1.0) * (lse[r] - static_cast<double>(xr[ce.target[r]]));
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;
  return total;
}

template <class T>
void ce_backward(
    const CeRows& ce, const T* x, const double* w, const double* lse, double scale, T* dx) {
  const int64_t c = ce.classes;
  parallel_for(0, ce.rows, std::max<int64_t>(1, 4096 / c), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      T* out = dx + r * c;
      if (!ce.active(r, w)) {
        std::fill(out, out + c, T(0));
        continue;
      }
      const double k = scale * (w ? w[r] : 1.0);
      const T* xr = x + r * c;
      for (int64_t j = 0; j < c; ++j) out[j] = static_cast<T>(k * std::exp(xr[j] - lse[r]));
      out[ce.target[r]] = static_cast<T>(static_cast<double>(out[ce.target[r]]) - k);
    }
  });
}

// The shared fused op; weight (optional) is one float64 value per row.
Var cross_entropy(const char* op,
                  const Var& logits,
                  const Tensor& targets,
                  const Tensor& weight,
                  int64_t ignore_index) {
  check_logits(logits, op, "logits");
  ATTNLAB_CHECK(logits.dim() >= 1 && logits.shape().back() >= 1,
                ShapeError,
                op,
                ": logits must be [..., C] with C >= 1, got ",
                logits.shape());
  ATTNLAB_CHECK(targets.defined() && targets.dtype() == kInt64,
                DTypeError,
                op,
                ": targets must be int64 class indices, got ",
                targets.defined() ? dtype_name(targets.dtype()) : "an undefined tensor");
  Shape lead = logits.shape();
  lead.erase(lead.rank() - 1);
  ATTNLAB_CHECK(targets.shape() == lead,
                ShapeError,
                op,
                ": targets ",
                targets.shape(),
                " must be the logits' leading shape ",
                lead,
                " (logits ",
                logits.shape(),
                ")");
  CeRows ce;
  ce.rows = lead.numel();
  ce.classes = logits.shape().back();
  ce.ignore_index = ignore_index;
  ce.target = targets.data<int64_t>();
  for (int64_t r = 0; r < ce.rows; ++r) {
    const int64_t t = ce.target[r];
    ATTNLAB_CHECK(t == ignore_index || (t >= 0 && t < ce.classes),
                  ValueError,
                  op,
                  ": target ",
                  t,
                  " at (flattened) row ",
                  r,
                  " is out of range [0, ",
                  ce.classes,
                  ") and is not ignore_index (",
                  ignore_index,
                  ")");
  }
  Tensor w;
  double wsum = 0;
  if (weight.defined()) {
    w = broadcast_input(float_input(weight, kFloat64, op, "weight"), lead, op, "weight");
    for (int64_t r = 0; r < ce.rows; ++r) {
      if (ce.active(r, w.data<double>()))
        wsum += w.data<double>()[r];
    }
  } else {
    for (int64_t r = 0; r < ce.rows; ++r) wsum += ce.active(r, nullptr) ? 1.0 : 0.0;
  }
  const double* wp = w.defined() ? w.data<double>() : nullptr;
  OpRecorder rec(op, {logits});
  Tensor lse = Tensor::empty({ce.rows}, kFloat64);
  const double total = dispatch_float(logits.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    return ce_forward<T>(ce, logits.value().data<T>(), wp, lse.data<double>());
  });
  return rec.output(scalar_tensor(wsum > 0 ? total / wsum : 0.0, logits.dtype()),
                    {logits.value(), targets, lse, w},
                    [ignore_index, wsum](const BackwardContext& c) {
                      const Tensor &x = c.saved[0], &t = c.saved[1], &lse_t = c.saved[2],
                                   &w_t = c.saved[3];
                      CeRows ce;
                      ce.classes = x.shape().back();
                      ce.rows = x.numel() / ce.classes;
                      ce.ignore_index = ignore_index;
                      ce.target = t.data<int64_t>();
                      const double scale = wsum > 0 ? c.grad().item() / wsum : 0.0;
                      Tensor dx = Tensor::empty(x.shape(), x.dtype());
                      dispatch_float(x.dtype(), "softmax_cross_entropy", [&](auto tag) {
                        using T = decltype(tag);
                        ce_backward<T>(ce,
                                       x.data<T>(),
                                       w_t.defined() ? w_t.data<double>() : nullptr,
                                       lse_t.data<double>(),
                                       scale,
                                       dx.data<T>());
                      });
                      return InputGrads{dx};
                    });
}

void check_ids(const Tensor& ids, int64_t vocab, const char* what) {
  const int64_t* p = ids.data<int64_t>();
  const int64_t cols = ids.dim() == 2 ? ids.shape()[1] : 1;
  for (int64_t i = 0; i < ids.numel(); ++i) {
    ATTNLAB_CHECK(p[i] >= 0 && p[i] < vocab,
                  ValueError,
                  "sampled_softmax_loss: ",
                  what,
                  " id ",
                  p[i],
                  " at row ",
                  i / cols,
                  " is out of range [0, ",
                  vocab,
                  ")");
  }
}

}  // namespace

// l = max(x, 0) - x t + log1p(exp(-|x|));  loss = sum(w l) / sum(w)
// dx = g * w * (sigmoid(x) - t) / sum(w)
Var bce_with_logits(const Var& logits, const Tensor& targets, const Tensor& weight) {
  const char* op = "bce_with_logits";
  check_logits(logits, op, "logits");
  const DType dt = logits.dtype();
  Tensor t = float_input(targets, dt, op, "targets");
  ATTNLAB_CHECK(t.shape() == logits.shape(),
                ShapeError,
                op,
                ": targets ",
                t.shape(),
                " must have the logits' shape ",
                logits.shape());
  Tensor w;
  if (weight.defined())
    w = broadcast_input(
        float_input(weight, dt, op, "weight"), logits.shape(), op, "weight");
  ag::OpRecorder rec(op, {logits});
  const int64_t n = logits.numel();
  double total = 0, wsum = 0;
  dispatch_float(dt, op, [&](auto tag) {
    using T = decltype(tag);
    const T *x = logits.value().data<T>(), *tp = t.data<T>();
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      const double wi = wp ? static_cast<double>(wp[i]) : 1.0;
      if (wi == 0)
        continue;
      const double xi = x[i];
      const double l = std::max(xi, 0.0) - xi * tp[i] + std::log1p(std::exp(-std::fabs(xi)));
      total += wi * l;
      wsum += wi;
    }
  });
  return rec.output(
      scalar_tensor(wsum > 0 ? total / wsum : 0.0, dt),
      {logits.value(), t, w},
      [wsum](const ag::BackwardContext& c) {
        const Tensor &xv = c.saved[0], &tv = c.saved[1], &wv = c.saved[2];
        const double scale = wsum > 0 ? c.grad().item() / wsum : 0.0;
        Tensor dx = Tensor::empty(xv.shape(), xv.dtype());
        dispatch_float(xv.dtype(), "bce_with_logits", [&](auto tag) {
          using T = decltype(tag);
          const T *x = xv.data<T>(), *tp = tv.data<T>();
          const T* wp = wv.defined() ? wv.data<T>() : nullptr;
          T* out = dx.data<T>();
          parallel_for(0, xv.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) {
              const double wi = wp ? static_cast<double>(wp[i]) : 1.0;
              out[i] =
                  wi == 0
                      ? T(0)
                      : static_cast<T>(scale * wi * (stable_sigmoid(x[i]) - tp[i]));
            }
          });
        });
        return ag::InputGrads{dx};
      });
}

Var softmax_cross_entropy(const Var& logits, const Tensor& targets, int64_t ignore_index) {
  return cross_entropy(
      "softmax_cross_entropy", logits, targets, Tensor(), ignore_index);
}

Var weighted_softmax_cross_entropy(const Var& logits,
                                   const Tensor& targets,
                                   const Tensor& weight,
                                   int64_t ignore_index) {
  ATTNLAB_CHECK(weight.defined(),
                ValueError,
                "weighted_softmax_cross_entropy: weight is undefined (use softmax_cross_entropy)");
  return cross_entropy(
      "weighted_softmax_cross_entropy", logits, targets, weight, ignore_index);
}

Var sampled_softmax_loss(const Var& hidden,
                         const Var& item_table,
                         const Tensor& positives,
                         const Tensor& negatives,
                         const Tensor& weight) {
  const char* op = "sampled_softmax_loss";
  check_logits(hidden, op, "hidden");
  check_logits(item_table, op, "item_table");
  ATTNLAB_CHECK(
      hidden.dim() == 2 && item_table.dim() == 2 && hidden.shape()[1] == item_table.shape()[1],
      ShapeError,
      op,
      ": hidden must be [N, D] and item_table [V, D], got ",
      hidden.shape(),
      " and ",
      item_table.shape());
  ATTNLAB_CHECK(hidden.dtype() == item_table.dtype(),
                DTypeError,
                op,
                ": hidden is ",
                hidden.dtype(),
                " but item_table is ",
                item_table.dtype());
  const int64_t n = hidden.shape()[0], vocab = item_table.shape()[0];
  ATTNLAB_CHECK(positives.defined() && negatives.defined() && positives.dtype() == kInt64 &&
                    negatives.dtype() == kInt64,
                DTypeError,
                op,
                ": positives and negatives must be int64 item ids");
  ATTNLAB_CHECK(positives.shape() == Shape{n} && negatives.dim() == 2 &&
                    negatives.shape()[0] == n && negatives.shape()[1] >= 1,
                ShapeError,
                op,
                ": positives must be [N] and negatives [N, K >= 1] for hidden ",
                hidden.shape(),
                ", got ",
                positives.shape(),
                " and ",
                negatives.shape());
  check_ids(positives, vocab, "positive");
  check_ids(negatives, vocab, "negative");
  // Row n's candidates: [pos_n, neg_n,0 .. neg_n,K-1]; class 0 is the positive.
  const Tensor ids = attnlab::concat({attnlab::unsqueeze(positives, 1), negatives}, 1);
  const Var emb = ag::embedding(item_table, ids);                  // [N, K+1, D]
  const Var logits = ag::sum(emb * ag::unsqueeze(hidden, 1), -1);  // [N, K+1]
  const Tensor target = zeros({n}, kInt64);
  if (!weight.defined())
    return cross_entropy(op, logits, target, Tensor(), -100);
  ATTNLAB_CHECK(weight.shape() == Shape{n},
                ShapeError,
                op,
                ": weight must be [N] = [",
                n,
                "], got ",
                weight.shape());
  return cross_entropy(op, logits, target, weight, -100);
}

// y = sum(v m) / sum(m);  dv = g m / sum(m)   (0 and a zero gradient when sum(m) == 0)
Var masked_mean(const Var& values, const Tensor& mask) {
  const char* op = "masked_mean";
  check_logits(values, op, "values");
  const DType dt = values.dtype();
  const Tensor m = broadcast_input(
      float_input(mask, dt, op, "mask"), values.shape(), op, "mask");
  ag::OpRecorder rec(op, {values});
  double total = 0, msum = 0;
  dispatch_float(dt, op, [&](auto tag) {
    using T = decltype(tag);
    const T *v = values.value().data<T>(), *mp = m.data<T>();
    for (int64_t i = 0; i < values.numel(); ++i) {
      if (mp[i] == 0)
        continue;
      total += static_cast<double>(v[i]) * mp[i];
      msum += mp[i];
    }
  });
  return rec.output(
      scalar_tensor(msum != 0 ? total / msum : 0.0, dt), {m}, [msum](const ag::BackwardContext& c) {
        const Tensor& mv = c.saved[0];
        if (msum == 0)
          return ag::InputGrads{zeros_like(mv)};
        return ag::InputGrads{attnlab::mul(mv, c.grad().item() / msum)};
      });
}

Var mse_loss(const Var& prediction, const Tensor& target) {
  check_logits(prediction, "mse_loss", "prediction");
  const Tensor t = float_input(target, prediction.dtype(), "mse_loss", "target");
  ATTNLAB_CHECK(t.shape() == prediction.shape(),
                ShapeError,
                "mse_loss: target ",
                t.shape(),
                " must have the prediction's shape ",
                prediction.shape());
  return ag::mean(ag::square(prediction - ag::constant(t)));
}

}  // namespace attnlab::nn
