// Lesson 1: a tape by hand.
//
// Reverse-mode autodiff records every operation of the forward pass on a tape; backward walks the
// tape from the end and applies each operation's derivative (the chain rule) once. Here: a few
// scalar and tensor operations, the tape's report and its graph, backward, and the gradient
// compared with a finite difference.
#include <cmath>
#include <iostream>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/lessons/lesson.hpp"

namespace attnlab::lessons {
namespace {

bool lesson_tape(std::ostream& out, bool) {
  using namespace attnlab::ag;
  heading(out, "1. Scalars: f(a, b) = (a * b + exp(a)) / b");
  // Leaves that require grad are the variables we differentiate with respect to.
  Var a = param(scalar_tensor(1.5, kFloat64)), b = param(scalar_tensor(2.0, kFloat64));
  label(a, "a");
  label(b, "b");
  Tape tape;  // while it lives, every op on this thread is recorded in it, in order
  Var ab = label(a * b, "a*b");
  Var e = label(exp(a), "exp(a)");
  Var f = label((ab + e) / b, "f");
  out << "f = " << f.item() << "\n\nthe tape after the forward pass:\n" << tape.report();
  tape.backward(f);  // one reverse sweep: d f / d every leaf
  out << "\nafter backward (note the gradient norm column):\n" << tape.report();
  // By hand: df/da = (b + e^a) / b, df/db = (a b - (a b + e^a)) / b^2 = -e^a / b^2.
  const double da = (2.0 + std::exp(1.5)) / 2.0, db = -std::exp(1.5) / 4.0;
  out << "\ndf/da = " << a.grad().item() << " (by hand " << da << ")\n";
  out << "df/db = " << b.grad().item() << " (by hand " << db << ")\n";
  out << "\nthe graph in Graphviz DOT (dot -Tpng graph.dot > graph.png):\n" << tape.to_dot();

  heading(out, "2. Tensors: g(W) = sum(softmax(W x))");
  Tape tape2;
  Var w = label(param(rand({3, 4}, RngKey{1, 0}, kFloat64)), "W");
  const Tensor x = tensor({0.5, -1.0, 2.0, 0.3}, kFloat64).reshape({4, 1});
  Var z = label(matmul(w, constant(x)), "Wx");
  Var g = sum(square(softmax(z, 0)));
  tape2.backward(g);
  out << tape2.report() << "\ndg/dW =\n" << w.grad() << "\n";

  heading(out, "3. The gradient against a finite difference");
  // Perturb one entry of W by +-eps and difference g: it must match the tape's gradient.
  auto g_at = [&](double delta) {
    NoGradGuard no_grad;  // evaluation only: record nothing
    Tensor wv = w.value().clone();
    wv.set({1, 2}, wv.get({1, 2}) + delta);
    return sum(square(softmax(matmul(constant(wv), constant(x)), 0))).item();
  };
  const double eps = 1e-6, numeric = (g_at(eps) - g_at(-eps)) / (2 * eps);
  const double analytic = w.grad().get({1, 2});
  out << "dg/dW[1, 2]: tape " << analytic << ", finite difference " << numeric << "\n\n";
  bool ok =
      check(out,
            "df/da and df/db match the hand derivation",
            std::fabs(a.grad().item() - da) < 1e-12 && std::fabs(b.grad().item() - db) < 1e-12);
  ok &= check(out,
              "the tape's gradient matches the finite difference to 1e-8",
              std::fabs(analytic - numeric) < 1e-8);
  // f: mul, exp, add, div; g: matmul, softmax, square, sum.
  ok &= check(out, "the tapes recorded 4 and 4 operations", tape.size() == 4 && tape2.size() == 4);
  return ok;
}

const Register lesson_1(1, "A tape by hand", lesson_tape);

}  // namespace
}  // namespace attnlab::lessons
