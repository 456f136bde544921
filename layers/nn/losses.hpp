// Training losses as differentiable functions of Vars (PyTorch's semantics unless noted).
//
// The two workhorses (bce_with_logits, softmax_cross_entropy) are single fused ops: one node, a
// forward that is stable for any finite logits (|x| = 1e4 gives a finite loss and gradient) and
// the closed-form backward (sigmoid(x) - t, softmax(x) - onehot(t)). Composing them from relu,
// abs, log1p and exp would record half a dozen nodes and give the wrong gradient at x = 0.
//
// Padding: every loss takes a 0/1 (or any non-negative) weight and averages with sum(w * l) /
// sum(w). Elements whose weight is 0 are skipped, not multiplied by 0, so padded positions may
// hold anything (even Inf) without poisoning the loss. When every weight is 0 (or every target is
// ignored), the loss is 0 and its gradient is zero, not NaN.
//
// Targets, weights and masks are plain Tensors (no gradient flows to them). Float ones may be
// float32 or float64 and are converted to the logits' dtype; an int64 one where a float is
// expected (or the reverse) is a DTypeError.
#pragma once

#include <cstdint>

#include "autograd/var.hpp"

namespace attnlab::nn {

using ag::Var;

// Binary cross-entropy on logits: l = softplus(x) - x * t = max(x, 0) - x t + log1p(exp(-|x|)).
// targets has logits' shape (values in [0, 1]); weight (optional) broadcasts to it. Returns the
// mean of l, or sum(w * l) / sum(w) with a weight.   d/dx = g * w * (sigmoid(x) - t) / sum(w).
Var bce_with_logits(const Var& logits, const Tensor& targets, const Tensor& weight = {});

// Softmax cross-entropy: logits [..., C], int64 targets [...] (the leading dimensions, flattened
// to rows). l_row = logsumexp(x_row) - x_row[t]; the mean over rows whose target is not
// ignore_index.   d/dx_row = g * (softmax(x_row) - onehot(t)) / count, zero for ignored rows.
// All rows ignored (or no rows): loss 0, zero gradient. A target outside [0, C) that is not
// ignore_index is a ValueError naming the (flattened) row and the value.
Var softmax_cross_entropy(const Var& logits, const Tensor& targets, int64_t ignore_index = -100);

// The same with a float weight per row (targets' shape): sum(w_row * l_row) / sum(w_row) over
// the non-ignored rows (the masked mean of the per-row losses).
Var weighted_softmax_cross_entropy(const Var& logits,
                                   const Tensor& targets,
                                   const Tensor& weight,
                                   int64_t ignore_index = -100);

// Sampled softmax for next-item recommendation (SASRec with sampled negatives): for each row n,
// logits = [<h_n, E[pos_n]>, <h_n, E[neg_n,0]>, ..., <h_n, E[neg_n,K-1]>] and the loss is the
// cross-entropy with the positive as class 0, averaged with weight [N] (optional; the padding
// mask). hidden [N, D], item_table [V, D], positives int64 [N], negatives int64 [N, K], ids in
// [0, V). A negative equal to the positive is kept (no accidental-hit removal), as in SASRec.
// Gradients flow to hidden and to the table rows that were looked up.
Var sampled_softmax_loss(const Var& hidden,
                         const Var& item_table,
                         const Tensor& positives,
                         const Tensor& negatives,
                         const Tensor& weight = {});

// sum(values * mask) / sum(mask), mask broadcasting to values (the mean over non-padded
// positions). Elements with mask 0 are skipped; an all-zero mask gives 0 and a zero gradient.
Var masked_mean(const Var& values, const Tensor& mask);

// Mean squared error, mean((x - y)^2), composed from primitive ops (y is a constant target).
Var mse_loss(const Var& prediction, const Tensor& target);

}  // namespace attnlab::nn
