// Exact softmax attention one position at a time: the key/value cache. Step t appends k_t, v_t
// and returns, per head,
//   o_t = sum_{j<=t} softmax_j(q_t . k_j / sqrt(dh)) v_j
// in O(t d) time; the cache grows by (dh + dv) values per head and step.
#include <cmath>
#include <sstream>
#include <vector>

#include "core/core.hpp"
#include "core/vec.hpp"
#include "layers/attention/attention_stream.hpp"
#include "layers/attention/multihead_attention.hpp"
#include "layers/attention/softmax/softmax_kernel.hpp"

namespace attnlab::nn {

namespace detail {
void check_stream_step(
    const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, const char* op) {
  ATTNLAB_CHECK(q.dim() == 2 && k.dim() == 2 && v.dim() == 2 && q.size(0) == heads &&
                    k.size(0) == heads && v.size(0) == heads && q.size(1) == k.size(1),
                ShapeError,
                op,
                ": q, k must be [heads = ",
                heads,
                ", dh] and v [heads, dv], got q ",
                q.shape(),
                ", k ",
                k.shape(),
                ", v ",
                v.shape());
  ATTNLAB_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype() &&
                    (q.dtype() == kFloat32 || q.dtype() == kFloat64),
                DTypeError,
                op,
                ": q, k, v must share a float dtype");
}
}  // namespace detail

namespace {

template <class T>
class SoftmaxCacheStream : public AttentionStream {
 public:
  explicit SoftmaxCacheStream(int64_t heads) : heads_(heads), keys_(heads), values_(heads) {}

  Tensor step(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in) override {
    detail::check_stream_step(q_in, k_in, v_in, heads_, "SoftmaxKernel stream");
    const Tensor &q = q_in, &k = k_in, &v = v_in;
    const int64_t dh = q.size(1), dv = v.size(1), t = steps_ + 1;
    ATTNLAB_CHECK(steps_ == 0 || (dh == dh_ && dv == dv_),
                  ShapeError,
                  "SoftmaxKernel stream: head widths changed from dh ",
                  dh_,
                  ", dv ",
                  dv_,
                  " to ",
                  dh,
                  ", ",
                  dv);
    dh_ = dh;
    dv_ = dv;
    const VecFns<T>& vf = vec::fns<T>();
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh)));
    Tensor out = zeros({heads_, dv}, q.dtype());
    std::vector<T> p(static_cast<std::size_t>(t));
    for (int64_t h = 0; h < heads_; ++h) {
      keys_[h].insert(keys_[h].end(), k.data<T>() + h * dh, k.data<T>() + (h + 1) * dh);
      values_[h].insert(values_[h].end(), v.data<T>() + h * dv, v.data<T>() + (h + 1) * dv);
      const T* qh = q.data<T>() + h * dh;
      for (int64_t j = 0; j < t; ++j) p[j] = vf.dot(qh, keys_[h].data() + j * dh, dh) * scale;
      vf.softmax_rows(p.data(), p.data(), 1, t, false);
      T* oh = out.data<T>() + h * dv;
      for (int64_t j = 0; j < t; ++j) vf.axpy(p[j], values_[h].data() + j * dv, oh, dv);
    }
    steps_ = t;
    return out;
  }

  int64_t state_bytes() const override {
    return heads_ * steps_ * (dh_ + dv_) * static_cast<int64_t>(sizeof(T));
  }

 private:
  int64_t heads_, dh_ = 0, dv_ = 0;
  std::vector<std::vector<T>> keys_, values_;  // per head: [t, dh], [t, dv]
};

}  // namespace

std::unique_ptr<AttentionStream> SoftmaxKernel::begin_stream(int64_t heads) const {
  ATTNLAB_CHECK(
      heads >= 1, ValueError, "SoftmaxKernel::begin_stream: heads must be >= 1, got ", heads);
  ATTNLAB_CHECK(!is_training(),
                ValueError,
                "SoftmaxKernel::begin_stream: streaming is inference only; call eval() first");
  return std::make_unique<DtypeDispatchedStream<SoftmaxCacheStream, int64_t>>(heads);
}

}  // namespace attnlab::nn
