#!/usr/bin/python3
"""Exact causal softmax attention, forward + backward with autograd, in PyTorch (one head,
float32): the fastest idiomatic formulations we could write for PyTorch 1.13 on the CPU.

  python3 experiments/baselines/exact_attention.py --lengths 4096 --head-dim 64 --threads 1
  python3 experiments/baselines/exact_attention.py --impls explicit,addmm,blocked,sdpa

Implementations (--impls; each is one JSON line per length and pass):
  explicit  scores = (q k^T) / sqrt(d); masked_fill(causal mask, -inf); softmax; @ v
            (the textbook form; the mask is a constant built once, as a module buffer would be)
  addmm     scores = addmm(causal_bias, q, k^T, alpha=1/sqrt(d)): scaling and the -inf mask
            fused into the GEMM's epilogue, one L x L pass fewer than explicit
  blocked   query blocks of --block rows: each block attends to keys up to its end only, so
            the GEMMs skip the masked upper triangle (half the flops at large L); the
            diagonal block gets the bias. Autograd keeps each block's weights (O(L^2 / 2))
  sdpa      torch.nn.functional.scaled_dot_product_attention(is_causal=True) when this torch
            has it (2.0+); 1.13 only has the private _scaled_dot_product_attention (a math
            composite), which is timed instead and named sdpa-private. Skipped when neither.
Inputs are [L, d] tensors with requires_grad; forward+backward runs out.backward(g) and clears
the gradients outside the timed region (their allocation is inside, as in training).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fairbench  # noqa: E402


def explicit(q, k, v, consts):
    scores = (q @ k.t()) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(consts["mask"], float("-inf"))
    return scores.softmax(-1) @ v


def addmm(q, k, v, consts):
    import torch
    scores = torch.addmm(consts["bias"], q, k.t(), alpha=q.shape[-1] ** -0.5)
    return scores.softmax(-1) @ v


def blocked(q, k, v, consts):
    import torch
    n, b = q.shape[0], consts["block"]
    bias = consts["bias"]
    outs = []
    for start in range(0, n, b):
        end = min(n, start + b)
        # keys [0, end): the columns >= start + row are masked, only inside the diagonal block
        scores = torch.addmm(bias[start:end, :end], q[start:end], k[:end].t(),
                             alpha=q.shape[-1] ** -0.5)
        outs.append(scores.softmax(-1) @ v[:end])
    return torch.cat(outs)


def sdpa(q, k, v, consts):
    import torch.nn.functional as F
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
    out, _ = F._scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)
    return out[0]


IMPLS = {"explicit": explicit, "addmm": addmm, "blocked": blocked, "sdpa": sdpa}


def sdpa_name():
    import torch.nn.functional as F
    if hasattr(F, "scaled_dot_product_attention"):
        return "sdpa"
    if hasattr(F, "_scaled_dot_product_attention"):
        return "sdpa-private"
    return None


def constants(n, block):
    import torch
    mask = torch.ones(n, n, dtype=torch.bool).triu(1)
    bias = torch.zeros(n, n).masked_fill(mask, float("-inf"))
    return {"mask": mask, "bias": bias, "block": block}


def measure(config, args, env):
    import torch
    torch.manual_seed(0)
    rss_before = fairbench.max_rss_mb()
    n, d = config["L"], config["d"]
    q, k, v = (torch.randn(n, d, requires_grad=True) for _ in range(3))
    g = torch.randn(n, d)
    consts = constants(n, args.block)
    fn = IMPLS[config["impl"].split("-")[0]]
    if config["pass"] == "forward":
        def step():
            with torch.no_grad():
                fn(q, k, v, consts)
        return fairbench.time_reps(step, args.reps, args.warmup), rss_before, None
    times = []
    for _ in range(args.warmup + args.reps):
        t = fairbench.time_reps(lambda: fn(q, k, v, consts).backward(g), 1, 0)[0]
        q.grad = k.grad = v.grad = None
        times.append(t)
    return times[args.warmup:], rss_before, None


def check(n=300, d=16):
    """All implementations agree with explicit on the output and the gradients."""
    import torch
    torch.manual_seed(1)
    q, k, v = (torch.randn(n, d, dtype=torch.float64, requires_grad=True) for _ in range(3))
    g = torch.randn(n, d, dtype=torch.float64)
    consts = constants(n, 128)
    consts["bias"] = consts["bias"].double()
    ref = None
    ok = True
    for name, fn in IMPLS.items():
        if name == "sdpa" and sdpa_name() is None:
            continue
        out = fn(q, k, v, consts)
        out.backward(g)
        vals = [out.detach()] + [t.grad.clone() for t in (q, k, v)]
        q.grad = k.grad = v.grad = None
        if ref is None:
            ref = vals
        err = max(float((a - b).abs().max()) for a, b in zip(vals, ref))
        ok = ok and err < 1e-10
        print("check %-9s max abs difference to explicit (output, dQ, dK, dV): %.1e" %
              (name, err), file=sys.stderr)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    fairbench.add_args(p)
    p.add_argument("--lengths", default="4096")
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--impls", default="explicit,addmm,blocked,sdpa")
    p.add_argument("--passes", default="forward+backward", help="forward, forward+backward")
    p.add_argument("--block", type=int, default=256, help="query rows per block (blocked)")
    p.add_argument("--check", action="store_true", help="compare the implementations, exit")
    args = p.parse_args()
    env = fairbench.setup(args, use_torch=True)
    if args.check:
        sys.exit(0 if check() else 1)
    impls = []
    for name in args.impls.split(","):
        if name == "sdpa":
            if sdpa_name() is None:
                print("exact_attention: this torch has no scaled_dot_product_attention: skipped",
                      file=sys.stderr)
                continue
            name = sdpa_name()
        impls.append(name)
    configs = [dict({"impl": i, "L": int(n), "d": args.head_dim, "causal": True, "pass": ps},
                    **({"block": args.block} if i == "blocked" else {}))
               for n in args.lengths.split(",") for ps in args.passes.split(",") for i in impls]
    fairbench.run("torch-exact-attention", configs, measure, args, env)


if __name__ == "__main__":
    main()
