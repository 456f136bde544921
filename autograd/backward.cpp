// backward(): the reverse sweep. The algorithm is micrograd's (experiments/lessons, lesson 0):
//   1. seed: each root's gradient is 1 (or the gradient passed for it);
//   2. collect every node reachable from the roots;
//   3. order them topologically, consumers before producers (node numbers already are such an
//      order, so this is a sort by decreasing number);
//   4. run each node's backward in that order, summing what it returns into its inputs' slots;
//   5. accumulate the leaves' summed gradients into their grad().
// backward() at the end of this file is exactly these five steps, one call each. Everything else
// (hooks, retain_grad, Tape timing and gradient norms, shape and anomaly checks, releasing saved
// tensors, not aliasing a caller's tensor in a leaf) sits inside those steps, in the small
// functions above it.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>

#include "autograd/engine.hpp"
#include "autograd/engine_internal.hpp"
#include "core/elementwise.hpp"
#include "core/reduce.hpp"

namespace attnlab::ag {
namespace {

using internal::describe_node;
using internal::t_anomaly;

std::atomic<uint64_t> g_backward_epoch{0};

// ---- gradient slots and the per-thread scratch that holds them --------------------------------
// Gradient slots of one backward sweep (kept here, not in the nodes, to keep nodes small).
struct NodeSlot {
  SmallVec<Tensor, 1> grads;  // summed output gradients
  SmallVec<uint8_t, 1> owned;
};
struct LeafSlot {
  AutogradMeta* meta;
  Tensor grad;
  bool owned;
};

// Per-thread scratch reused across backward calls: big per-call vectors would be fresh mmaps
// (page faults) for large graphs. A backward started from inside another (from a hook) gets
// its own.
struct SweepScratch {
  std::vector<Node*> order;
  std::vector<NodeSlot> slots;
  std::vector<LeafSlot> leaves;
  std::vector<Node*> stack;
  bool in_use = false;
};
thread_local SweepScratch t_scratch;

class ScratchLease {
 public:
  ScratchLease() : s_(t_scratch.in_use ? own_ : t_scratch), shared_(!t_scratch.in_use) {
    if (shared_)
      t_scratch.in_use = true;
  }
  ~ScratchLease() {
    s_.order.clear();
    s_.slots.clear();
    s_.leaves.clear();
    s_.stack.clear();
    if (shared_)
      t_scratch.in_use = false;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  SweepScratch& get() { return s_; }

 private:
  SweepScratch own_;
  SweepScratch& s_;
  bool shared_;
};

// Adds g into a gradient slot. The first gradient is stored by reference (no copy); a second one
// creates a fresh sum that the slot then owns and may update in place.
void accumulate(Tensor& slot, bool& owned, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
    owned = false;
  } else if (owned) {
    add_(slot, g);
  } else {
    slot = add(slot, g);
    owned = true;
  }
}

// ---- hooks ------------------------------------------------------------------------------------
// Anomaly mode: a hook's result is checked like an op's, so that a hook that injects NaN or Inf
// is blamed instead of the op that next reads its gradient. `owner` is the producing node (null
// for a leaf).
void check_hook_result(const AutogradMeta& m,
                       const Node* owner,
                       int id,
                       const Tensor& received,
                       const Tensor& returned) {
  if (!has_nonfinite(returned))
    return;
  const std::string kind = owner ? "Var" : "leaf";
  const std::string var =
      m.label.empty() ? "an unlabelled " + kind : (owner ? "'" : "leaf '") + m.label + "'";
  throw AnomalyError(attnlab::detail::concat(
      "anomaly: gradient hook ",
      id,
      " on ",
      var,
      owner ? " (output " + std::to_string(m.output_nr) + " of " + describe_node(*owner) + ")"
            : std::string(),
      " returned NaN or Inf for a gradient of shape ",
      returned.shape(),
      has_nonfinite(received) ? " (the gradient it received was already non-finite)"
                              : " (the gradient it received was finite: the hook made "
                                "them)"));
}

Tensor apply_hooks(const AutogradMeta& m, Tensor g, const Node* owner) {
  for (const auto& [id, hook] : m.hooks) {
    Tensor replaced = hook(g);
    ATTNLAB_CHECK(
        replaced.defined() && replaced.shape() == g.shape() && replaced.dtype() == g.dtype(),
        GraphError,
        "gradient hook ",
        id,
        " on '",
        m.label,
        "' returned ",
        replaced.defined() ? replaced.shape().str() : std::string("an undefined tensor"),
        " for a gradient of shape ",
        g.shape());
    if (t_anomaly)
      check_hook_result(m, owner, id, g, replaced);
    g = replaced;
  }
  return g;
}

// ---- checks -----------------------------------------------------------------------------------
void check_gradient_count(const std::vector<Var>& roots, const std::vector<Tensor>& grads) {
  ATTNLAB_CHECK(roots.size() == grads.size(),
                GraphError,
                "backward: ",
                roots.size(),
                " outputs but ",
                grads.size(),
                " gradients");
}

// The gradient that starts the sweep at root r: the one given, or 1 for a one-element root.
Tensor root_gradient(const Var& root, const Tensor& given, std::size_t r) {
  ATTNLAB_CHECK(root.defined() && root.requires_grad(),
                GraphError,
                "backward: output ",
                r,
                " does not require grad (no input of its computation "
                "requires grad, or it was computed under NoGradGuard)");
  Tensor g = given;
  if (!g.defined()) {
    ATTNLAB_CHECK(root.numel() == 1,
                  GraphError,
                  "backward: a gradient is needed for a non-scalar output of shape ",
                  root.shape(),
                  " (pass grad_output)");
    g = ones(root.shape(), root.dtype());
  }
  ATTNLAB_CHECK(g.shape() == root.shape() && g.dtype() == root.dtype(),
                GraphError,
                "backward: gradient ",
                g.shape(),
                " ",
                g.dtype(),
                " for an output of ",
                root.shape(),
                " ",
                root.dtype());
  return g;
}

void check_not_released(const Node& n) {
  ATTNLAB_CHECK(!n.released,
                GraphError,
                "backward: ",
                describe_node(n),
                " was already released by an earlier backward; pass retain_graph = true to the "
                "first backward to differentiate the same graph twice");
}

void check_input_grad_count(const Node& n, const InputGrads& grads) {
  ATTNLAB_CHECK(grads.size() == n.inputs.size(),
                GraphError,
                "backward of ",
                describe_node(n),
                " returned ",
                grads.size(),
                " gradients for ",
                n.inputs.size(),
                " inputs");
}

// Input i's gradient must have its shape and dtype and, in anomaly mode, be finite.
void check_input_grad(const Node& n, std::size_t i, const AutogradMeta& m, const Tensor& g) {
  ATTNLAB_CHECK(g.shape() == m.shape && g.dtype() == m.dtype,
                GraphError,
                "backward of ",
                describe_node(n),
                " returned a gradient of ",
                g.shape(),
                " ",
                g.dtype(),
                " for input ",
                i,
                " of ",
                m.shape,
                " ",
                m.dtype);
  if (t_anomaly) {
    ATTNLAB_CHECK(!has_nonfinite(g),
                  AnomalyError,
                  "anomaly: backward of ",
                  describe_node(n),
                  " returned NaN or Inf in the gradient of input ",
                  i,
                  " of shape ",
                  g.shape());
  }
}

// ---- Tape measurements (only for nodes recorded on a Tape) ------------------------------------
bool is_on_tape(const Node& n) {
  return n.info && n.info->on_tape;
}

double tensor_norm(const Tensor& t) {
  return std::sqrt(sum(square(t.to(kFloat64))).item());
}

// Calls the node's backward function, timing it for the Tape.
InputGrads call_backward(Node& n, const BackwardContext& ctx) {
  if (!is_on_tape(n))
    return n.backward(ctx);
  n.info->grad_norm = tensor_norm(ctx.grad());
  const auto started = std::chrono::steady_clock::now();
  InputGrads grads = n.backward(ctx);
  n.info->backward_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return grads;
}

// ---- the sweep --------------------------------------------------------------------------------
// The state of one backward call. Node::visit_epoch/sweep_slot and AutogradMeta::pending_* mark
// which sweep last reached a node or leaf and where its gradient slot is, so that finding a
// slot is one field read. Keeping them here instead, in an open-addressing map from pointer to
// slot, made `attnlab bench tape` about 10 % slower per op (backward about 25 %), measured.
class Sweep {
 public:
  explicit Sweep(bool retain_graph)
      : epoch_(++g_backward_epoch),
        retain_graph_(retain_graph),
        order_(lease_.get().order),
        slots_(lease_.get().slots),
        leaves_(lease_.get().leaves),
        stack_(lease_.get().stack) {}

  // Step 1: each root's gradient goes into the slot of the node that produced it (or of the
  // root itself when it is a leaf).
  void seed_roots(const std::vector<Var>& roots, const std::vector<Tensor>& grad_outputs) {
    for (std::size_t r = 0; r < roots.size(); ++r) {
      const Tensor g = root_gradient(roots[r], grad_outputs[r], r);
      AutogradMeta& m = *roots[r].impl()->meta;
      if (m.grad_fn)
        visit(m.grad_fn.get());  // later nodes are visited by collect_reachable_nodes()
      send(m, g);
    }
  }

  // Step 2: depth-first from the roots' nodes with an explicit stack (no recursion, so a chain of
  // a million ops is fine).
  void collect_reachable_nodes() {
    while (!stack_.empty()) {
      Node* n = stack_.back();
      stack_.pop_back();
      for (const auto& m : n->inputs) {
        if (m && m->grad_fn)
          visit(m->grad_fn.get());
      }
    }
  }

  // Step 3: node numbers grow with creation, and an op is created after its inputs, so sorting
  // by decreasing number runs every consumer before the producers of its inputs.
  void order_topologically() {
    std::sort(
        order_.begin(), order_.end(), [](const Node* a, const Node* b) { return a->seq > b->seq; });
  }
  // Raw pointers suffice: the roots keep the whole graph alive (edges are never cut during
  // backward), and shared_ptr copies would cost two atomic operations per node.
  const std::vector<Node*>& order() const { return order_; }

  // Step 4: the chain rule at one node: its backward maps the summed gradients of its outputs
  // to one gradient per input, which are summed into the inputs' slots.
  void run_node(Node& n) {
    check_not_released(n);
    SmallVec<Tensor, 1> grads = take_output_grads(n);
    const BackwardContext ctx{
        grads.span(), n.saved.span(), n.needs_input_grad.span(), n.inputs.span()};
    InputGrads input_grads = call_backward(n, ctx);
    check_input_grad_count(n, input_grads);
    for (std::size_t i = 0; i < input_grads.size(); ++i) {
      const auto& m = n.inputs[i];
      if (!m || !input_grads[i].defined())
        continue;  // the input needs no gradient, or gets none (zero)
      check_input_grad(n, i, *m, input_grads[i]);
      send(*m, input_grads[i]);
    }
    if (!retain_graph_)
      release_saved(n);
  }

  // Step 5: leaves run their hooks on the summed gradient, then accumulate it into grad().
  void flush_leaf_gradients() {
    for (LeafSlot& slot : leaves_) {
      AutogradMeta* m = slot.meta;
      Tensor g = m->hooks.empty() ? slot.grad : apply_hooks(*m, slot.grad, nullptr);
      if (!m->grad.defined()) {
        // Keep the buffer only if the engine made it (never alias a caller's tensor).
        m->grad = slot.owned && g.same_storage(slot.grad) ? g : g.clone();
      } else {
        add_(m->grad, g);
      }
    }
  }

 private:
  // Gives a node its gradient slot the first time this sweep reaches it.
  void visit(Node* n) {
    if (n->visit_epoch == epoch_)
      return;
    n->visit_epoch = epoch_;
    n->sweep_slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
    slots_.back().grads.assign(n->output_shapes.size(), Tensor());
    slots_.back().owned.assign(n->output_shapes.size(), 0);
    order_.push_back(n);
    stack_.push_back(n);
  }

  // Sums g into the slot of the Var `m`: its producer's output slot (the producer was visited),
  // or its own leaf slot.
  void send(AutogradMeta& m, const Tensor& g) {
    if (m.grad_fn) {
      NodeSlot& slot = slots_[m.grad_fn->sweep_slot];
      bool owned = slot.owned[m.output_nr];
      accumulate(slot.grads[m.output_nr], owned, g);
      slot.owned[m.output_nr] = owned;
      return;
    }
    if (m.pending_epoch != epoch_) {
      m.pending_epoch = epoch_;
      m.pending_slot = static_cast<uint32_t>(leaves_.size());
      leaves_.push_back({&m, Tensor(), false});
    }
    LeafSlot& slot = leaves_[m.pending_slot];
    accumulate(slot.grad, slot.owned, g);
  }

  // The node's summed output gradients (zeros for an output that received none), after the
  // outputs' hooks, and kept in grad() of outputs that retain_grad().
  SmallVec<Tensor, 1> take_output_grads(Node& n) {
    SmallVec<Tensor, 1> grads = std::move(slots_[n.sweep_slot].grads);
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) {
        grads[i] = zeros(n.output_shapes[i], n.dtype);
        continue;
      }
      if (i < n.outputs.size() && n.output_metas[i] && !n.outputs[i].expired()) {
        AutogradMeta* m = n.output_metas[i];
        if (!m->hooks.empty())
          grads[i] = apply_hooks(*m, grads[i], &n);
        if (m->retains_grad)
          m->grad = grads[i];
      }
    }
    return grads;
  }

  // Frees what only this backward needed, so a second backward fails clearly (check_not_released).
  static void release_saved(Node& n) {
    n.saved.clear();
    n.backward = nullptr;
    n.released = true;
  }

  ScratchLease lease_;
  const uint64_t epoch_;
  const bool retain_graph_;
  std::vector<Node*>& order_;
  std::vector<NodeSlot>& slots_;
  std::vector<LeafSlot>& leaves_;
  std::vector<Node*>& stack_;
};

}  // namespace

void backward(const std::vector<Var>& roots,
              const std::vector<Tensor>& grad_outputs,
              bool retain_graph) {
  check_gradient_count(roots, grad_outputs);
  Sweep sweep(retain_graph);
  sweep.seed_roots(roots, grad_outputs);
  sweep.collect_reachable_nodes();
  sweep.order_topologically();
  for (Node* n : sweep.order()) sweep.run_node(*n);
  sweep.flush_leaf_gradients();
}

}  // namespace attnlab::ag
