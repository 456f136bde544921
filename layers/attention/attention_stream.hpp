// Incremental (streaming) causal attention: one new position at a time, for online inference
// where a user's history grows by one item and the model must score the next item after each.
//
//   stream = kernel.begin_stream(heads);
//   for t = 0, 1, ...:  o_t = stream->step(q_t, k_t, v_t)   // [H, dh], [H, dh], [H, dv] -> [H, dv]
//
// o_t equals the last row of kernel.attend(q, k, v, causal) over positions 0..t (up to the
// summation order). Each kernel keeps what its causal form needs:
//   exact softmax: the key/value cache, O(t d) time and memory per step;
//   FAVOR+ / linear: the running state S = sum_j k'_j v_j^T [H, r, dv] and z = sum_j k'_j [H, r],
//     O(r d) time and constant memory per step, with the same feature maps, projection and
//     running-max key stabiliser as the fused causal op
//     (layers/attention/favor/favor_attention.hpp).
// Inference only: no tape (the steps work on plain tensors), eval mode (no dropout, no redraw).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "core/tensor.hpp"

namespace attnlab::nn {

class AttentionStream {
 public:
  virtual ~AttentionStream() = default;
  // q, k: [H, dh], v: [H, dv] for the new position; returns its output [H, dv].
  virtual Tensor step(const Tensor& q, const Tensor& k, const Tensor& v) = 0;
  // Bytes of the state kept between steps (the cache or the running sums).
  virtual int64_t state_bytes() const = 0;
  int64_t length() const { return steps_; }  // positions seen

 protected:
  int64_t steps_ = 0;
};

// A stream whose element type is chosen at its first step (the model's dtype is known only then):
// Impl<float> or Impl<double>, built from `setup`.
template <template <class> class Impl, class Setup>
class DtypeDispatchedStream : public AttentionStream {
 public:
  explicit DtypeDispatchedStream(Setup setup) : setup_(std::move(setup)) {}
  Tensor step(const Tensor& q, const Tensor& k, const Tensor& v) override {
    if (!impl_) {
      if (q.dtype() == kFloat64)
        impl_ = std::make_unique<Impl<double>>(setup_);
      else
        impl_ = std::make_unique<Impl<float>>(setup_);
    }
    Tensor out = impl_->step(q, k, v);
    steps_ = impl_->length();
    return out;
  }
  int64_t state_bytes() const override { return impl_ ? impl_->state_bytes() : 0; }

 private:
  Setup setup_;
  std::unique_ptr<AttentionStream> impl_;
};

namespace detail {
// Shape and dtype checks of one step (errors name `op`, the shapes and what was expected).
void check_stream_step(
    const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, const char* op);
}  // namespace detail

}  // namespace attnlab::nn
