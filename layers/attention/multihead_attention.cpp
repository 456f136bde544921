#include "layers/attention/multihead_attention.hpp"

#include <sstream>

#include "autograd/ops.hpp"
#include "core/core.hpp"

namespace attnlab::nn {

Var split_heads(const Var& x, int64_t heads) {
  ATTNLAB_CHECK(x.dim() == 3 && x.shape()[2] % heads == 0,
                ShapeError,
                "split_heads: input must be [batch, length, heads * head_dim] with ",
                heads,
                " heads, got ",
                x.shape());
  const int64_t b = x.shape()[0], l = x.shape()[1], dh = x.shape()[2] / heads;
  if (heads == 1)  // [B, L, d] and [B, 1, L, d] hold the same bytes: no copy (SASRec's case)
    return ag::reshape(x, Shape{b, 1, l, dh});
  return ag::permute(ag::reshape(x, Shape{b, l, heads, dh}), {0, 2, 1, 3});
}

Var merge_heads(const Var& x) {
  ATTNLAB_CHECK(x.dim() == 4,
                ShapeError,
                "merge_heads: input must be [batch, heads, length, "
                "head_dim], got ",
                x.shape());
  const int64_t b = x.shape()[0], h = x.shape()[1], l = x.shape()[2], dh = x.shape()[3];
  if (h == 1)
    return ag::reshape(x, Shape{b, l, dh});
  return ag::reshape(ag::permute(x, {0, 2, 1, 3}), Shape{b, l, h * dh});
}

MultiHeadAttention::MultiHeadAttention(int64_t d,
                                       std::shared_ptr<AttentionKernel> k,
                                       Generator& init_rng,
                                       const MultiHeadAttentionOptions& opt)
    : AttentionModule("MultiHeadAttention"), dim(d), heads(opt.heads) {
  ATTNLAB_CHECK(d > 0 && opt.heads > 0 && d % opt.heads == 0,
                ValueError,
                "MultiHeadAttention: dim ",
                d,
                " must be a positive multiple of heads ",
                opt.heads);
  ATTNLAB_CHECK(k, ValueError, "MultiHeadAttention: null kernel");
  LinearOptions lin{opt.bias, opt.init, InitSpec{Init::Zeros}};
  register_module("w_q", w_q, std::make_shared<Linear>(d, d, init_rng, lin));
  register_module("w_k", w_k, std::make_shared<Linear>(d, d, init_rng, lin));
  register_module("w_v", w_v, std::make_shared<Linear>(d, d, init_rng, lin));
  if (opt.out_proj)
    register_module("w_o", w_o, std::make_shared<Linear>(d, d, init_rng, lin));
  register_module("kernel", kernel, std::move(k));
}

Var MultiHeadAttention::forward(const Var& q_in, const Var& kv_in, const AttentionMask& mask) {
  ATTNLAB_CHECK(q_in.dim() == 3 && kv_in.dim() == 3 && q_in.shape()[2] == dim &&
                    kv_in.shape()[2] == dim && q_in.shape()[0] == kv_in.shape()[0],
                ShapeError,
                "MultiHeadAttention: inputs must be [batch, length, ",
                dim,
                "] with equal batch, got ",
                q_in.shape(),
                " and ",
                kv_in.shape());
  Var q = split_heads(w_q(q_in), heads);
  Var k = split_heads(w_k(kv_in), heads);
  Var v = split_heads(w_v(kv_in), heads);
  Var o = merge_heads(call(*kernel, &AttentionKernel::attend, q, k, v, mask));
  return w_o ? w_o(o) : o;
}

std::string MultiHeadAttention::describe() const {
  std::ostringstream os;
  os << "MultiHeadAttention(dim=" << dim << ", heads=" << heads
     << ", out_proj=" << (w_o ? "true" : "false") << ")";
  return os.str();
}

}  // namespace attnlab::nn
