#include "autograd/engine.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "autograd/tape.hpp"
#include "core/elementwise.hpp"
#include "core/pool.hpp"
#include "core/reduce.hpp"

namespace attnlab::ag {
namespace {

// Node numbers: a topological order (every node above its inputs' producers) whatever thread
// recorded each node, which backward relies on. A thread_local counter broke it: a graph continued
// on a fresh thread restarted at 1, and backward ran consumers before producers (silently 0
// gradients). One atomic fetch_add per node would fix it but cost ~20 ns on the 2-core test
// machine, 5-10 % of a scalar op's forward in `attnlab bench tape`, so threads number their nodes
// from blocks of kSeqBlock numbers taken from g_seq_blocks, and take a fresh block when theirs is
// used up or when an input's producer holds a number >= the next one (it was recorded on another
// thread, from a block taken later). A fresh block is always above that producer: the producer's
// block came from a fetch_add sequenced before the producer was numbered, which happens-before this
// recording (the input Var was handed over with some synchronization: a join, a mutex). fetch_adds
// on one atomic follow a single modification order consistent with happens-before (coherence, true
// of relaxed operations too), so this fetch_add returns a base above the producer's whole block.
// Blocks are disjoint, so numbers stay unique (reports and DOT graphs use them as ids).
constexpr uint64_t kSeqBlock = 1024;
std::atomic<uint64_t> g_seq_blocks{1};  // 0 is reserved for "no producer" (NodeInfo)
thread_local uint64_t t_seq_next = 0;
thread_local uint64_t t_seq_end = 0;

// The number for a node whose inputs' producers have numbers <= max_input_seq.
uint64_t next_seq(uint64_t max_input_seq) {
  if (t_seq_next == t_seq_end || t_seq_next <= max_input_seq) {
    t_seq_next = g_seq_blocks.fetch_add(kSeqBlock, std::memory_order_relaxed);
    t_seq_end = t_seq_next + kSeqBlock;
  }
  return t_seq_next++;
}

thread_local bool t_anomaly = false;
thread_local std::string t_scope;
// Nodes waiting to be destroyed by the outermost Node destructor on this thread.
thread_local std::vector<std::shared_ptr<Node>>* t_release_list = nullptr;
std::atomic<uint64_t> g_backward_epoch{0};

// "'op' (node #n, label 'a', scope 's')"; a node with several outputs lists every label
// ("labels 'a', 'b'", "-" for an unlabelled output).
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
  throw AnomalyError(detail::concat(
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

double tensor_norm(const Tensor& t) {
  return std::sqrt(sum(square(t.to(kFloat64))).item());
}

}  // namespace

// ---- Node -------------------------------------------------------------------------------------
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

// ---- anomaly mode and scopes ------------------------------------------------------------------
bool anomaly_enabled() {
  return t_anomaly;
}
void set_anomaly_enabled(bool on) {
  t_anomaly = on;
}

Scope::Scope(const std::string& name) : saved_size_(t_scope.size()) {
  if (!t_scope.empty())
    t_scope += '.';
  t_scope += name;
}
Scope::~Scope() {
  t_scope.resize(saved_size_);
}
const std::string& current_scope() {
  return t_scope;
}

// ---- recording --------------------------------------------------------------------------------
OpRecorder::OpRecorder(const char* op, std::initializer_list<Var> inputs) : op_(op) {
  SmallVec<const Var*, 4> ptrs;
  for (const Var& v : inputs) ptrs.push_back(&v);
  init(op, ptrs.data(), ptrs.size());
}

OpRecorder::OpRecorder(const char* op, const std::vector<Var>& inputs) : op_(op) {
  SmallVec<const Var*, 4> ptrs;
  for (const Var& v : inputs) ptrs.push_back(&v);
  init(op, ptrs.data(), ptrs.size());
}

void OpRecorder::init(const char* op, const Var* const* inputs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    ATTNLAB_CHECK(inputs[i]->defined(), ValueError, op, ": input ", i, " is an undefined Var");
  }
  if (t_anomaly) {
    for (std::size_t i = 0; i < n; ++i) {
      if (has_nonfinite(inputs[i]->value()))
        check_inputs_finite_ = false;
      const std::string& l = inputs[i]->label();
      anomaly_inputs_ += (i ? ", " : "") + (l.empty() ? "unlabelled" : "'" + l + "'") + " " +
                         inputs[i]->shape().str();
    }
  }
  if (!grad_enabled())
    return;
  bool any = false;
  for (std::size_t i = 0; i < n; ++i) any = any || inputs[i]->requires_grad();
  if (!any)
    return;
  node_ = std::allocate_shared<Node>(detail::PoolAllocator<Node>());
  node_->op = op;
  uint64_t max_input_seq = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool needs = inputs[i]->requires_grad();
    node_->inputs.push_back(needs ? inputs[i]->impl()->meta : nullptr);
    node_->needs_input_grad.push_back(needs);
    const Node* producer = needs ? inputs[i]->impl()->meta->grad_fn.get() : nullptr;
    if (producer)
      max_input_seq = std::max(max_input_seq, producer->seq);
  }
  // Numbered now, not when the outputs exist, so that a forward anomaly error can name the node.
  node_->seq = next_seq(max_input_seq);
  Tape* tape = Tape::current();
  if (tape || t_anomaly) {
    node_->info = std::make_unique<NodeInfo>();
    node_->info->scope = t_scope;
  }
  if (tape) {
    NodeInfo& info = *node_->info;
    info.on_tape = true;
    for (std::size_t i = 0; i < n; ++i) {
      const auto fn = inputs[i]->grad_fn();
      info.input_shapes.push_back(inputs[i]->shape());
      info.input_producers.push_back(fn ? fn->seq : 0);
      info.input_labels.push_back(inputs[i]->label());
    }
    timed_ = true;
    start_ = std::chrono::steady_clock::now();
  }
}

bool OpRecorder::needs_input_grad(std::size_t i) const {
  return node_ && i < node_->needs_input_grad.size() && node_->needs_input_grad[i];
}

void OpRecorder::check_output_finite(const Tensor& value, std::size_t i) const {
  if (!has_nonfinite(value))
    return;
  const std::string node = node_             ? "node #" + std::to_string(node_->seq)
                           : !grad_enabled() ? std::string("no node: grad mode is off")
                                             : std::string("no node: no input requires grad");
  throw AnomalyError(detail::concat("anomaly: forward of '",
                                    op_,
                                    "' (",
                                    node,
                                    t_scope.empty() ? std::string() : ", scope '" + t_scope + "'",
                                    ", inputs: ",
                                    anomaly_inputs_.empty() ? std::string("none") : anomaly_inputs_,
                                    ") produced NaN or Inf in output ",
                                    i,
                                    " of shape ",
                                    value.shape(),
                                    check_inputs_finite_
                                        ? " (all of its inputs were finite: this op created them)"
                                        : " (some input was already non-finite)"));
}

Var OpRecorder::make_output(const Tensor& value, std::size_t i, bool differentiable) {
  auto impl = std::allocate_shared<VarImpl>(detail::PoolAllocator<VarImpl>());
  impl->value = value;
  if (node_) {
    node_->output_shapes.push_back(value.shape());
    if (differentiable) {
      auto meta = std::allocate_shared<AutogradMeta>(detail::PoolAllocator<AutogradMeta>());
      meta->shape = value.shape();
      meta->dtype = value.dtype();
      meta->requires_grad = true;
      meta->grad_fn = node_;
      meta->output_nr = static_cast<int>(i);
      node_->outputs.push_back(meta);
      node_->output_metas.push_back(meta.get());
      impl->meta = std::move(meta);
    } else {
      impl->non_differentiable_op = op_;
      node_->outputs.push_back({});  // keeps output numbering aligned
      node_->output_metas.push_back(nullptr);
    }
  }
  return Var(std::move(impl));
}

void OpRecorder::finish(SavedTensors saved, BackwardFn backward) {
  for (const Tensor& t : saved) node_->saved_bytes += t.defined() ? t.nbytes() : 0;
  node_->saved = std::move(saved);
  node_->backward = std::move(backward);
  if (Tape* tape = Tape::current()) {
    if (timed_) {
      node_->info->forward_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
              .count();
    }
    tape->record(node_);
  }
}

Var OpRecorder::output(const Tensor& value, SavedTensors saved, BackwardFn backward) {
  if (t_anomaly)
    check_output_finite(value, 0);
  Var out = make_output(value, 0, true);
  if (node_) {
    node_->dtype = value.dtype();
    finish(std::move(saved), std::move(backward));
  }
  return out;
}

std::vector<Var> OpRecorder::outputs(const std::vector<Tensor>& values,
                                     SavedTensors saved,
                                     BackwardFn backward,
                                     std::vector<bool> differentiable) {
  if (t_anomaly) {
    for (std::size_t i = 0; i < values.size(); ++i) check_output_finite(values[i], i);
  }
  std::vector<Var> out;
  out.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    out.push_back(make_output(values[i], i, differentiable.empty() || differentiable[i]));
  }
  if (node_) {
    node_->dtype = values.empty() ? kFloat32 : values[0].dtype();
    finish(std::move(saved), std::move(backward));
  }
  return out;
}

Var non_differentiable(const char* op, const Tensor& value) {
  auto impl = std::make_shared<VarImpl>();
  impl->value = value;
  impl->non_differentiable_op = op;
  return Var(std::move(impl));
}

// ---- backward ----------------------------------------------------------------------------------
namespace {
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
}  // namespace

void backward(const std::vector<Var>& roots,
              const std::vector<Tensor>& grad_outputs,
              bool retain_graph) {
  ATTNLAB_CHECK(roots.size() == grad_outputs.size(),
                GraphError,
                "backward: ",
                roots.size(),
                " outputs but ",
                grad_outputs.size(),
                " gradients");
  const uint64_t epoch = ++g_backward_epoch;
  ScratchLease lease;
  // Every node to run. Raw pointers suffice: the roots keep the whole graph alive (edges are never
  // cut during backward), and shared_ptr copies would cost two atomic operations per node.
  std::vector<Node*>& order = lease.get().order;
  std::vector<NodeSlot>& slots = lease.get().slots;
  std::vector<LeafSlot>& leaves = lease.get().leaves;
  std::vector<Node*>& stack = lease.get().stack;

  auto visit = [&](Node* n) {
    if (n->visit_epoch == epoch)
      return;
    n->visit_epoch = epoch;
    n->sweep_slot = static_cast<uint32_t>(slots.size());
    slots.emplace_back();
    slots.back().grads.assign(n->output_shapes.size(), Tensor());
    slots.back().owned.assign(n->output_shapes.size(), 0);
    order.push_back(n);
    stack.push_back(n);
  };
  auto send_to_node = [&](Node* n, int output_nr, const Tensor& g) {
    NodeSlot& slot = slots[n->sweep_slot];
    bool owned = slot.owned[output_nr];
    accumulate(slot.grads[output_nr], owned, g);
    slot.owned[output_nr] = owned;
  };
  auto send_to_leaf = [&](AutogradMeta* m, const Tensor& g) {
    if (m->pending_epoch != epoch) {
      m->pending_epoch = epoch;
      m->pending_slot = static_cast<uint32_t>(leaves.size());
      leaves.push_back({m, Tensor(), false});
    }
    LeafSlot& slot = leaves[m->pending_slot];
    accumulate(slot.grad, slot.owned, g);
  };

  // Seed the roots.
  for (std::size_t r = 0; r < roots.size(); ++r) {
    const Var& root = roots[r];
    ATTNLAB_CHECK(root.defined() && root.requires_grad(),
                  GraphError,
                  "backward: output ",
                  r,
                  " does not require grad (no input of its computation "
                  "requires grad, or it was computed under NoGradGuard)");
    Tensor g = grad_outputs[r];
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
    const auto& meta = root.impl()->meta;
    if (!meta->grad_fn) {
      send_to_leaf(meta.get(), g);
      continue;
    }
    visit(meta->grad_fn.get());
    send_to_node(meta->grad_fn.get(), meta->output_nr, g);
  }

  // Collect every reachable node with an explicit stack (no recursion).
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& m : n->inputs) {
      if (m && m->grad_fn)
        visit(m->grad_fn.get());
    }
  }
  // Creation order is a topological order: consumers always have larger sequence numbers.
  std::sort(
      order.begin(), order.end(), [](const Node* a, const Node* b) { return a->seq > b->seq; });

  for (Node* node_ptr : order) {
    Node& n = *node_ptr;
    ATTNLAB_CHECK(!n.released,
                  GraphError,
                  "backward: ",
                  describe_node(n),
                  " was already released by an earlier backward; pass retain_graph = true to the "
                  "first backward to differentiate the same graph twice");
    SmallVec<Tensor, 1> grads = std::move(slots[n.sweep_slot].grads);
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
    if (n.info && n.info->on_tape)
      n.info->grad_norm = tensor_norm(grads[0]);

    const BackwardContext ctx{
        grads.span(), n.saved.span(), n.needs_input_grad.span(), n.inputs.span()};
    const bool timed = n.info && n.info->on_tape;
    const auto started =
        timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    InputGrads input_grads = n.backward(ctx);
    if (timed) {
      n.info->backward_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count();
    }
    ATTNLAB_CHECK(input_grads.size() == n.inputs.size(),
                  GraphError,
                  "backward of ",
                  describe_node(n),
                  " returned ",
                  input_grads.size(),
                  " gradients for ",
                  n.inputs.size(),
                  " inputs");
    for (std::size_t i = 0; i < input_grads.size(); ++i) {
      const auto& m = n.inputs[i];
      const Tensor& g = input_grads[i];
      if (!m || !g.defined())
        continue;
      ATTNLAB_CHECK(g.shape() == m->shape && g.dtype() == m->dtype,
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
                    m->shape,
                    " ",
                    m->dtype);
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
      if (m->grad_fn) {
        send_to_node(m->grad_fn.get(), m->output_nr, g);
      } else {
        send_to_leaf(m.get(), g);
      }
    }
    if (!retain_graph) {
      n.saved.clear();
      n.backward = nullptr;
      n.released = true;
    }
  }

  // Leaves: run their hooks on the summed gradient, then accumulate into .grad.
  for (LeafSlot& slot : leaves) {
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

}  // namespace attnlab::ag
