// Node: one recorded differentiable op. It keeps what its backward needs and nothing else:
// edges to its inputs' AutogradMeta (not their values), the tensors it saved, and the backward
// function. Nodes are numbered when their recording starts, from blocks of a process-wide
// atomic counter, whatever thread records them; the numbers are unique and a topological order
// (every node is numbered above its inputs' producers), so backward sweeps nodes by decreasing
// number (no sort by dependencies, no recursion). recorder.cpp (next_seq) explains why this holds
// across threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/small_vector.hpp"
#include "autograd/var.hpp"
#include "core/error.hpp"

namespace attnlab::ag {

// Tensors an op saves for its backward (inline up to two).
using SavedTensors = SmallVec<Tensor, 2>;

// What a backward function receives.
struct BackwardContext {
  Span<Tensor> grads;              // one per output (zeros where none arrived)
  Span<Tensor> saved;              // the tensors saved at forward time
  Span<uint8_t> needs_input_grad;  // one per input (non-zero: the engine wants its gradient)
  Span<std::shared_ptr<AutogradMeta>> inputs;
  const Tensor& grad() const { return grads[0]; }  // the single output's gradient
  // The shape input i's gradient must have (defined for every input with needs_input_grad[i]).
  const Shape& input_shape(std::size_t i) const { return inputs[i]->shape; }
};

// One gradient per input (inline up to two); an undefined Tensor means "no gradient".
using InputGrads = SmallVec<Tensor, 2>;
// Returns one gradient per input; an undefined Tensor means "no gradient" (treated as zero).
using BackwardFn = std::function<InputGrads(const BackwardContext&)>;

// What inspection needs besides the graph: allocated only for nodes created while a Tape
// records or anomaly mode is on, so that plain training pays nothing for it.
struct NodeInfo {
  std::string scope;  // the ag::Scope names active at creation
  std::vector<Shape> input_shapes;
  std::vector<uint64_t> input_producers;  // seq of the node producing each input (0: leaf/const)
  std::vector<std::string> input_labels;
  double forward_ms = -1;   // measured while a Tape records
  double backward_ms = -1;  // measured by backward for recorded nodes
  double grad_norm = -1;    // norm of output 0's gradient after backward (recorded nodes only)
  bool on_tape = false;
};

struct Node {
  const char* op = "";
  uint64_t seq = 0;

  // Graph: inputs[i] is null when input i does not require grad. Inline capacities cover the
  // common one- and two-input ops without heap allocations.
  SmallVec<std::shared_ptr<AutogradMeta>, 2> inputs;
  SmallVec<uint8_t, 4> needs_input_grad;
  // Outputs: weak references (a Var's meta must not be kept alive by its producer) and, for
  // speed, the raw pointers they point to (dereferenced only while the weak one is not expired).
  SmallVec<std::weak_ptr<AutogradMeta>, 1> outputs;
  SmallVec<AutogradMeta*, 1> output_metas;
  SmallVec<Shape, 1> output_shapes;
  SavedTensors saved;
  BackwardFn backward;
  std::unique_ptr<NodeInfo> info;  // inspection data, when recorded
  std::size_t saved_bytes = 0;
  DType dtype = kFloat32;
  bool released = false;  // saved tensors and backward freed (after backward without retain)

  // Engine scratch: the sweep that last visited this node and its gradient slot in that sweep.
  uint64_t visit_epoch = 0;
  uint32_t sweep_slot = 0;

  ~Node();
  std::string output_label(int i) const;
  // Every output's label joined by ", " ("-" for an unlabelled one); "" when none is labelled.
  std::string output_labels() const;
  const std::string& scope() const;
};

}  // namespace attnlab::ag
