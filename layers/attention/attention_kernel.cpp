#include "layers/attention/attention_kernel.hpp"

#include "core/error.hpp"

namespace attnlab::nn {

// Kinds without an incremental form (their attention at position t is not a function of a
// state carried from t - 1 plus the new key and value) keep this default.
std::unique_ptr<AttentionStream> AttentionKernel::begin_stream(int64_t) const {
  throw ValueError("begin_stream: " + describe() +
                   " has no streaming form (kernels with one: softmax, FAVOR+, linear)");
}

}  // namespace attnlab::nn
