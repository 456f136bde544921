// Lesson 0: a whole reverse-mode engine in about 60 lines, and where each of its parts lives in
// attnlab's real engine.
//
// The micro engine below works on scalars, in the style of micrograd: every operation makes a
// node that remembers its inputs and a closure adding its gradient into theirs (the chain rule,
// one local derivative at a time); backward orders the nodes so that each one runs after every
// node that consumes it, seeds the root with 1 and runs the closures in that order. attnlab's
// engine (autograd/) does exactly this on tensors; what it adds (saved tensors released after
// backward, no recursion anywhere, gradients summed in per-call slots, hooks, anomaly checks, a
// tape for inspection) sits behind the same few steps. The lesson prints both side by side and
// checks that they compute the same gradients on the same expressions.
#include <cmath>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <unordered_set>
#include <vector>

#include "autograd/autograd.hpp"
#include "core/core.hpp"
#include "experiments/lessons/lesson.hpp"

namespace attnlab::lessons {
namespace micro {

// ---- the micro engine: about 60 lines of code
// ---------------------------------------------------------------
struct Node;
using Value = std::shared_ptr<Node>;
struct Node {
  double data = 0, grad = 0;
  std::vector<Value> inputs;       // the values this one was computed from
  std::function<void()> backward;  // adds d(root)/d(this) * d(this)/d(input) into each input
};

Value leaf(double x) {
  auto v = std::make_shared<Node>();
  v->data = x;
  return v;
}

// Records one operation: its value, its inputs and its local chain rule. The closure reads the
// output through a raw pointer, so a node never owns itself (no reference cycle).
Value record(double data, std::vector<Value> inputs, std::function<void(Node&)> chain_rule) {
  Value out = leaf(data);
  out->inputs = std::move(inputs);
  Node* self = out.get();
  out->backward = [self, chain_rule] {
    chain_rule(*self);
  };
  return out;
}

Value operator+(const Value& a, const Value& b) {  // d(a + b) = da + db
  return record(a->data + b->data, {a, b}, [a, b](Node& y) {
    a->grad += y.grad;
    b->grad += y.grad;
  });
}
Value operator*(const Value& a, const Value& b) {  // d(a b) = b da + a db
  return record(a->data * b->data, {a, b}, [a, b](Node& y) {
    a->grad += y.grad * b->data;
    b->grad += y.grad * a->data;
  });
}
Value operator/(const Value& a, const Value& b) {  // d(a / b) = da / b - (a / b) db / b
  return record(a->data / b->data, {a, b}, [a, b](Node& y) {
    a->grad += y.grad / b->data;
    b->grad -= y.grad * y.data / b->data;
  });
}
Value exp(const Value& x) {  // d e^x = e^x dx
  return record(std::exp(x->data), {x}, [x](Node& y) { x->grad += y.grad * y.data; });
}
Value tanh(const Value& x) {  // d tanh x = (1 - tanh^2 x) dx
  return record(
      std::tanh(x->data), {x}, [x](Node& y) { x->grad += y.grad * (1 - y.data * y.data); });
}

// Orders the nodes reachable from `root` so that every node comes after all of its inputs (a
// depth-first post-order, with an explicit stack: no recursion), then runs the chain rules from
// the root down.
void backward(const Value& root) {
  std::vector<Node*> order;
  std::unordered_set<Node*> seen{root.get()};
  std::vector<std::pair<Node*, std::size_t>> stack{{root.get(), 0}};  // node, next input
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next == node->inputs.size()) {
      order.push_back(node);  // all of its inputs are already in `order`
      stack.pop_back();
      continue;
    }
    Node* input = node->inputs[next++].get();
    if (seen.insert(input).second)
      stack.push_back({input, 0});
  }
  root->grad = 1;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    if ((*it)->backward)
      (*it)->backward();
  }
}
// ---- end of the micro engine ------------------------------------------------------------------

}  // namespace micro
namespace {

// The same steps in attnlab's engine: the right column names the functions and files.
void print_side_by_side(std::ostream& out) {
  const char* rows[][2] = {
      {"Node {data, grad, inputs, backward}",
       "Var (value, grad) + Node {inputs, saved tensors, BackwardFn} (autograd/node.hpp)"},
      {"record(data, inputs, chain_rule)",
       "OpRecorder op(\"exp\", {x}); op.output(y, saved, backward) (autograd/recorder.cpp)"},
      {"closure captures input Values",
       "backward captures only saved Tensors; inputs are edges to their AutogradMeta"},
      {"a->grad += ... inside the closure",
       "BackwardFn returns one gradient per input; Sweep::send() sums them in slots"},
      {"root->grad = 1",
       "backward(): seed_roots() in autograd/backward.cpp (ones, or grad_outputs)"},
      {"backward(root): order = post-order DFS",
       "backward(): collect_reachable_nodes(), then order_topologically() (a sort by node "
       "number, which recorder.cpp's next_seq() makes a topological order)"},
      {"run closures in reverse order",
       "backward(): run_node() on each node: its BackwardFn on the summed output gradients"},
      {"leaves keep .grad",
       "backward(): flush_leaf_gradients(): accumulate into Var::grad() until zero_grad()"},
      {"(nothing is freed)",
       "run_node(): release_saved() unless retain_graph; Node::~Node frees iteratively "
       "(autograd/node.cpp)"},
  };
  out << std::left << std::setw(42) << "micro engine (this file)"
      << "attnlab (autograd/)\n"
      << std::string(42, '-') << std::string(60, '-') << "\n";
  for (const auto& r : rows) out << std::setw(42) << r[0] << r[1] << "\n";
}

bool lesson_micro_engine(std::ostream& out, bool) {
  heading(out, "1. The micro engine and the real one, step by step");
  print_side_by_side(out);

  heading(out, "2. The same expression through both: f(a, b) = (a b + exp(a)) / b");
  micro::Value a = micro::leaf(1.5), b = micro::leaf(2.0);
  micro::Value f = (a * b + micro::exp(a)) / b;
  micro::backward(f);
  ag::Var ra = ag::param(scalar_tensor(1.5, kFloat64)),
          rb = ag::param(scalar_tensor(2.0, kFloat64));
  ag::Var rf = (ra * rb + ag::exp(ra)) / rb;
  rf.backward();
  out << "micro: f = " << f->data << ", df/da = " << a->grad << ", df/db = " << b->grad << "\n"
      << "real:  f = " << rf.item() << ", df/da = " << ra.grad().item()
      << ", df/db = " << rb.grad().item() << "\n";

  heading(out, "3. A neuron, with a value used twice: n = tanh(w1 x1 + w2 x2 + c) * x1");
  // x1 feeds two nodes: its gradient is the sum of both paths (the accumulation every engine
  // must get right).
  const double x1v = 0.7, x2v = -1.3, w1v = 0.4, w2v = 0.9, cv = 0.1;
  micro::Value x1 = micro::leaf(x1v), x2 = micro::leaf(x2v), w1 = micro::leaf(w1v),
               w2 = micro::leaf(w2v), c = micro::leaf(cv);
  micro::Value n = micro::tanh(w1 * x1 + w2 * x2 + c) * x1;
  micro::backward(n);
  auto p = [](double v) {
    return ag::param(scalar_tensor(v, kFloat64));
  };
  ag::Var rx1 = p(x1v), rx2 = p(x2v), rw1 = p(w1v), rw2 = p(w2v), rc = p(cv);
  ag::Var rn = ag::tanh(rw1 * rx1 + rw2 * rx2 + rc) * rx1;
  rn.backward();
  const std::vector<std::pair<micro::Value, ag::Var>> pairs = {
      {x1, rx1}, {x2, rx2}, {w1, rw1}, {w2, rw2}, {c, rc}};
  const char* names[] = {"x1", "x2", "w1", "w2", "c"};
  double worst = 0;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const double mg = pairs[i].first->grad, rg = pairs[i].second.grad().item();
    out << "dn/d" << names[i] << ": micro " << mg << ", real " << rg << "\n";
    worst = std::max(worst, std::fabs(mg - rg));
  }
  out << "\n";
  bool ok = check(out,
                  "both engines give the same value and gradients of f (to 1e-15)",
                  std::fabs(f->data - rf.item()) < 1e-15 &&
                      std::fabs(a->grad - ra.grad().item()) < 1e-15 &&
                      std::fabs(b->grad - rb.grad().item()) < 1e-15);
  ok &= check(out, "both engines give the same neuron gradients (to 1e-15)", worst < 1e-15);
  // By hand: df/da = (b + e^a) / b, df/db = -e^a / b^2.
  ok &= check(out,
              "and they are the hand-derived ones",
              std::fabs(a->grad - (2.0 + std::exp(1.5)) / 2.0) < 1e-14 &&
                  std::fabs(b->grad + std::exp(1.5) / 4.0) < 1e-14);
  return ok;
}

const Register lesson_0(0, "A whole engine in about 60 lines", lesson_micro_engine);

}  // namespace
}  // namespace attnlab::lessons
