#!/usr/bin/python3
"""Tables from the logs of measure_all.sh: per pair, attnlab's number, each baseline's median
(and min), and the ratio attnlab / baseline of times (below 1: attnlab faster) or of GFLOP/s.

  python3 experiments/baselines/summarize.py /tmp/baselines-cmp

attnlab's `bench attention` prints the best of its repetitions (no median), `bench gemm` both;
`train` one time per epoch. The baselines print the median and the spread. Ratios are given
against the baseline's median and, for attention, also against its min (best against best).
"""
import glob
import json
import os
import re
import statistics
import sys


def jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def pairs(log, sub):
    n = len(glob.glob(os.path.join(log, sub, "pair*_A.out")))
    for i in range(1, n + 1):
        a = os.path.join(log, sub, "pair%d_A.out" % i)
        b = os.path.join(log, sub, "pair%d_B.out" % i)
        if os.path.exists(b):
            yield i, open(a).read(), jsonl(b)


def sgemm_cores(log):
    rows = jsonl(os.path.join(log, "sgemm_cores.jsonl"))
    if not rows:
        return
    print("## sgemm GFLOP/s by OpenBLAS kernel (numpy, 1 thread; median of 5, alternated)")
    by = {}
    for r in rows:
        by.setdefault((r["config"]["n"], r["kernel"]), []).append(r["gflops_median"])
    for n in sorted({k[0] for k in by}):
        cells = ["%s %s" % (k, "/".join("%.1f" % g for g in by.get((n, k), [])))
                 for k in sorted({k[1] for k in by})]
        print("n=%d: %s" % (n, "; ".join(cells)))
        kernels = sorted({k[1] for k in by})
        if len(kernels) == 2:
            a, b = (by.get((n, k), []) for k in kernels)
            print("   ratio %s/%s per round: %s" % (kernels[0], kernels[1], ", ".join(
                "%.2f" % (x / y) for x, y in zip(a, b))))


def gemm(log):
    print("\n## GEMM GFLOP/s, 1 thread (attnlab median | OpenBLAS median; ratio attnlab/OpenBLAS)")
    for i, a_out, b_rows in pairs(log, "gemm"):
        cells = []
        for r in b_rows:
            n = r["config"]["n"]
            m = re.search(r"^\s*%d\s+1\s+float32\s+([\d.]+)\s+([\d.]+)" % n, a_out, re.M)
            if not m:
                continue
            att = 2.0 * n ** 3 / (float(m.group(2)) * 1e-6) / 1e9
            cells.append("n=%d %.1f | %.1f (%s) = %.2f" % (n, att, r["gflops_median"],
                                                            r["kernel"], att / r["gflops_median"]))
        print("pair %d: %s" % (i, "; ".join(cells)))


def attention(log, sub, kind):
    print("\n## %s L=4096 forward+backward, 1 thread (attnlab best ms; baseline median [min] ms,"
          " peak RSS MiB; ratio attnlab/median, attnlab/min)" % sub)
    runs = jsonl(os.path.join(log, sub + ".runs.jsonl"))
    rss = {(r["pair"], r["side"]): r["maxrss_mb"] for r in runs}
    for i, a_out, b_rows in pairs(log, sub):
        m = re.search(r"^%s\s.*?\s4096\s+1\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)" % kind, a_out, re.M)
        if not m:
            print("pair %d: attnlab line not found" % i)
            continue
        att = float(m.group(2))
        print("pair %d: attnlab %s %.1f ms (peak tensors %s MiB, process peak RSS %.1f MiB)" % (
            i, kind, att, m.group(3), rss.get((i, "A"), 0)))
        for r in b_rows:
            label = r["name"] + " " + " ".join(
                "%s=%s" % kv for kv in r["config"].items() if kv[0] in ("impl", "chunk", "block"))
            print("    %-52s %9.1f [%9.1f] ms  %6.1f MiB  ratio %.3f / %.3f  (%s)" % (
                label, r["median_ms"], r["min_ms"], r["peak_rss_mb"], att / r["median_ms"],
                att / r["min_ms"], r["kernel"]))


def sasrec(log):
    print("\n## SASRec ML-1M epoch (attnlab epoch s | torch s; ratio attnlab/torch)")
    runs = jsonl(os.path.join(log, "sasrec.runs.jsonl"))
    rss = {(r["pair"], r["side"]): r["maxrss_mb"] for r in runs}
    for i, a_out, b_rows in pairs(log, "sasrec"):
        m = re.search(r"^epoch 1: loss ([\d.]+), ([\d.]+)", a_out, re.M)
        if not m or not b_rows:
            print("pair %d: missing output" % i)
            continue
        att = float(m.group(2))
        r = b_rows[0]
        torch_s = (r.get("epoch_ms_extrapolated") or r["median_ms"]) / 1e3
        print("pair %d: attnlab %.1f s (RSS %.0f MiB) | torch %.1f s%s, %s median %.0f ms "
              "[%.0f, %.0f] (RSS %.0f MiB) = %.3f" % (
                  i, att, rss.get((i, "A"), 0), torch_s,
                  " extrapolated from %d batches" % r["reps"] if r.get("extrapolated") else "",
                  r.get("unit", "epoch"), r["median_ms"], r["min_ms"], r["max_ms"],
                  r["peak_rss_mb"], att / torch_s))


def main():
    log = sys.argv[1] if len(sys.argv) > 1 else "/tmp/baselines-cmp"
    sgemm_cores(log)
    gemm(log)
    for sub, kind in (("exact", "softmax-fused"), ("exactnp", "softmax-fused"), ("favor", "favor")):
        if os.path.isdir(os.path.join(log, sub)):
            attention(log, sub, kind)
    sasrec(log)


if __name__ == "__main__":
    main()
