#!/usr/bin/env python3
"""Reference timings of a straightforward PyTorch CPU softmax attention, for comparison with
`attnlab bench attention --kind softmax-reference,softmax-fused` on the same machine.

Not part of the build or the tests (PyTorch is not a dependency). On Debian 12:
  sudo apt-get install python3-torch
  python3 experiments/pytorch/softmax_attention.py --lengths 1024,4096 --threads 1

It measures forward + backward of scores = q k^T / sqrt(d), causal mask, softmax, weights @ v
with autograd (one head, head_dim 64, float32), best of --reps runs, and the process's peak RSS
growth during the run (resource.getrusage, so run one length per process for clean numbers).
"""
import argparse
import resource
import time

import torch


def attention(q, k, v, causal):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        n = q.shape[-2]
        mask = torch.ones(n, n, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lengths", default="1024,4096")
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-causal", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} thread(s), head_dim {a.head_dim}, "
          f"{'bidirectional' if a.no_causal else 'causal'}")
    for n in [int(x) for x in a.lengths.split(",")]:
        shape = (1, 1, n, a.head_dim)
        q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
        g = torch.randn(shape)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        best_fwd = best_both = float("inf")
        for _ in range(a.reps):
            t0 = time.perf_counter()
            with torch.no_grad():
                attention(q, k, v, not a.no_causal)
            t1 = time.perf_counter()
            out = attention(q, k, v, not a.no_causal)
            out.backward(g)
            t2 = time.perf_counter()
            best_fwd = min(best_fwd, t1 - t0)
            best_both = min(best_both, t2 - t1)
            q.grad = k.grad = v.grad = None
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
        print(f"L={n:6d}  forward {best_fwd * 1e3:9.1f} ms  forward+backward {best_both * 1e3:9.1f} ms"
              f"  peak RSS growth {rss / 1024:8.1f} MiB")


if __name__ == "__main__":
    main()
