// The exact counterpart of LISA's codeword-histogram attention (docs/derivations/lisa_histograms.md
// 8): the same layer (projections, scale, decay, causality, padding) attending exactly over the
// vectors the product quantizer quantizes instead of over the codewords it picks. With r_j^b what
// codebook b quantizes for item j (QuantizedItems::codebook_inputs),
//   y_i = sum_b sum_{j real, j <= i} softmax_j( s (r_i^b W_Q^b).(r_j^b W_K^b) - lambda (i - j) )
//                                               r_j^b W_V^b
// (bidirectional: every real j, bias -lambda |i - j|). Histogram attention is this with each
// r_j^b replaced by its codeword C_b[u_j^b] (section 4), so the difference between the two is the
// quantization alone. The B codebooks are B heads of the exact fused softmax kernel, summed.
#pragma once

#include "layers/attention/lisa/lisa_attention.hpp"

namespace attnlab::rec {

// inputs [N, L, B, D] (the r^b), keep [N, L] (1 = item, 0 = padding; undefined: no padding).
// Uses layer's w_q, w_k, w_v (an undefined projection is the identity, as in lisa_project), its
// scale (0: 1/sqrt(D)), decay and causality. Rows with no real key (causal left pads) are zero.
// Returns [N, L, D]. Draws no random numbers.
ag::Var lisa_exact_attention(const nn::LisaAttention& layer,
                             const ag::Var& inputs,
                             const Tensor& keep);

}  // namespace attnlab::rec
