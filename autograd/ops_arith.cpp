// Arithmetic ops and their gradients. Binary ops broadcast; every gradient is summed back to its
// input's shape with sum_to_shape (the single un-broadcasting helper).
#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;
using detail::if_needed;

// c = a + b;  da = dc,  db = dc
Var add(const Var& a, const Var& b) {
  OpRecorder op("add", {a, b});
  Tensor y = attnlab::add(a.value(), b.value());
  return op.output(y, {}, [](const BackwardContext& c) {
    return Grads{if_needed(c, 0, [&] { return sum_to_shape(c.grad(), c.input_shape(0)); }),
                 if_needed(c, 1, [&] { return sum_to_shape(c.grad(), c.input_shape(1)); })};
  });
}

// c = a - b;  da = dc,  db = -dc
Var sub(const Var& a, const Var& b) {
  OpRecorder op("sub", {a, b});
  Tensor y = attnlab::sub(a.value(), b.value());
  return op.output(y, {}, [](const BackwardContext& c) {
    return Grads{
        if_needed(c, 0, [&] { return sum_to_shape(c.grad(), c.input_shape(0)); }),
        if_needed(c, 1, [&] { return sum_to_shape(attnlab::neg(c.grad()), c.input_shape(1)); })};
  });
}

// c = a * b;  da = dc * b,  db = dc * a
Var mul(const Var& a, const Var& b) {
  OpRecorder op("mul", {a, b});
  Tensor y = attnlab::mul(a.value(), b.value());
  // Each input's gradient needs the other input: save only what will be used.
  return op.output(
      y,
      {op.needs_input_grad(1) ? a.value() : Tensor(),
       op.needs_input_grad(0) ? b.value() : Tensor()},
      [](const BackwardContext& c) {
        const Tensor &av = c.saved[0], &bv = c.saved[1];
        return Grads{
            if_needed(
                c, 0, [&] { return sum_to_shape(attnlab::mul(c.grad(), bv), c.input_shape(0)); }),
            if_needed(
                c, 1, [&] { return sum_to_shape(attnlab::mul(c.grad(), av), c.input_shape(1)); })};
      });
}

// c = a / b;  da = dc / b,  db = -dc * a / b^2 = -dc * c / b
Var div(const Var& a, const Var& b) {
  OpRecorder op("div", {a, b});
  Tensor y = attnlab::div(a.value(), b.value());
  return op.output(y, {b.value(), y}, [](const BackwardContext& c) {
    const Tensor &bv = c.saved[0], &yv = c.saved[1];
    return Grads{
        if_needed(c, 0, [&] { return sum_to_shape(attnlab::div(c.grad(), bv), c.input_shape(0)); }),
        if_needed(c, 1, [&] {
          return sum_to_shape(attnlab::neg(attnlab::div(attnlab::mul(c.grad(), yv), bv)),
                              c.input_shape(1));
        })};
  });
}

// c = a^b;  da = dc * b * a^(b-1),  db = dc * c * log(a)
Var pow(const Var& a, const Var& b) {
  OpRecorder op("pow", {a, b});
  Tensor y = attnlab::pow(a.value(), b.value());
  return op.output(y, {a.value(), b.value(), y}, [](const BackwardContext& c) {
    const Tensor &av = c.saved[0], &bv = c.saved[1], &yv = c.saved[2];
    return Grads{if_needed(c,
                           0,
                           [&] {
                             Tensor d = attnlab::mul(bv, attnlab::pow(av, attnlab::sub(bv, 1.0)));
                             return sum_to_shape(attnlab::mul(c.grad(), d), c.input_shape(0));
                           }),
                 if_needed(c, 1, [&] {
                   Tensor d = attnlab::mul(yv, attnlab::log(av));
                   return sum_to_shape(attnlab::mul(c.grad(), d), c.input_shape(1));
                 })};
  });
}

namespace {
// Gradient share of `a` in maximum/minimum: 1 where a wins, 1/2 on ties, 0 where it loses
// (PyTorch's convention: ties split the gradient).
Tensor winner_share(const Tensor& a, const Tensor& b, bool is_max) {
  Tensor wins = is_max ? attnlab::gt(a, b) : attnlab::lt(a, b);
  return attnlab::add(wins, attnlab::mul(attnlab::eq(a, b), 0.5));
}

Var extreme(const Var& a, const Var& b, bool is_max) {
  const char* name = is_max ? "maximum" : "minimum";
  OpRecorder op(name, {a, b});
  Tensor y =
      is_max ? attnlab::maximum(a.value(), b.value()) : attnlab::minimum(a.value(), b.value());
  return op.output(y, {a.value(), b.value()}, [is_max](const BackwardContext& c) {
    const Tensor &av = c.saved[0], &bv = c.saved[1];
    return Grads{if_needed(c,
                           0,
                           [&] {
                             return sum_to_shape(
                                 attnlab::mul(c.grad(), winner_share(av, bv, is_max)),
                                 c.input_shape(0));
                           }),
                 if_needed(c, 1, [&] {
                   return sum_to_shape(attnlab::mul(c.grad(), winner_share(bv, av, is_max)),
                                       c.input_shape(1));
                 })};
  });
}
}  // namespace

Var maximum(const Var& a, const Var& b) {
  return extreme(a, b, true);
}
Var minimum(const Var& a, const Var& b) {
  return extreme(a, b, false);
}

// c = a + s;  da = dc
Var add(const Var& a, double s) {
  OpRecorder op("add_scalar", {a});
  return op.output(
      attnlab::add(a.value(), s), {}, [](const BackwardContext& c) { return Grads{c.grad()}; });
}

// c = a - s;  da = dc
Var sub(const Var& a, double s) {
  return add(a, -s);
}

// c = s - b;  db = -dc
Var sub(double s, const Var& b) {
  OpRecorder op("rsub_scalar", {b});
  return op.output(attnlab::sub(s, b.value()), {}, [](const BackwardContext& c) {
    return Grads{attnlab::neg(c.grad())};
  });
}

// c = a * s;  da = dc * s
Var mul(const Var& a, double s) {
  OpRecorder op("mul_scalar", {a});
  return op.output(attnlab::mul(a.value(), s), {}, [s](const BackwardContext& c) {
    return Grads{attnlab::mul(c.grad(), s)};
  });
}

// c = a / s;  da = dc / s
Var div(const Var& a, double s) {
  OpRecorder op("div_scalar", {a});
  return op.output(attnlab::div(a.value(), s), {}, [s](const BackwardContext& c) {
    return Grads{attnlab::div(c.grad(), s)};
  });
}

// c = s / b;  db = -dc * c / b
Var div(double s, const Var& b) {
  OpRecorder op("rdiv_scalar", {b});
  Tensor y = attnlab::div(s, b.value());
  return op.output(y, {b.value(), y}, [](const BackwardContext& c) {
    return Grads{attnlab::neg(attnlab::div(attnlab::mul(c.grad(), c.saved[1]), c.saved[0]))};
  });
}

// c = a^p;  da = dc * p * a^(p-1)
Var pow(const Var& a, double p) {
  OpRecorder op("pow_scalar", {a});
  return op.output(attnlab::pow(a.value(), p), {a.value()}, [p](const BackwardContext& c) {
    return Grads{attnlab::mul(c.grad(), attnlab::mul(attnlab::pow(c.saved[0], p - 1.0), p))};
  });
}

// c = -a;  da = -dc
Var neg(const Var& a) {
  OpRecorder op("neg", {a});
  return op.output(attnlab::neg(a.value()), {}, [](const BackwardContext& c) {
    return Grads{attnlab::neg(c.grad())};
  });
}

}  // namespace attnlab::ag
