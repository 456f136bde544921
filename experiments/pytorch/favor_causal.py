#!/usr/bin/env python3
"""Reference timings of the PyTorch CPU path of causal FAVOR+ that lucidrains/performer-pytorch
(v1.1.4) uses without its CUDA extension, for comparison with
`attnlab bench attention --kind favor --mask causal --features 256 --head-dim 64 --thread-counts 1`
on the same machine (the target of issue 6: attnlab at least 30x faster at L = 4096).

Not part of the build or the tests (PyTorch is not a dependency). On Debian 12:
  sudo apt-get install python3-torch
  python3 experiments/pytorch/favor_causal.py --lengths 4096 --threads 1

What it runs (restated from research/performer.md 3.6 and 1.6, one head, float32, autograd):
  features: softmax_kernel with d^(-1/4) data normalisation and a [m, d] Gaussian orthogonal
    projection: phi(x) = m^(-1/2) (exp(W x~ - |x~|^2/2 - max) + 1e-4), where the (detached) max
    is over the features for queries and over (sequence, features) for keys; eps = 1e-4;
  causal attention (causal_linear_attention_noncuda): q', k', v split with tensor.chunk(128,
    dim=-2) into 128 pieces of L/128 tokens; per piece: k_cumsum = carry + cumsum(k'),
    D^-1 = 1 / (q' . (k_cumsum + 1e-6)), context = k' (x) v (an [L/128, m, d] outer product),
    context_cumsum = carry + cumsum(context), out = einsum(context_cumsum, q', D^-1); the pieces
    are concatenated. Autograd keeps every piece's context_cumsum for the backward, so training
    memory is O(L m d) (performer.md 3.6).
It reports, best of --reps, forward (no_grad) and forward + backward time of the whole attention
(features included, as attnlab's bench measures it) and of the causal part alone (on fixed
features), and the process's peak RSS growth (resource.getrusage: run one length per process for
clean numbers).
"""
import argparse
import resource
import time

import torch


def orthogonal_projection(m, d, gen):
    """Blocks of Q^T from QR of Gaussian d x d matrices, rows scaled by chi(d) norms (as
    performer-pytorch's gaussian_orthogonal_random_matrix with scaling 0; no sign fix)."""
    blocks = []
    for _ in range((m + d - 1) // d):
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
        blocks.append(q.t())
    w = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=gen).norm(dim=1)
    return norms[:, None] * w


def softmax_kernel(x, w, is_query, eps=1e-4):
    d = x.shape[-1]
    norm = d ** -0.25
    dash = torch.einsum("...id,jd->...ij", norm * x, w)
    diag = (x ** 2).sum(dim=-1, keepdim=True) * (norm ** 2) / 2
    if is_query:
        stab = torch.amax(dash, dim=-1, keepdim=True).detach()
    else:
        stab = torch.amax(dash, dim=(-1, -2), keepdim=True).detach()
    return w.shape[0] ** -0.5 * (torch.exp(dash - diag - stab) + eps)


def causal_linear_attention_noncuda(q, k, v, chunk_size=128, eps=1e-6):
    last_k_cumsum = 0
    last_context_cumsum = 0
    outs = []
    for qc, kc, vc in zip(*(t.chunk(chunk_size, dim=-2) for t in (q, k, v))):
        k_cumsum = last_k_cumsum + kc.cumsum(dim=-2)
        d_inv = 1.0 / torch.einsum("...nd,...nd->...n", qc, k_cumsum + eps)
        context = torch.einsum("...nd,...ne->...nde", kc, vc)
        context_cumsum = last_context_cumsum + context.cumsum(dim=-3)
        outs.append(torch.einsum("...nde,...nd,...n->...ne", context_cumsum, qc, d_inv))
        last_k_cumsum = k_cumsum[..., -1:, :]
        last_context_cumsum = context_cumsum[..., -1:, :, :]
    return torch.cat(outs, dim=-2)


def favor_causal(q, k, v, w):
    return causal_linear_attention_noncuda(softmax_kernel(q, w, True), softmax_kernel(k, w, False), v)


def best_of(reps, fn):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lengths", default="4096")
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    m, d = a.features, a.head_dim
    w = orthogonal_projection(m, d, gen)
    print(f"torch {torch.__version__}, {a.threads} thread(s), m {m}, head_dim {d}, causal, one head")
    for n in [int(x) for x in a.lengths.split(",")]:
        shape = (1, 1, n, d)
        q, k, v = (torch.randn(shape, generator=gen, requires_grad=True) for _ in range(3))
        g = torch.randn(shape, generator=gen)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        def fwd():
            with torch.no_grad():
                favor_causal(q, k, v, w)

        def both():
            favor_causal(q, k, v, w).backward(g)
            q.grad = k.grad = v.grad = None

        with torch.no_grad():
            qf = softmax_kernel(q, w, True)
            kf = softmax_kernel(k, w, False)
        qf.requires_grad_()
        kf.requires_grad_()

        def causal_only():
            causal_linear_attention_noncuda(qf, kf, v).backward(g)
            qf.grad = kf.grad = v.grad = None

        t_fwd = best_of(a.reps, fwd)
        t_both = best_of(a.reps, both)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
        t_causal = best_of(a.reps, causal_only)
        print(f"L={n:6d}  forward {t_fwd * 1e3:9.1f} ms  forward+backward {t_both * 1e3:9.1f} ms"
              f"  (causal part alone {t_causal * 1e3:9.1f} ms)  peak RSS growth {rss / 1024:8.1f} MiB")


if __name__ == "__main__":
    main()
