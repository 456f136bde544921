// The engine: recording ops (OpRecorder), the backward sweep, grad mode scopes, anomaly mode.
//
// Every differentiable op is a free function that validates its inputs, runs a core kernel, and
// hands the result to an OpRecorder together with the tensors its backward needs and the
// backward itself, written next to the forward:
//
//   // y = exp(x);  dx = dy * y
//   Var exp(const Var& x) {
//     OpRecorder op("exp", {x});
//     Tensor y = attnlab::exp(x.value());
//     return op.output(y, {y}, [](const BackwardContext& c) {
//       return InputGrads{mul(c.grad(), c.saved[0])};
//     });
//
// Backward functions read input shapes from c.input_shape(i) rather than capturing them, so that
// the lambda fits std::function's inline storage (recording an op costs no extra allocation).
//   }
//
// When grad mode is off or no input requires grad, output() builds no node and drops `saved`.
//
// Threads. What may run at the same time:
//   - recording on several threads, including graphs that share read-only inputs: constants,
//     tensors, and leaves (parameters) that no backward reaches meanwhile;
//   - a graph recorded in pieces on several threads: a Var made on one thread may be used on
//     another once handed over with synchronization (a join, a mutex, a future). Node numbers
//     are a topological order across threads (recorder.cpp, next_seq), so backward orders nodes
//     correctly whatever thread recorded each one;
//   - backward on several threads over disjoint graphs (no node and no leaf that requires grad
//     in common; shared constants are fine).
// What may not:
//   - backward, or freeing the graphs, on several threads at once when the graphs share a
//     non-leaf Var (a common node): backward writes scratch fields in the nodes (visit_epoch,
//     sweep_slot), and ~Node's iterative release of producers reads their reference counts
//     without synchronizing with other threads. Finish them one after the other, or detach()
//     the Var into a leaf per thread;
//   - two backwards that reach a common leaf that requires grad (a shared parameter): backward
//     writes scratch fields in leaves (pending_epoch, pending_slot) and accumulates into their
//     grad(). Run them one after the other, or give each thread its own parameters;
//   - reading or changing a Var's grad(), hooks, label or requires_grad while a backward that
//     reaches it runs (backward writes grad() and calls hooks on its own thread);
//   - recording ops on Vars of a graph while a backward over that graph runs on another thread
//     (backward releases saved tensors and writes the nodes; record after it returns).
// Per thread: a Tape records only the nodes its own thread creates (Tape::current is
// thread-local) and is used by that thread only, and grad mode (NoGradGuard), anomaly mode
// (AnomalyGuard) and Scope names apply only to the thread that set them: a worker thread starts
// with grad mode on, anomaly mode off, no scope and no tape.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <vector>

#include "autograd/node.hpp"
#include "autograd/var.hpp"

namespace attnlab::ag {

class OpRecorder {
 public:
  OpRecorder(const char* op, std::initializer_list<Var> inputs);
  OpRecorder(const char* op, const std::vector<Var>& inputs);
  OpRecorder(const OpRecorder&) = delete;
  OpRecorder& operator=(const OpRecorder&) = delete;

  // True when the result will be differentiable (an input requires grad and grad mode is on).
  // Ops use it to skip work that only the backward needs.
  bool needs_grad() const { return node_ != nullptr; }
  bool needs_input_grad(std::size_t i) const;

  Var output(const Tensor& value, SavedTensors saved, BackwardFn backward);
  // Several outputs. differentiable[i] == false marks output i as non-differentiable (it gets no
  // gradient and is returned as a constant); empty means all differentiable.
  std::vector<Var> outputs(const std::vector<Tensor>& values,
                           SavedTensors saved,
                           BackwardFn backward,
                           std::vector<bool> differentiable = {});

 private:
  void init(const char* op, const Var* const* inputs, std::size_t n);
  void check_output_finite(const Tensor& value, std::size_t i) const;
  Var make_output(const Tensor& value, std::size_t i, bool differentiable);
  void finish(SavedTensors saved, BackwardFn backward);
  const char* op_;
  std::shared_ptr<Node> node_;
  std::chrono::steady_clock::time_point start_;
  bool timed_ = false;
  bool check_inputs_finite_ = true;  // anomaly mode: were all inputs finite?
  std::string anomaly_inputs_;       // anomaly mode: the inputs' labels and shapes, for errors
};

// A Var for the output of a non-differentiable op (argmax, one_hot, ...): a constant that
// remembers the op, so requires_grad_() on it fails with a clear message.
Var non_differentiable(const char* op, const Tensor& value);

// Backward from several outputs at once (each with its gradient; an undefined gradient means 1
// for one-element outputs).
void backward(const std::vector<Var>& outputs,
              const std::vector<Tensor>& grad_outputs,
              bool retain_graph = false);

// ---- anomaly mode -----------------------------------------------------------------------------
// When enabled (thread-local), every forward and backward output, and every gradient a hook
// returns, is checked for NaN/Inf and an AnomalyError names where it came from:
//   forward:  the op, its node number (when a node is recorded), its scope and its inputs'
//             labels and shapes. Not the output's label: a Var is labelled after the op returns
//             it, so no label exists yet when the check runs;
//   backward: the op, its node number, its outputs' labels and its scope;
//   hook:     the hook's id and the label of the Var it is registered on (and, for a non-leaf,
//             the node that produced the Var).
bool anomaly_enabled();
void set_anomaly_enabled(bool on);
class AnomalyGuard {
 public:
  explicit AnomalyGuard(bool on = true) : saved_(anomaly_enabled()) { set_anomaly_enabled(on); }
  ~AnomalyGuard() { set_anomaly_enabled(saved_); }
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool saved_;
};

// ---- scopes -----------------------------------------------------------------------------------
// Names the code region that creates nodes ("blocks.0.attn"); nested scopes join with '.'.
// Modules open a scope with their name (nn::call), so reports and anomaly errors say where a node
// came from. An empty name opens nothing.
class Scope {
 public:
  explicit Scope(const std::string& name);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  std::size_t saved_size_;
};
const std::string& current_scope();

}  // namespace attnlab::ag
