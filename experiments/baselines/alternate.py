#!/usr/bin/python3
"""Run two benchmark commands alternately (A B A B ...) so that both sides see the same load on
a shared machine, and record each run's wall time and peak RSS.

  python3 experiments/baselines/alternate.py --pairs 3 --log /tmp/cmp \\
      --a "./build/attnlab bench gemm --threads 1 --sizes 1024" \\
      --b "python3 experiments/baselines/sgemm.py --sizes 1024 --threads 1"

Each run's stdout and stderr go to LOG/pairN_A.out / .err (the JSON lines of the baselines,
attnlab's tables and --out files are read from there). One JSON line per run on stdout:
pair, side, cmd, wall_s, maxrss_mb (ru_maxrss from wait4: the largest process of the run's
tree that was waited for), rc. The commands are split with shlex and run without a shell.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time


def run_once(cmd, out_path, err_path):
    with open(out_path, "w") as out, open(err_path, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(shlex.split(cmd), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    return wall, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="first command (e.g. attnlab)")
    p.add_argument("--b", required=True, help="second command (e.g. the baseline)")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--log", required=True, help="directory for the runs' outputs")
    args = p.parse_args()
    os.makedirs(args.log, exist_ok=True)
    failed = False
    for pair in range(1, args.pairs + 1):
        for side, cmd in (("A", args.a), ("B", args.b)):
            stem = os.path.join(args.log, "pair%d_%s" % (pair, side))
            wall, rss, rc = run_once(cmd, stem + ".out", stem + ".err")
            failed = failed or rc != 0
            print(json.dumps({"pair": pair, "side": side, "cmd": cmd, "wall_s": round(wall, 3),
                              "maxrss_mb": round(rss, 1), "rc": rc,
                              "utc": time.strftime("%H:%M:%S", time.gmtime())}), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
