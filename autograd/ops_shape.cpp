// Layout ops. Their gradients move the output gradient back into the input's layout:
// reshape <-> reshape, permute <-> inverse permute, slice <-> scatter into zeros, concat <->
// slices, pad <-> slice.
#include "autograd/op_helpers.hpp"
#include "autograd/ops.hpp"

namespace attnlab::ag {

using detail::Grads;

Var reshape(const Var& x, std::initializer_list<int64_t> dims) {
  return reshape(x, std::vector<int64_t>(dims));
}

Var reshape(const Var& x, const std::vector<int64_t>& dims) {
  return reshape(x, x.value().reshape(dims).shape());
}

// y = x viewed as shape;  dx = dy viewed as x.shape
Var reshape(const Var& x, const Shape& shape) {
  OpRecorder op("reshape", {x});
  return op.output(x.value().reshape(shape), {}, [](const BackwardContext& c) {
    return Grads{c.grad().reshape(c.input_shape(0))};
  });
}

Var flatten(const Var& x) {
  return reshape(x, std::vector<int64_t>{-1});
}

// y = permute(x, p);  dx = permute(dy, p^-1)
Var permute(const Var& x, const std::vector<int>& dims) {
  OpRecorder op("permute", {x});
  Tensor y = attnlab::permute(x.value(), dims);
  std::vector<int> inverse(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) {
    inverse[normalize_axis(dims[i], x.dim(), "permute")] = static_cast<int>(i);
  }
  return op.output(y, {}, [inverse](const BackwardContext& c) {
    return Grads{attnlab::permute(c.grad(), inverse)};
  });
}

Var transpose(const Var& x, int axis0, int axis1) {
  std::vector<int> perm(x.dim());
  for (int i = 0; i < x.dim(); ++i) perm[i] = i;
  std::swap(perm[normalize_axis(axis0, x.dim(), "transpose")],
            perm[normalize_axis(axis1, x.dim(), "transpose")]);
  return permute(x, perm);
}

// y = x[start:stop:step] along axis;  dx = zeros with dy added at the selected positions
Var slice(const Var& x, int axis, int64_t start, int64_t stop, int64_t step) {
  OpRecorder op("slice", {x});
  const int ax = normalize_axis(axis, x.dim(), "slice");
  Tensor y = attnlab::slice(x.value(), ax, start, stop, step);
  // The selected indices, computed with the same clamping as the forward.
  const int64_t n = x.shape()[ax];
  int64_t first = start < 0 ? start + n : start;
  first = std::min(std::max<int64_t>(first, 0), n);
  std::vector<int64_t> picked;
  for (int64_t j = 0; j < y.shape()[ax]; ++j) picked.push_back(first + j * step);
  Tensor index = from_vector(picked, {static_cast<int64_t>(picked.size())});
  return op.output(y, {index}, [ax](const BackwardContext& c) {
    return Grads{attnlab::index_add(c.input_shape(0), ax, c.saved[0], c.grad())};
  });
}

// y = concat(xs, axis);  dx_i = the slice of dy that x_i occupies
Var concat(const std::vector<Var>& xs, int axis) {
  ATTNLAB_CHECK(!xs.empty(), ValueError, "concat: no tensors given");
  OpRecorder op("concat", xs);
  std::vector<Tensor> values;
  std::vector<int64_t> sizes;
  const int ax = normalize_axis(axis, xs[0].dim(), "concat");
  for (const Var& v : xs) {
    values.push_back(v.value());
    sizes.push_back(v.shape()[ax]);
  }
  Tensor y = attnlab::concat(values, ax);
  return op.output(y, {}, [sizes, ax](const BackwardContext& c) {
    Grads g;
    int64_t offset = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      g.push_back(c.needs_input_grad[i] ? attnlab::slice(c.grad(), ax, offset, offset + sizes[i])
                                        : Tensor());
      offset += sizes[i];
    }
    return g;
  });
}

Var stack(const std::vector<Var>& xs, int axis) {
  ATTNLAB_CHECK(!xs.empty(), ValueError, "stack: no tensors given");
  std::vector<Var> expanded;
  for (const Var& v : xs) {
    ATTNLAB_CHECK(v.shape() == xs[0].shape(),
                  ShapeError,
                  "stack: shapes differ: ",
                  v.shape(),
                  " vs ",
                  xs[0].shape());
    expanded.push_back(unsqueeze(v, axis));
  }
  return concat(expanded, axis);
}

// y = pad(x, widths);  dx = the interior of dy
Var pad(const Var& x, const std::vector<std::pair<int64_t, int64_t>>& widths, double value) {
  OpRecorder op("pad", {x});
  Tensor y = attnlab::pad(x.value(), widths, value);
  return op.output(y, {}, [widths](const BackwardContext& c) {
    const Shape& s = c.input_shape(0);
    Tensor g = c.grad();
    for (int d = 0; d < s.rank(); ++d) {
      if (widths[d].first || widths[d].second) {
        g = attnlab::slice(g, d, widths[d].first, widths[d].first + s[d]);
      }
    }
    return Grads{g};
  });
}

Var unsqueeze(const Var& x, int axis) {
  return reshape(x, attnlab::unsqueeze(x.value(), axis).shape());
}

Var squeeze(const Var& x, int axis) {
  return reshape(x, attnlab::squeeze(x.value(), axis).shape());
}

}  // namespace attnlab::ag
