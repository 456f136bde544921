// Adam and AdamW (torch.optim.Adam / AdamW with amsgrad off, the single-tensor algorithm).
#include <cmath>

#include "core/core.hpp"
#include "layers/optim/optim.hpp"

namespace attnlab::optim {
namespace {

struct AdamStep {
  double lr, beta1, beta2, eps;
  double l2;     // added to the gradient (Adam's weight_decay), or 0
  double decay;  // multiplies the parameter first (AdamW: 1 - lr * weight_decay), or 1
  int64_t step;
};

template <class T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, const AdamStep& a) {
  const double bc1 = 1.0 - std::pow(a.beta1, static_cast<double>(a.step));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(a.beta2, static_cast<double>(a.step)));
  const double step_size = a.lr / bc1;
  parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      double pi = p[i];
      if (a.decay != 1)
        pi = static_cast<T>(pi * a.decay);  // rounded like PyTorch's in-place p.mul_()
      double gi = g[i];
      if (a.l2 != 0)
        gi += a.l2 * static_cast<double>(p[i]);
      m[i] = static_cast<T>(a.beta1 * m[i] + (1.0 - a.beta1) * gi);
      v[i] = static_cast<T>(a.beta2 * v[i] + (1.0 - a.beta2) * gi * gi);
      const double denom = std::sqrt(static_cast<double>(v[i])) / bc2_sqrt + a.eps;
      p[i] = static_cast<T>(pi - step_size * static_cast<double>(m[i]) / denom);
    }
  });
}

}  // namespace

Adam::Adam(ParamList params, double lr, double beta1, double beta2, double eps, double weight_decay)
    : Adam("Adam", std::move(params), lr, beta1, beta2, eps, weight_decay, false) {}

Adam::Adam(const char* name,
           ParamList params,
           double lr,
           double beta1,
           double beta2,
           double eps,
           double weight_decay,
           bool decoupled)
    : Optimizer(name, std::move(params), lr, {"exp_avg", "exp_avg_sq"}),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      weight_decay_(weight_decay),
      decoupled_(decoupled) {
  check_range("beta1", beta1, 0, 1, true);
  check_range("beta2", beta2, 0, 1, true);
  check_range("eps", eps, 0, INFINITY, true);
  check_range("weight_decay", weight_decay, 0, INFINITY, true);
}

void Adam::update(ParamState& s, const Tensor& grad) {
  const Tensor& p = s.param.value();
  AdamStep a{lr(),
                          beta1_,
                          beta2_,
                          eps_,
                          decoupled_ ? 0.0 : weight_decay_,
                          decoupled_ ? 1.0 - lr() * weight_decay_ : 1.0,
                          s.step};
  dispatch_float(p.dtype(), name(), [&](auto tag) {
    using T = decltype(tag);
    adam_update<T>(
        p.data<T>(), grad.data<T>(), s.buffers[0].data<T>(), s.buffers[1].data<T>(), p.numel(), a);
  });
}

AdamW::AdamW(
    ParamList params, double lr, double beta1, double beta2, double eps, double weight_decay)
    : Adam("AdamW", std::move(params), lr, beta1, beta2, eps, weight_decay, true) {}

}  // namespace attnlab::optim
