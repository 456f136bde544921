// Errors: every check happens once, at an op's entry, and throws an attnlab::Error subclass whose
// message starts with the op's name and carries the shapes involved, e.g.
//   matmul: inner dimensions differ: lhs [32, 64] vs rhs [65, 16]
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace attnlab {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error {  // shapes that do not fit the op
 public:
  using Error::Error;
};
class DTypeError : public Error {  // a dtype the op does not accept, or two dtypes that differ
 public:
  using Error::Error;
};
class ValueError : public Error {  // an argument out of its domain (axis, index, probability, ...)
 public:
  using Error::Error;
};
class IOError : public Error {  // a file that cannot be read or written, or is malformed
 public:
  using Error::Error;
};
// Autograd misuse: backward through a released graph, a non-scalar loss without a gradient, a
// backward returning a gradient of the wrong shape, requires_grad on a non-leaf.
class GraphError : public Error {
 public:
  using Error::Error;
};
// Anomaly mode found NaN or Inf in a forward or backward output.
class AnomalyError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

}  // namespace attnlab

// ATTNLAB_CHECK(cond, ShapeError, "matmul: inner dimensions differ: lhs ", a.shape(), ...)
// Throws attnlab::<kind> with the concatenated message when cond is false.
#define ATTNLAB_CHECK(cond, kind, ...)                               \
  do {                                                               \
    if (!(cond)) {                                                   \
      throw ::attnlab::kind(::attnlab::detail::concat(__VA_ARGS__)); \
    }                                                                \
  } while (0)
