#!/usr/bin/env python3
"""The baseline side of `attnlab bench compare`: one named case, run by the fastest baseline
formulation measured on this project's machines, printed as the JSON line of fairbench.py.

`attnlab bench compare --against pytorch|numpy` runs this script and `attnlab bench case` in
turn (A B A B ...) with the same case flags, repetitions and thread count:

  bench_case.py --framework torch|numpy --case gemm --n 1024 --reps 5 --threads 1
  bench_case.py --framework torch --case exact-causal --length 4096 --head-dim 64
  bench_case.py --framework torch --case favor-causal --length 4096 --features 256
  bench_case.py --framework torch --case sasrec-epoch --data ml-1m.txt --batches 20

Each case maps to one configuration of a script of this folder, which it executes (so the child
attnlab measures is that script, with its BLAS check and kernel upgrade, thread pinning and
equal repetitions):
  gemm          sgemm.py (numpy or torch)
  exact-causal  exact_attention.py --impls blocked (torch's fastest here: query blocks that skip
                the masked triangle) or numpy_attention.py --impls blocked (backward by hand)
  favor-causal  favor.py --impls chunked --chunks 256 (intra-chunk masked matmuls plus one
                prefix sum of chunk states), torch only
  sasrec-epoch  sasrec.py (the same model and settings as `attnlab train`), torch only
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def script_args(a):
    common = ["--threads", str(a.threads), "--reps", str(a.reps)]
    if a.case == "gemm":
        return "sgemm.py", ["--via", "torch" if a.framework == "torch" else "numpy",
                            "--sizes", str(a.n)] + common
    if a.case == "exact-causal":
        script = "exact_attention.py" if a.framework == "torch" else "numpy_attention.py"
        return script, ["--lengths", str(a.length), "--head-dim", str(a.head_dim),
                        "--impls", "blocked"] + common
    if a.framework != "torch":
        sys.exit("bench_case: --case %s has no numpy baseline (gemm, exact-causal)" % a.case)
    if a.case == "favor-causal":
        return "favor.py", ["--lengths", str(a.length), "--features", str(a.features),
                            "--head-dim", str(a.head_dim), "--impls", "chunked",
                            "--chunks", "256"] + common
    if not a.data:
        sys.exit("bench_case: --case sasrec-epoch needs --data FILE")
    # --batches N: N single batches after one warm-up batch (median per batch); else --reps
    # whole epochs (sasrec.py's --epochs).
    unit = (["--batches", str(a.batches), "--warmup", "1"] if a.batches > 0 else
            ["--epochs", str(a.reps), "--warmup", "0"])
    return "sasrec.py", ["--data", a.data, "--threads", str(a.threads)] + unit


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", choices=["torch", "numpy"], default="torch")
    p.add_argument("--case", required=True,
                   choices=["gemm", "exact-causal", "favor-causal", "sasrec-epoch"])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--data", default="")
    p.add_argument("--batches", type=int, default=0)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    script, args = script_args(a)
    path = os.path.join(HERE, script)
    os.execv(sys.executable, [sys.executable, path] + args)


if __name__ == "__main__":
    main()
