// Element-wise math and its gradients. Each op saves its input or its output, whichever the
// derivative is cheaper to express in.
#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;

namespace {
// Records y = forward(x) with dx = dy * derivative(saved), saving the input (save_output false)
// or the output (save_output true).
template <class D>
Var unary(const char* name, const Var& x, const Tensor& y, bool save_output, D derivative) {
  OpRecorder op(name, {x});
  return op.output(y, {save_output ? y : x.value()}, [derivative](const BackwardContext& c) {
    return Grads{attnlab::mul(c.grad(), derivative(c.saved[0]))};
  });
}
}  // namespace


// y = exp(x);  dx = dy * y
Var exp(const Var& x) {
  return unary("exp", x, attnlab::exp(x.value()), true, [](const Tensor& y) { return y; });
}
// y = log(x);  dx = dy / x
Var log(const Var& x) {
  return unary("log", x, attnlab::log(x.value()), false, [](const Tensor& xv) {
    return attnlab::reciprocal(xv);
  });
}
// y = log(1 + x);  dx = dy / (1 + x)
Var log1p(const Var& x) {
  return unary("log1p", x, attnlab::log1p(x.value()), false, [](const Tensor& xv) {
    return attnlab::reciprocal(attnlab::add(xv, 1.0));
  });
}
// y = exp(x) - 1;  dx = dy * (y + 1)
Var expm1(const Var& x) {
  return unary("expm1", x, attnlab::expm1(x.value()), true, [](const Tensor& y) {
    return attnlab::add(y, 1.0);
  });
}
// y = sqrt(x);  dx = dy / (2 y)
Var sqrt(const Var& x) {
  return unary("sqrt", x, attnlab::sqrt(x.value()), true, [](const Tensor& y) {
    return attnlab::div(0.5, y);
  });
}
// y = x^(-1/2);  dx = -dy * y^3 / 2
Var rsqrt(const Var& x) {
  return unary("rsqrt", x, attnlab::rsqrt(x.value()), true, [](const Tensor& y) {
    return attnlab::mul(attnlab::mul(attnlab::square(y), y), -0.5);
  });
}
// y = x^2;  dx = 2 x dy
Var square(const Var& x) {
  return unary("square", x, attnlab::square(x.value()), false, [](const Tensor& xv) {
    return attnlab::mul(xv, 2.0);
  });
}
// y = 1 / x;  dx = -dy * y^2
Var reciprocal(const Var& x) {
  return unary("reciprocal", x, attnlab::reciprocal(x.value()), true, [](const Tensor& y) {
    return attnlab::neg(attnlab::square(y));
  });
}
// y = |x|;  dx = dy * sign(x)  (0 at x = 0)
Var abs(const Var& x) {
  return unary(
      "abs", x, attnlab::abs(x.value()), false, [](const Tensor& xv) { return attnlab::sign(xv); });
}
// y = tanh(x);  dx = dy * (1 - y^2)
Var tanh(const Var& x) {
  return unary("tanh", x, attnlab::tanh(x.value()), true, [](const Tensor& y) {
    return attnlab::sub(1.0, attnlab::square(y));
  });
}
// y = sigmoid(x);  dx = dy * y * (1 - y)
Var sigmoid(const Var& x) {
  return unary("sigmoid", x, attnlab::sigmoid(x.value()), true, [](const Tensor& y) {
    return attnlab::mul(y, attnlab::sub(1.0, y));
  });
}
// y = max(x, 0);  dx = dy * [x > 0]
Var relu(const Var& x) {
  return unary("relu", x, attnlab::relu(x.value()), false, [](const Tensor& xv) {
    return attnlab::gt(xv, 0.0);
  });
}
// y = x (x > 0), alpha (e^x - 1) otherwise;  dx = dy * (x > 0 ? 1 : y + alpha)
Var elu(const Var& x, double alpha) {
  OpRecorder op("elu", {x});
  Tensor y = attnlab::elu(x.value(), alpha);
  return op.output(y, {x.value(), y}, [alpha](const BackwardContext& c) {
    const Tensor& xv = c.saved[0];
    Tensor d = attnlab::where(
        attnlab::gt(xv, 0.0), attnlab::ones_like(xv), attnlab::add(c.saved[1], alpha));
    return Grads{attnlab::mul(c.grad(), d)};
  });
}
// y = log(1 + e^x);  dx = dy * sigmoid(x)
Var softplus(const Var& x) {
  return unary("softplus", x, attnlab::softplus(x.value()), false, [](const Tensor& xv) {
    return attnlab::sigmoid(xv);
  });
}
// y = sin(x);  dx = dy * cos(x)
Var sin(const Var& x) {
  return unary(
      "sin", x, attnlab::sin(x.value()), false, [](const Tensor& xv) { return attnlab::cos(xv); });
}
// y = cos(x);  dx = -dy * sin(x)
Var cos(const Var& x) {
  return unary("cos", x, attnlab::cos(x.value()), false, [](const Tensor& xv) {
    return attnlab::neg(attnlab::sin(xv));
  });
}
// y = min(max(x, lo), hi);  dx = dy * [lo <= x <= hi]
Var clamp(const Var& x, double lo, double hi) {
  return unary("clamp", x, attnlab::clamp(x.value(), lo, hi), false, [lo, hi](const Tensor& xv) {
    return attnlab::mul(attnlab::ge(xv, attnlab::full_like(xv, lo)),
                        attnlab::le(xv, attnlab::full_like(xv, hi)));
  });
}

}  // namespace attnlab::ag
