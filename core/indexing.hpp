// Index-based kernels: lookups (embeddings, codeword tables) and their scatter-add gradients.
// Index tensors are int64; an out-of-range index throws ValueError naming the op, the index
// value and the valid range. These ops move elements, so they accept every dtype.
#pragma once

#include "core/tensor.hpp"

namespace attnlab {

// numpy.take: out = x indexed by `index` along `axis`, where index may have any shape:
// out.shape = x.shape[:axis] + index.shape + x.shape[axis+1:]. Embedding lookup is
// index_select(table, 0, ids).
Tensor index_select(const Tensor& x, int axis, const Tensor& index);
// The adjoint of index_select: a zero tensor of `shape` with src's slices added at the indexed
// positions (repeated indices accumulate, in a fixed order).
Tensor index_add(const Shape& shape, int axis, const Tensor& index, const Tensor& src);

// torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] for axis 1; index has x's rank and
// out has index's shape (dimensions other than `axis` must not exceed x's).
Tensor gather(const Tensor& x, int axis, const Tensor& index);
// The adjoint of gather: zeros of `shape`, then out[.., index[..], ..] += src[..].
Tensor scatter_add(const Shape& shape, int axis, const Tensor& index, const Tensor& src);

// torch.unique(sorted=True, return_inverse=True) for an int64 tensor of any shape: the distinct
// values in increasing order ([U]), and `inverse` (int64, x's shape) with
// x = index_select(unique, 0, inverse). Lets a layer compute a function of each distinct id once
// and gather the results (a batch of 25,600 item positions often holds a few thousand items).
Tensor unique(const Tensor& x, Tensor* inverse = nullptr);

// One-hot rows: out.shape = index.shape + [num_classes], 1 at each index, 0 elsewhere.
Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype = kFloat32);

}  // namespace attnlab
