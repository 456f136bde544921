// Tape: an inspection scope. While a Tape object lives, every node created on this thread is
// recorded in it, in creation order, with its forward time and saved bytes; after backward each
// node also knows the norm of its output gradient. The tape owns its nodes until it is destroyed
// or cleared, so they can be printed (report), drawn (to_dot) or walked (nodes) after backward.
//
// Without a Tape nothing is recorded anywhere: nodes live exactly as long as the Vars that need
// them, so a forward that is never differentiated frees everything when its Vars go away.
//
//   ag::Tape tape;
//   Var loss = model.forward(batch);
//   tape.backward(loss);
//   std::cout << tape.report();
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autograd/node.hpp"
#include "autograd/var.hpp"

namespace attnlab::ag {

class Tape {
 public:
  Tape();   // starts recording on this thread (tapes nest: the innermost records)
  ~Tape();  // stops recording and releases the recorded nodes
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  static Tape* current();  // the recording tape on this thread, or nullptr

  void record(const std::shared_ptr<Node>& node);
  const std::vector<std::shared_ptr<Node>>& nodes() const { return nodes_; }
  std::size_t size() const { return nodes_.size(); }
  void clear() { nodes_.clear(); }

  // Reverse sweep from `loss` (the same as loss.backward()).
  void backward(const Var& loss, bool retain_graph = false) const;

  // A table: index, op, label, scope, input shapes, output shape, dtype, forward ms, bytes saved
  // for backward, gradient norm after backward; then a line of totals (nodes, forward and
  // backward ms, bytes saved).
  std::string report() const;
  // Graphviz DOT of the recorded nodes (ops as boxes, leaves as ellipses, edges input -> op).
  std::string to_dot() const;
  void write_dot(const std::string& path) const;  // atomic write

 private:
  std::vector<std::shared_ptr<Node>> nodes_;
  Tape* parent_;
};

}  // namespace attnlab::ag
