// Node lifetime and names: the iterative destructor (no recursion on long chains) and the labels
// and scope that error messages and reports print.
#include <memory>
#include <vector>

#include "autograd/engine_internal.hpp"

namespace attnlab::ag {
namespace {
// Nodes waiting to be destroyed by the outermost Node destructor on this thread.
thread_local std::vector<std::shared_ptr<Node>>* t_release_list = nullptr;
}  // namespace

Node::~Node() {
  // Producers kept alive only by this node are moved to a work list and destroyed by a loop, not
  // by recursive shared_ptr destructors, which overflow the stack on long chains (PyTorch #5534).
  std::vector<std::shared_ptr<Node>> local;
  auto& list = t_release_list ? *t_release_list : local;
  for (auto& m : inputs) {
    if (m && m.use_count() == 1 && m->grad_fn && m->grad_fn.use_count() == 1) {
      list.push_back(std::move(m->grad_fn));
    }
  }
  inputs.clear();
  if (t_release_list)
    return;  // an outer destructor drains the list
  t_release_list = &local;
  while (!local.empty()) {
    std::shared_ptr<Node> n = std::move(local.back());
    local.pop_back();
    n.reset();  // may append to `local`
  }
  t_release_list = nullptr;
}

const std::string& Node::scope() const {
  static const std::string kNone;
  return info ? info->scope : kNone;
}

std::string Node::output_label(int i) const {
  if (i < static_cast<int>(outputs.size())) {
    if (auto m = outputs[i].lock())
      return m->label;
  }
  return "";
}

std::string Node::output_labels() const {
  std::string joined;
  bool any = false;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const std::string l = output_label(static_cast<int>(i));
    any = any || !l.empty();
    joined += (i ? ", " : "") + (l.empty() ? std::string("-") : l);
  }
  return any ? joined : std::string();
}

namespace internal {
// A node with several outputs lists every label ("labels 'a', 'b'", "-" for an unlabelled one).
std::string describe_node(const Node& n) {
  std::string s = "'" + std::string(n.op) + "' (node #" + std::to_string(n.seq);
  const std::string labels = n.output_labels();
  if (!labels.empty()) {
    std::string quoted;
    for (std::size_t i = 0; i < n.outputs.size(); ++i) {
      const std::string l = n.output_label(static_cast<int>(i));
      quoted += (i ? ", " : "") + (l.empty() ? std::string("-") : "'" + l + "'");
    }
    s += (n.outputs.size() > 1 ? ", labels " : ", label ") + quoted;
  }
  if (!n.scope().empty())
    s += ", scope '" + n.scope() + "'";
  return s + ")";
}
}  // namespace internal

}  // namespace attnlab::ag
