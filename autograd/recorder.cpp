// Recording: OpRecorder builds one Node per differentiable op, numbered so that node numbers are
// a topological order (next_seq below), and non_differentiable() marks constant outputs.
#include <algorithm>
#include <atomic>

#include "autograd/engine.hpp"
#include "autograd/engine_internal.hpp"
#include "autograd/tape.hpp"
#include "core/elementwise.hpp"
#include "core/pool.hpp"

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

}  // namespace

using internal::t_anomaly;

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
  node_ = std::allocate_shared<Node>(attnlab::detail::PoolAllocator<Node>());
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
    node_->info->scope = current_scope();
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
  throw AnomalyError(attnlab::detail::concat(
      "anomaly: forward of '",
      op_,
      "' (",
      node,
      current_scope().empty() ? std::string() : ", scope '" + current_scope() + "'",
      ", inputs: ",
      anomaly_inputs_.empty() ? std::string("none") : anomaly_inputs_,
      ") produced NaN or Inf in output ",
      i,
      " of shape ",
      value.shape(),
      check_inputs_finite_ ? " (all of its inputs were finite: this op created them)"
                           : " (some input was already non-finite)"));
}

Var OpRecorder::make_output(const Tensor& value, std::size_t i, bool differentiable) {
  auto impl = std::allocate_shared<VarImpl>(attnlab::detail::PoolAllocator<VarImpl>());
  impl->value = value;
  if (node_) {
    node_->output_shapes.push_back(value.shape());
    if (differentiable) {
      auto meta =
          std::allocate_shared<AutogradMeta>(attnlab::detail::PoolAllocator<AutogradMeta>());
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

}  // namespace attnlab::ag
