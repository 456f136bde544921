#!/usr/bin/python3
"""Causal FAVOR+ (Performer) attention, forward + backward with autograd, in PyTorch (one head,
float32), in two formulations of the causal prefix sum:

  python3 experiments/baselines/favor.py --lengths 4096 --features 256 --head-dim 64 --threads 1
  python3 experiments/baselines/favor.py --impls chunked --chunks 64,128,256

Feature maps (both formulations, as performer-pytorch v1.1.4's softmax_kernel): data scaled by
d^(-1/4), a [m, d] Gaussian orthogonal projection W (blocks of Q^T from QR, rows scaled by
chi(d) norms), phi(x) = m^(-1/2) (exp(W x~ - |x~|^2 / 2 - max) + 1e-4), the (detached) max over
the features for queries and over (sequence, features) for keys.

Causal part, with q', k' the features [L, m] and v [L, d]:
  cumsum   performer-pytorch's causal_linear_attention_noncuda, its CPU path: 128 pieces of
           L/128 tokens; per piece the outer products k' (x) v ([L/128, m, d]) are cumsummed, so
           autograd keeps O(L m d) floats; out_i = q'_i . C_i / (q'_i . (z_i + 1e-6)).
  chunked  the best CPU formulation we could write: the sequence is cut into chunks of C
           tokens, all chunks batched (no Python loop). With v1 = [v, 1] (the ones column
           carries the normaliser through the same GEMMs):
             S_c = sum over earlier chunks of k'^T v1     (bmm per chunk, exclusive cumsum
                                                          over chunks: [L/C, m, d+1])
             out_c = q'_c S_c + tril(q'_c k'_c^T) v1_c    (inter-chunk + masked intra-chunk)
             out = out_c[:, :d] / (out_c[:, d] + 1e-6 sum(q'))
           O(L m d / C + L C) memory and GEMM-shaped work; the same numbers as cumsum.
Times include the feature maps (as `attnlab bench attention --kind favor` does).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fairbench  # noqa: E402


def orthogonal_projection(m, d, gen):
    """Blocks of Q^T from QR of Gaussian d x d matrices, rows scaled by chi(d) norms (as
    performer-pytorch's gaussian_orthogonal_random_matrix with scaling 0; no sign fix)."""
    import torch
    blocks = []
    for _ in range((m + d - 1) // d):
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
        blocks.append(q.t())
    w = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=gen).norm(dim=1)
    return norms[:, None] * w


def softmax_kernel(x, w, is_query, eps=1e-4):
    import torch
    d = x.shape[-1]
    norm = d ** -0.25
    dash = torch.einsum("...id,jd->...ij", norm * x, w)
    diag = (x ** 2).sum(dim=-1, keepdim=True) * (norm ** 2) / 2
    if is_query:
        stab = torch.amax(dash, dim=-1, keepdim=True).detach()
    else:
        stab = torch.amax(dash, dim=(-1, -2), keepdim=True).detach()
    return w.shape[0] ** -0.5 * (torch.exp(dash - diag - stab) + eps)


def causal_cumsum(q, k, v, chunk_size=128, eps=1e-6):
    """performer-pytorch's causal_linear_attention_noncuda (chunk_size = number of pieces)."""
    import torch
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


def causal_chunked(q, k, v, chunk, tril, eps=1e-6):
    """q, k: [L, m] features, v: [L, d]; L a multiple of chunk; tril: [chunk, chunk] 0/1."""
    import torch
    n, m = q.shape
    d = v.shape[1]
    c = n // chunk
    v1 = torch.cat([v, v.new_ones(n, 1)], 1).view(c, chunk, d + 1)
    qc, kc = q.view(c, chunk, m), k.view(c, chunk, m)
    kv = torch.bmm(kc.transpose(1, 2), v1)                      # [c, m, d+1]
    state = torch.cumsum(kv, 0) - kv                            # exclusive prefix over chunks
    out = torch.baddbmm(torch.bmm(qc, state), torch.bmm(qc, kc.transpose(1, 2)) * tril, v1)
    out = out.view(n, d + 1)
    return out[:, :d] / (out[:, d:] + eps * q.sum(1, keepdim=True))


def favor(q, k, v, w, impl, chunk, tril):
    qf, kf = softmax_kernel(q, w, True), softmax_kernel(k, w, False)
    if impl == "cumsum":
        return causal_cumsum(qf[None, None], kf[None, None], v[None, None])[0, 0]
    return causal_chunked(qf, kf, v, chunk, tril)


def measure(config, args, env):
    import torch
    gen = torch.Generator().manual_seed(0)
    rss_before = fairbench.max_rss_mb()
    n, d, m = config["L"], config["d"], config["m"]
    w = orthogonal_projection(m, d, gen)
    q, k, v = (torch.randn(n, d, generator=gen, requires_grad=True) for _ in range(3))
    g = torch.randn(n, d, generator=gen)
    chunk = config.get("chunk", 0)
    tril = torch.ones(chunk, chunk).tril() if chunk else None
    run = lambda: favor(q, k, v, w, config["impl"], chunk, tril)  # noqa: E731
    if config["pass"] == "forward":
        def step():
            with torch.no_grad():
                run()
        return fairbench.time_reps(step, args.reps, args.warmup), rss_before, None
    times = []
    for _ in range(args.warmup + args.reps):
        times.append(fairbench.time_reps(lambda: run().backward(g), 1, 0)[0])
        q.grad = k.grad = v.grad = None
    return times[args.warmup:], rss_before, None


def check(n=512, d=16, m=32):
    import torch
    gen = torch.Generator().manual_seed(1)
    w = orthogonal_projection(m, d, gen).double()
    q, k, v = (torch.randn(n, d, generator=gen, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    g = torch.randn(n, d, generator=gen, dtype=torch.float64)
    ref = None
    worst = 0.0
    for impl, chunk in (("cumsum", 0), ("chunked", 64), ("chunked", 128)):
        tril = torch.ones(chunk, chunk, dtype=torch.float64).tril() if chunk else None
        out = favor(q, k, v, w, impl, chunk, tril)
        out.backward(g)
        vals = [out.detach()] + [t.grad.clone() for t in (q, k, v)]
        q.grad = k.grad = v.grad = None
        ref = ref or vals
        err = max(float(((a - b).abs().max() / b.abs().max())) for a, b in zip(vals, ref))
        worst = max(worst, err)
        print("check %-7s chunk %3d: max rel difference to cumsum (out, dQ, dK, dV) %.1e" %
              (impl, chunk, err), file=sys.stderr)
    return worst < 1e-9


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    fairbench.add_args(p)
    p.add_argument("--lengths", default="4096")
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--impls", default="cumsum,chunked")
    p.add_argument("--chunks", default="128", help="chunk sizes tried by chunked")
    p.add_argument("--passes", default="forward+backward", help="forward, forward+backward")
    p.add_argument("--check", action="store_true", help="chunked against cumsum, then exit")
    args = p.parse_args()
    env = fairbench.setup(args, use_torch=True)
    if args.check:
        sys.exit(0 if check() else 1)
    configs = []
    for n in args.lengths.split(","):
        for ps in args.passes.split(","):
            for impl in args.impls.split(","):
                base = {"impl": impl, "L": int(n), "m": args.features, "d": args.head_dim,
                        "causal": True, "pass": ps}
                if impl == "cumsum":
                    configs.append(base)
                else:
                    configs += [dict(base, chunk=int(c)) for c in args.chunks.split(",")]
    fairbench.run("torch-favor-causal", configs, measure, args, env)


if __name__ == "__main__":
    main()
