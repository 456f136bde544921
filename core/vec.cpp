#include "core/vec.hpp"

namespace attnlab::vec {

const VecKernels& kernels() {
  static const VecKernels& table = ATTNLAB_KERNELS(vec_kernels);
  return table;
}

template <>
const VecFns<float>& fns<float>() {
  return kernels().f32;
}

template <>
const VecFns<double>& fns<double>() {
  return kernels().f64;
}

}  // namespace attnlab::vec
