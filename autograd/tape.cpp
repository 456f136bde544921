#include "autograd/tape.hpp"

#include <cstdio>
#include <map>
#include <sstream>

#include "autograd/engine.hpp"
#include "core/file_io.hpp"

namespace attnlab::ag {
namespace {

thread_local Tape* t_current_tape = nullptr;

std::string human_bytes(std::size_t b) {
  char buf[32];
  if (b < 1024) {
    std::snprintf(buf, sizeof buf, "%zu B", b);
  } else if (b < (1u << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  } else if (b < (1u << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
  }
  return buf;
}

std::string fmt(const char* f, double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Left-aligned text columns separated by two spaces.
std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size())
      width.resize(r.size(), 0);
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  std::ostringstream os;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t c = 0; c < r.size(); ++c) {
      line += r[c];
      if (c + 1 < r.size())
        line += std::string(width[c] - r[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << '\n';
  }
  return os.str();
}

std::string dot_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\')
      o += '\\';
    o += c;
  }
  return o;
}

}  // namespace

Tape::Tape() : parent_(t_current_tape) {
  t_current_tape = this;
}

Tape::~Tape() {
  t_current_tape = parent_;
}

Tape* Tape::current() {
  return t_current_tape;
}

void Tape::record(const std::shared_ptr<Node>& node) {
  nodes_.push_back(node);
}

void Tape::backward(const Var& loss, bool retain_graph) const {
  loss.backward(retain_graph);
}

std::string Tape::report() const {
  std::map<uint64_t, std::size_t> index_of;  // node seq -> row number on this tape
  for (std::size_t i = 0; i < nodes_.size(); ++i) index_of[nodes_[i]->seq] = i + 1;
  std::vector<std::vector<std::string>> rows = {
      {"#", "op", "label", "scope", "inputs", "output", "dtype", "fwd ms", "saved", "grad norm"}};
  std::size_t total_saved = 0;
  double total_ms = 0, total_bwd_ms = 0;
  static const NodeInfo kNoInfo;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = *nodes_[i];
    const NodeInfo& info = n.info ? *n.info : kNoInfo;
    std::string inputs;
    for (std::size_t k = 0; k < info.input_shapes.size(); ++k) {
      if (k)
        inputs += ", ";
      const uint64_t p = k < info.input_producers.size() ? info.input_producers[k] : 0;
      const auto it = index_of.find(p);
      if (p && it != index_of.end()) {
        inputs += "#" + std::to_string(it->second);
      } else if (k < info.input_labels.size() && !info.input_labels[k].empty()) {
        inputs += info.input_labels[k];
      } else {
        inputs += n.needs_input_grad[k] ? "leaf" : "const";
      }
      inputs += info.input_shapes[k].str();
    }
    std::string outputs;
    for (std::size_t k = 0; k < n.output_shapes.size(); ++k) {
      outputs += (k ? ", " : "") + n.output_shapes[k].str();
    }
    total_saved += n.saved_bytes;
    total_ms += info.forward_ms > 0 ? info.forward_ms : 0;
    total_bwd_ms += info.backward_ms > 0 ? info.backward_ms : 0;
    rows.push_back({std::to_string(i + 1),
                    n.op,
                    n.output_labels(),
                    info.scope,
                    inputs,
                    outputs,
                    dtype_name(n.dtype),
                    info.forward_ms >= 0 ? fmt("%.3f", info.forward_ms) : "-",
                    human_bytes(n.saved_bytes),
                    info.grad_norm >= 0 ? fmt("%.4g", info.grad_norm) : "-"});
  }
  std::ostringstream os;
  os << render_table(rows);
  os << nodes_.size() << " nodes, forward " << fmt("%.3f", total_ms) << " ms, backward "
     << fmt("%.3f", total_bwd_ms) << " ms, " << human_bytes(total_saved) << " saved for backward\n";
  return os.str();
}

std::string Tape::to_dot() const {
  std::ostringstream os;
  os << "digraph tape {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n";
  std::map<const AutogradMeta*, std::string> leaf_ids;
  std::map<uint64_t, bool> on_tape;
  for (const auto& np : nodes_) on_tape[np->seq] = true;
  for (const auto& np : nodes_) {
    const Node& n = *np;
    if (!n.info)
      continue;  // recorded nodes always carry their info
    const NodeInfo& info = *n.info;
    std::string text = "#" + std::to_string(n.seq) + " " + n.op;
    const std::string label = n.output_labels();
    if (!label.empty())
      text += "\\n" + dot_escape(label);
    for (const Shape& s : n.output_shapes) text += "\\n" + s.str();
    if (info.grad_norm >= 0)
      text += "\\n|grad| " + fmt("%.3g", info.grad_norm);
    os << "  n" << n.seq << " [shape=box, label=\"" << text << "\"];\n";
    for (std::size_t k = 0; k < info.input_shapes.size(); ++k) {
      const uint64_t p = info.input_producers[k];
      if (p && on_tape.count(p)) {
        os << "  n" << p << " -> n" << n.seq << ";\n";
        continue;
      }
      if (p) {  // produced by a node recorded before this tape started
        os << "  x" << p << " [shape=ellipse, style=dotted, label=\"#" << p << " (not on tape)\\n"
           << info.input_shapes[k].str() << "\"];\n  x" << p << " -> n" << n.seq << ";\n";
        continue;
      }
      // A leaf or constant input: one ellipse per leaf (identified by its meta), per edge for
      // constants.
      const AutogradMeta* meta = k < n.inputs.size() ? n.inputs[k].get() : nullptr;
      std::string id;
      if (meta && leaf_ids.count(meta)) {
        id = leaf_ids[meta];
      } else {
        id = "l" + std::to_string(n.seq) + "_" + std::to_string(k);
        std::string name =
            info.input_labels[k].empty() ? (meta ? "leaf" : "const") : info.input_labels[k];
        os << "  " << id << " [shape=ellipse, label=\"" << dot_escape(name) << "\\n"
           << info.input_shapes[k].str() << "\"" << (meta ? "" : ", style=dashed") << "];\n";
        if (meta)
          leaf_ids[meta] = id;
      }
      os << "  " << id << " -> n" << n.seq << ";\n";
    }
  }
  os << "}\n";
  return os.str();
}

void Tape::write_dot(const std::string& path) const {
  write_file_atomic(path, to_dot());
}

}  // namespace attnlab::ag
