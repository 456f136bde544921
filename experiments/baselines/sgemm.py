#!/usr/bin/python3
"""float32 GEMM GFLOP/s of the BLAS that numpy and torch call (C = A B, n x n x n).

  python3 experiments/baselines/sgemm.py --sizes 256,512,1024,2048 --threads 1
  python3 experiments/baselines/sgemm.py --compare-cores Prescott,Cooperlake --pairs 3

--via numpy (default) or torch (torch.mm: the same sgemm_ through ATen). --compare-cores runs
this script once per kernel, alternating (A B A B ...) for --pairs rounds, so that the kernels
are compared under the same machine load; each child prints its JSON lines.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fairbench  # noqa: E402


def measure(config, args, env):
    n = config["n"]
    rss_before = fairbench.max_rss_mb()
    if config["via"] == "torch":
        import torch
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        out = torch.empty(n, n)
        fn = lambda: torch.mm(a, b, out=out)  # noqa: E731
    else:
        import numpy as np
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        fn = lambda: np.matmul(a, b, out=out)  # noqa: E731
    # Every call is timed on its own (as attnlab's bench gemm does: a short call that runs
    # between two preemptions of a loaded machine is not charged for them); small sizes get
    # more calls, so that each size runs about --reps x 2 GFLOP.
    inner = max(1, int(2e9 / (2.0 * n ** 3)))
    times = fairbench.time_reps(fn, args.reps * inner, args.warmup * inner)
    gflops = [2.0 * n ** 3 / (t * 1e-3) / 1e9 for t in times]
    return times, rss_before, {"gflops_median": round(sorted(gflops)[len(gflops) // 2], 1),
                               "gflops_min": round(min(gflops), 1),
                               "gflops_max": round(max(gflops), 1), "inner_calls": inner}


def compare_cores(args):
    cores = args.compare_cores.split(",")
    base = [a for a in sys.argv if not a.startswith("--compare-cores")]
    if "--compare-cores" in sys.argv:  # the "--compare-cores X" spelling
        i = sys.argv.index("--compare-cores")
        base = sys.argv[:i] + sys.argv[i + 2:]
    for round_ in range(args.pairs):
        for core in cores:
            print("fairbench: round %d, kernel %s" % (round_ + 1, core), file=sys.stderr,
                  flush=True)
            rc = subprocess.call([sys.executable] + base + ["--blas-core", core])
            if rc != 0:
                sys.exit(rc)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    fairbench.add_args(p)
    p.add_argument("--sizes", default="256,512,1024,2048")
    p.add_argument("--via", choices=["numpy", "torch"], default="numpy")
    p.add_argument("--compare-cores", default=None, help="e.g. Prescott,Cooperlake")
    p.add_argument("--pairs", type=int, default=3)
    args = p.parse_args()
    if args.compare_cores:
        return compare_cores(args)
    env = fairbench.setup(args, use_torch=args.via == "torch")
    configs = [{"n": int(n), "via": args.via} for n in args.sizes.split(",")]
    fairbench.run("sgemm", configs, measure, args, env)


if __name__ == "__main__":
    main()
