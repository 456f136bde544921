// Lesson 2: writing a custom op with a hand-written backward, and gradchecking it.
//
// Fused kernels (all of attnlab's attention kernels) are custom ops: a forward on plain tensors,
// the tensors the backward needs, and a backward that maps output gradients to input gradients.
// gradcheck compares that backward with finite differences; here is what a correct and a wrong
// backward look like in its report.
#include <cmath>
#include <iostream>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/lessons/lesson.hpp"

namespace attnlab::lessons {
namespace {

// swish(x) = x * sigmoid(x);  d/dx = s + x s (1 - s) with s = sigmoid(x)
class Swish : public ag::Function {
 public:
  explicit Swish(bool broken = false) : broken_(broken) {}
  const char* name() const override { return broken_ ? "swish_broken" : "swish"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    Tensor s = sigmoid(in[0]);
    save_for_backward({in[0], s});  // what the backward needs (kept only if a grad is needed)
    return {mul(in[0], s)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& grad) override {
    const Tensor &x = saved()[0], &s = saved()[1];
    // The planted bug: forgetting the product rule's second term.
    Tensor d = broken_ ? s : add(s, mul(mul(x, s), sub(1.0, s)));
    return {mul(grad[0], d)};
  }

 private:
  bool broken_;
};

bool lesson_custom_op(std::ostream& out, bool) {
  using namespace attnlab::ag;
  heading(out, "1. The op");
  Var x = param(tensor({-2.0, -0.5, 0.0, 1.0, 3.0}, kFloat64));
  Var y = apply<Swish>({x})[0];
  sum(y).backward();
  out << "x          = " << x.value() << "\nswish(x)   = " << y.value()
      << "\nd swish/dx = " << x.grad() << "\n";

  heading(out, "2. gradcheck: the correct backward");
  const Tensor probe = tensor({-1.3, 0.2, 0.7, 2.1}, kFloat64);
  const GradcheckResult good =
      gradcheck([](const std::vector<Var>& v) { return apply<Swish>({v[0]})[0]; }, {probe});
  out << good.report();

  heading(out, "3. gradcheck: a wrong backward (the product rule's second term forgotten)");
  const GradcheckResult bad =
      gradcheck([](const std::vector<Var>& v) { return apply<Swish>({v[0]}, true)[0]; }, {probe});
  out << bad.report()
      << "\nReading the report: each line is one Jacobian entry, the analytic value (from the\n"
         "backward) against the numeric one (finite differences). Here analytic = sigmoid(x)\n"
         "everywhere: the missing term x s (1 - s) is exactly the difference.\n\n";
  bool ok = check(out, "the correct backward passes gradcheck", good.ok);
  ok &= check(out,
              "the wrong backward fails it, with its worst entries listed",
              !bad.ok && !bad.worst.empty());
  return ok;
}

const Register lesson_2(2, "Writing a custom op and gradchecking it", lesson_custom_op);

}  // namespace
}  // namespace attnlab::lessons
