// LISA's causal histograms and hard-query attention as one custom op, from the selections of the
// quantized rows (lisa_attention.hpp: lisa_item_histogram_attention).
//
// Inputs: S [U, B, W] (the selections of the rows the quantizer scored: the distinct items),
// inverse [N, L] (position -> row of S), keep [N, L] (0/1), the query codewords u [N, L, B],
// tables T [B, W, W] and values V [B, W, D]. Per sequence and codebook b:
//   x_i = keep_i S[inverse_i, b]                 (the gathered, masked selection)
//   h_0 = x_0,  h_i = g h_(i-1) + x_i            (decayed_scan's recurrence, its own arithmetic:
//                                                 core/scan.hpp decayed_scan_step)
//   y_i = sum_b alpha_i^b V_b,  alpha from (T_b[u_i^b, :], h_i^b)  (lisa_attention_fused.cpp)
// Backward, with dh_i^b the fused op's histogram gradient (lisa_attention_fused.cpp):
//   ds_(L-1) = dh_(L-1),  ds_i = g ds_(i+1) + dh_i    (the reverse scan: the scan's backward)
//   dS[r, b] = sum over kept positions i with inverse_i = r, in increasing (n, i), of ds_i^b
//   dT_b, dV_b as the fused op (group partials in its task order, summed in group order).
// This is, operation for operation, lisa_histogram_attention_fused(T, V,
// lisa_histograms(index_select(S, 0, inverse), keep, lambda, causal = true), u): the same values
// and gradients bit for bit (tests/layers/attention/lisa/test_layers_lisa_item_attention.cpp),
// without its [N, L, B, W] tensors (the gathered selection, the masked copy, the histograms,
// and in the backward dh, the reverse scan, the masked gradient): an [N, L, B, W] float tensor
// is 105 MB for a batch of 128 x 200 positions at 8 x 128 codewords.
// Rows before a sequence's first kept position (left padding) have an empty histogram: output 0,
// no gradient; they are skipped, not computed (the same values: 0 * V sums to +0, and their
// zero weights add nothing to dT, dV; up to the sign of a zero sum).
// Work order: the forward runs one task per sequence, building its histogram rows chunk by chunk
// (kRows positions); the backward one task per codebook (each owns its slices of dT, dV and dS,
// so dS is summed in position order without partials), recomputing the histogram rows, and
// scanning the sequence's dh rows ([L, W] scratch) in reverse before adding them to dS.
#include <cmath>

#include "autograd/function.hpp"
#include "core/core.hpp"
#include "layers/attention/lisa/lisa_attention.hpp"
#include "layers/attention/lisa/lisa_item_attention_kernels.hpp"

namespace attnlab::nn {
namespace lisa_fused_detail {
namespace {

template <class T>
const LisaItemFns<T>& item_kernels() {
  static const LisaItemKernels& table = ATTNLAB_KERNELS(lisa_item_kernels);
  if constexpr (std::is_same_v<T, float>)
    return table.f32;
  else
    return table.f64;
}

constexpr const char* kOp = "lisa_item_histogram_attention";

void check_int_range(const Tensor& t, const Shape& shape, int64_t hi, const char* what) {
  ATTNLAB_CHECK(t.dtype() == kInt64 && t.shape() == shape,
                ShapeError,
                kOp,
                ": ",
                what,
                " must be int64 ",
                shape,
                ", got ",
                t.dtype(),
                " ",
                t.shape());
  const int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    ATTNLAB_CHECK(p[i] >= 0 && p[i] < hi,
                  ValueError,
                  kOp,
                  ": ",
                  what,
                  " ",
                  p[i],
                  " at flat position ",
                  i,
                  " outside [0, ",
                  hi,
                  ")");
  }
}

// keep as the op's dtype, checked to be [N, L] of 0s and 1s (all ones when undefined).
Tensor checked_keep(const Tensor& keep, int64_t n, int64_t l, DType dtype) {
  if (!keep.defined())
    return ones({n, l}, dtype);
  ATTNLAB_CHECK(keep.shape() == Shape({n, l}),
                ShapeError,
                kOp,
                ": keep must be [N, L] = [",
                n,
                ", ",
                l,
                "], got ",
                keep.shape());
  const Tensor k = keep.to(dtype);
  for (double v : k.to_vector<double>())
    ATTNLAB_CHECK(v == 0 || v == 1, ValueError, kOp, ": keep must hold 0s and 1s, got ", v);
  return k;
}

class LisaItemHistogramAttention : public ag::Function {
 public:
  LisaItemHistogramAttention(
      Tensor inverse, Tensor keep, Tensor query_index, double decay, double scale)
      : inverse_(std::move(inverse)),
        keep_(std::move(keep)),
        idx_(std::move(query_index)),
        decay_(decay),
        scale_(scale) {}
  const char* name() const override { return kOp; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &t = in[0], &v = in[1], &s = in[2];
    check(t, v, s);
    Tensor out = Tensor::empty({ig_.g.n, ig_.g.l, ig_.g.d}, t.dtype());
    dispatch_float(t.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      item_kernels<T>().forward(ig_,
                                t.data<T>(),
                                v.data<T>(),
                                s.data<T>(),
                                inverse_.data<int64_t>(),
                                keep_.data<T>(),
                                idx_.data<int64_t>(),
                                out.data<T>());
    });
    save_for_backward({t, v, s});  // O(U B W): the histograms are recomputed
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const auto& saved_in = saved();
    const Tensor &t = saved_in[0], &v = saved_in[1], &s = saved_in[2];
    Tensor dt = needs_input_grad(0) ? Tensor::empty(t.shape(), t.dtype()) : Tensor();
    Tensor dv = needs_input_grad(1) ? Tensor::empty(v.shape(), v.dtype()) : Tensor();
    Tensor ds = needs_input_grad(2) ? zeros(s.shape(), s.dtype()) : Tensor();
    dispatch_float(t.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      auto ptr = [](Tensor& x) {
        return x.defined() ? x.data<T>() : nullptr;
      };
      item_kernels<T>().backward(ig_,
                                 t.data<T>(),
                                 v.data<T>(),
                                 s.data<T>(),
                                 inverse_.data<int64_t>(),
                                 keep_.data<T>(),
                                 idx_.data<int64_t>(),
                                 grad[0].data<T>(),
                                 ptr(dt),
                                 ptr(dv),
                                 ptr(ds));
    });
    return {dt, dv, ds};
  }

 private:
  void check(const Tensor& t, const Tensor& v, const Tensor& s) {
    ATTNLAB_CHECK(t.dim() == 3 && t.size(1) == t.size(2) && t.size(1) > 0,
                  ShapeError,
                  kOp,
                  ": tables must be [B, W, W], got ",
                  t.shape());
    const int64_t nb = t.size(0), w = t.size(1);
    ATTNLAB_CHECK(v.dim() == 3 && v.size(0) == nb && v.size(1) == w && v.size(2) > 0,
                  ShapeError,
                  kOp,
                  ": values must be [B, W, D] = [",
                  nb,
                  ", ",
                  w,
                  ", D], got ",
                  v.shape());
    ATTNLAB_CHECK(s.dim() == 3 && s.size(1) == nb && s.size(2) == w,
                  ShapeError,
                  kOp,
                  ": item_selection must be [U, B, W] = [U, ",
                  nb,
                  ", ",
                  w,
                  "], got ",
                  s.shape());
    ATTNLAB_CHECK(t.dtype() == v.dtype() && t.dtype() == s.dtype() && is_floating(t.dtype()),
                  DTypeError,
                  kOp,
                  ": tables, values and item_selection must share a float dtype, got ",
                  t.dtype(),
                  ", ",
                  v.dtype(),
                  ", ",
                  s.dtype());
    ATTNLAB_CHECK(inverse_.dim() == 2,
                  ShapeError,
                  kOp,
                  ": inverse must be int64 [N, L], got ",
                  inverse_.dtype(),
                  " ",
                  inverse_.shape());
    const int64_t n = inverse_.size(0), l = inverse_.size(1);
    check_int_range(inverse_, Shape({n, l}), s.size(0), "inverse");
    check_int_range(idx_, Shape({n, l, nb}), w, "query_index");
    ATTNLAB_CHECK(decay_ >= 0 && std::isfinite(decay_),
                  ValueError,
                  kOp,
                  ": decay must be finite and >= 0, got ",
                  decay_);
    keep_ = checked_keep(keep_, n, l, t.dtype());
    double scale = scale_ == 0 ? 1.0 / std::sqrt(static_cast<double>(v.size(2))) : scale_;
    ig_ =
        ItemGeometry{Geometry{n, l, nb, w, v.size(2), scale, false}, s.size(0), std::exp(-decay_)};
  }

  Tensor inverse_, keep_, idx_;
  double decay_, scale_;
  ItemGeometry ig_{};
};

}  // namespace
}  // namespace lisa_fused_detail

Var lisa_item_histogram_attention(const Var& tables,
                                  const Var& values,
                                  const Var& item_selection,
                                  const Tensor& inverse,
                                  const Tensor& keep,
                                  double decay,
                                  const Tensor& query_index,
                                  double scale) {
  ATTNLAB_CHECK(inverse.defined() && query_index.defined(),
                ValueError,
                "lisa_item_histogram_attention: inverse and query_index are required");
  return ag::apply<lisa_fused_detail::LisaItemHistogramAttention>(
      {tables, values, item_selection}, inverse, keep, query_index, decay, scale)[0];
}

}  // namespace attnlab::nn
