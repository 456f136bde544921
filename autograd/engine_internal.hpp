// Shared by the engine's own files (node.cpp, modes.cpp, recorder.cpp, backward.cpp), not part of
// the public API: user code includes autograd/engine.hpp.
#pragma once

#include <string>

#include "autograd/node.hpp"

namespace attnlab::ag::internal {

// Anomaly mode of this thread (anomaly_enabled() reads it). Inline and constant-initialized so
// that the recorder and backward test it with one load, as when they lived in one file.
inline thread_local bool t_anomaly = false;

// "'op' (node #n, label 'a', scope 's')", for error messages; node.cpp.
std::string describe_node(const Node& n);

}  // namespace attnlab::ag::internal
