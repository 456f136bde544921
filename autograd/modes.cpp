// Thread-local modes: anomaly mode (the flag itself lives in engine_internal.hpp, read inline by
// the recorder and backward) and the Scope names that label the nodes a thread creates.
#include <string>

#include "autograd/engine.hpp"
#include "autograd/engine_internal.hpp"

namespace attnlab::ag {
namespace {
thread_local std::string t_scope;
}  // namespace

bool anomaly_enabled() {
  return internal::t_anomaly;
}
void set_anomaly_enabled(bool on) {
  internal::t_anomaly = on;
}

Scope::Scope(const std::string& name) : saved_size_(t_scope.size()) {
  if (name.empty())
    return;  // an unnamed (root) module adds nothing to the path
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

}  // namespace attnlab::ag
