#!/usr/bin/python3
"""Exact causal softmax attention, forward + hand-written backward, in numpy float32 (OpenBLAS
does the three GEMMs of each pass): a second, non-PyTorch baseline.

  python3 experiments/baselines/numpy_attention.py --lengths 4096 --head-dim 64 --threads 1
  python3 experiments/baselines/numpy_attention.py --check      # gradients vs torch and FD

Forward (one head, q, k, v: [L, d], s = 1/sqrt(d)):
  S = s Q K^T, S_ij = -inf for j > i;  P = softmax_rows(S);  O = P V
Backward from dO, with the saved P (the materialised formulation, O(L^2) memory):
  dV = P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(dO * O));  dQ = s dS K;  dK = s dS^T Q
(rowsum(dP * P) = rowsum(dO * O) since O = P V). Masked entries have P = 0, so dS = 0 there.
Every step writes into preallocated or in-place buffers: two L x L float32 matrices live at a
time (S/P and dP/dS). --impls blocked (--block B, default 256) is a blocked variant: the same
maths per block of B query rows against the keys up to the block's end, skipping the masked
triangle.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fairbench  # noqa: E402


def causal_forward(q, k, v, causal_bias):
    import numpy as np
    scale = np.float32(1.0 / np.sqrt(q.shape[1]))
    p = q @ k.T
    p *= scale
    p += causal_bias  # 0 on and below the diagonal, -inf above
    p -= p.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    return p @ v, p


def causal_backward(q, k, v, o, p, do):
    import numpy as np
    scale = np.float32(1.0 / np.sqrt(q.shape[1]))
    dv = p.T @ do
    ds = do @ v.T
    ds -= np.einsum("ij,ij->i", do, o)[:, None]
    ds *= p
    dq = ds @ k
    dq *= scale
    dk = ds.T @ q
    dk *= scale
    return dq, dk, dv


def blocked_fwd_bwd(q, k, v, do, bias, block):
    """The same maths per block of query rows, each against keys up to its last row only (the
    GEMMs skip the masked upper triangle: about half the flops at large L). The blocks' P are
    kept for the backward, as autograd would keep them."""
    import numpy as np
    n, d = q.shape
    scale = np.float32(1.0 / np.sqrt(d))
    o = np.empty_like(q)
    saved = []
    for s in range(0, n, block):
        e = min(n, s + block)
        p = q[s:e] @ k[:e].T
        p *= scale
        p += bias[s:e, :e]
        p -= p.max(axis=1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        np.matmul(p, v[:e], out=o[s:e])
        saved.append(p)
    dq, dk, dv = np.empty_like(q), np.zeros_like(k), np.zeros_like(v)
    for s, p in zip(range(0, n, block), saved):
        e = min(n, s + block)
        dv[:e] += p.T @ do[s:e]
        ds = do[s:e] @ v[:e].T
        ds -= np.einsum("ij,ij->i", do[s:e], o[s:e])[:, None]
        ds *= p
        np.matmul(ds, k[:e], out=dq[s:e])
        dk[:e] += ds.T @ q[s:e]
    dq *= scale
    dk *= scale
    return o, dq, dk, dv


def causal_bias(n):
    import numpy as np
    return np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)


def fwd_bwd(q, k, v, do, bias):
    o, p = causal_forward(q, k, v, bias)
    return (o,) + causal_backward(q, k, v, o, p, do)


def inputs(n, d, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, d), dtype=np.float32) for _ in range(4)]


def measure(config, args, env):
    rss_before = fairbench.max_rss_mb()
    q, k, v, do = inputs(config["L"], config["d"])
    bias = causal_bias(config["L"])
    if config["impl"] == "blocked":
        assert config["pass"] == "forward+backward", "blocked: forward+backward only"
        fn = lambda: blocked_fwd_bwd(q, k, v, do, bias, config["block"])  # noqa: E731
    elif config["pass"] == "forward":
        fn = lambda: causal_forward(q, k, v, bias)  # noqa: E731
    else:
        fn = lambda: fwd_bwd(q, k, v, do, bias)  # noqa: E731
    return fairbench.time_reps(fn, args.reps, args.warmup), rss_before, None


def check(n=64, d=16):
    """Gradients against torch autograd (float64 and float32) and a central finite difference."""
    import numpy as np
    q, k, v, do = inputs(n, d, seed=1)
    bias = causal_bias(n)
    o, dq, dk, dv = fwd_bwd(q, k, v, do, bias)
    blocked = blocked_fwd_bwd(q, k, v, do, bias, 24)
    worst = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                for a, b in zip(blocked, (o, dq, dk, dv)))
    print("check blocked (block 24) vs full: max rel difference %.2e" % worst, file=sys.stderr)
    try:
        import torch
        tq, tk, tv = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (q, k, v))
        s = tq @ tk.T / d ** 0.5
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        to = torch.softmax(s, -1) @ tv
        to.backward(torch.tensor(do, dtype=torch.float64))
        for name, mine, ref in (("O", o, to), ("dQ", dq, tq.grad), ("dK", dk, tk.grad),
                                ("dV", dv, tv.grad)):
            ref = ref.detach().numpy()
            err = float(np.max(np.abs(mine - ref)) / max(1e-12, np.max(np.abs(ref))))
            worst = max(worst, err)
            print("check vs torch float64: %-2s max rel error %.2e" % (name, err), file=sys.stderr)
    except ImportError:
        print("check: torch not importable, finite differences only", file=sys.stderr)
    # Central differences in float64 of L = sum(O * dO) on a few entries of each input.
    q64, k64, v64, do64 = (x.astype(np.float64) for x in (q, k, v, do))
    loss = lambda a, b, c: float(np.sum(causal_forward(a, b, c, bias)[0] * do64))  # noqa: E731
    rng = np.random.default_rng(2)
    for name, idx, grad in (("dQ", 0, dq), ("dK", 1, dk), ("dV", 2, dv)):
        for _ in range(5):
            i, j = int(rng.integers(n)), int(rng.integers(d))
            args = [q64.copy(), k64.copy(), v64.copy()]
            args[idx][i, j] += 1e-6
            up = loss(*args)
            args[idx][i, j] -= 2e-6
            fd = (up - loss(*args)) / 2e-6
            err = abs(fd - grad[i, j]) / max(1e-3, abs(fd))
            worst = max(worst, err)
        print("check vs finite differences: %s worst rel error so far %.2e" % (name, worst),
              file=sys.stderr)
    ok = worst < 1e-3
    print("check %s (worst relative error %.2e, float32 kernel, tolerance 1e-3)" %
          ("passed" if ok else "FAILED", worst), file=sys.stderr)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    fairbench.add_args(p)
    p.add_argument("--lengths", default="4096")
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--passes", default="forward+backward", help="forward, forward+backward")
    p.add_argument("--impls", default="full,blocked", help="full, blocked (forward+backward)")
    p.add_argument("--block", type=int, default=256, help="query rows per block (blocked)")
    p.add_argument("--check", action="store_true", help="verify gradients, then exit")
    args = p.parse_args()
    env = fairbench.setup(args, use_torch=False)
    if args.check:
        sys.exit(0 if check() else 1)
    impls = args.impls.split(",")
    configs = [{"impl": "full", "L": int(n), "d": args.head_dim, "causal": True, "pass": ps}
               for n in args.lengths.split(",") for ps in args.passes.split(",")
               if "full" in impls]
    if "blocked" in impls:
        configs += [{"impl": "blocked", "L": int(n), "d": args.head_dim, "causal": True,
                     "pass": "forward+backward", "block": args.block}
                    for n in args.lengths.split(",")]
    fairbench.run("numpy-exact-attention", configs, measure, args, env)


if __name__ == "__main__":
    main()
