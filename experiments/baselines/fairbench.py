"""Shared harness of the baselines in experiments/baselines/: a fair BLAS, pinned threads, equal
repetitions, one JSON line per configuration.

Every script calls, in this order:
  parser = argparse.ArgumentParser(); fairbench.add_args(parser); args = parser.parse_args()
  env = fairbench.setup(args, use_torch=True)     # may re-exec the script (see below)
  fairbench.run("name", configs, measure, args, env)

What setup() does, and why:
- Threads: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set to --threads before
  numpy or torch load (the libraries read them once), then pinned again at run time through
  torch.set_num_threads / set_num_interop_threads and openblas_set_num_threads (ctypes). A
  PyTorch op that calls a multithreaded BLAS from several intra-op threads oversubscribes the
  cores; pinning both to the same count avoids it.
- Python: Debian's python3-torch and python3-numpy live in /usr/lib/python3/dist-packages; a
  pyenv python3 earlier on PATH does not see them, so the script re-executes itself with
  /usr/bin/python3 when the import fails there.
- BLAS: the library serving sgemm_ is read from /proc/self/maps (libblas.so.3 is a Debian
  alternative: OpenBLAS pthread/openmp/serial, BLIS, or the reference netlib BLAS that
  `apt-get install python3-torch` brings in when no other is installed, 10-50x slower).
  For OpenBLAS, openblas_get_corename() and openblas_get_config() (ctypes on the already
  loaded library) give the kernel. OpenBLAS 0.3.21 (Debian 12) picks its kernel at load time
  from CPUID or from OPENBLAS_CORETYPE; when that kernel is weaker than what the CPU supports
  (Prescott, the SSE3 fallback, on an AVX-512 Xeon, or a stale OPENBLAS_CORETYPE in the
  environment), setup() sets OPENBLAS_CORETYPE to the best kernel for the CPU's flags
  (Cooperlake with avx512_bf16, SkylakeX with AVX-512, Haswell with AVX2), drops
  OPENBLAS_L2_SIZE (set together with it on some machines), and re-executes the script so the
  library loads afresh. --blas-core NAME forces a kernel (for the Prescott comparison);
  --blas-core keep leaves the environment's choice.
- Sanity line: GFLOP/s of a 1024^3 float32 matmul through numpy (median of 5), so a slow BLAS
  is visible in every result line.

run(): equal repetitions after --warmup untimed runs; the median and the spread (min, max) are
reported, never the best. Each configuration runs in its own child process (this script again,
with --config-index) so that its peak RSS, getrusage(RUSAGE_SELF).ru_maxrss read at the end of
the configuration, is that of a process that ran only it: the same number `/usr/bin/time -f %M`
or wait4() gives for an `attnlab bench` process running one configuration. rss_before_mb is
the process's ru_maxrss before the configuration allocated its inputs (the interpreter and
libraries), so peak_rss_mb - rss_before_mb is the configuration's own memory.
Output: one JSON line per configuration on stdout (fields: name, config, median_ms, min_ms,
max_ms, reps, times_ms, peak_rss_mb, rss_before_mb, blas, kernel, threads, sanity_gflops, and
per-script extras) and a readable line on stderr.
"""
import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SYSTEM_PYTHON = "/usr/bin/python3"
# OpenBLAS kernels ordered by the instruction set they need; a kernel below the CPU's best is
# replaced. Cores of other vendors or older generations rank 0 (generic for this purpose).
KERNEL_RANK = {"prescott": 0, "nehalem": 0, "core2": 0, "penryn": 0, "dunnington": 0,
               "atom": 0, "katmai": 0, "coppermine": 0, "northwood": 0, "banias": 0,
               "sandybridge": 1, "haswell": 2, "zen": 2, "skylakex": 3, "cooperlake": 4,
               "sapphirerapids": 5}


def add_args(parser):
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and the BLAS")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per config")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--blas-core", default="auto",
                        help="auto (upgrade a generic OpenBLAS kernel), keep, or a kernel name")
    parser.add_argument("--omp-wait-policy", default="auto",
                        help="OMP_WAIT_POLICY for torch's OpenMP threads: auto (PASSIVE when "
                             "--threads > 1 and the environment sets none), PASSIVE, ACTIVE, keep")
    parser.add_argument("--config-index", type=int, default=None, help=argparse.SUPPRESS)


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def best_kernel_for_cpu(flags):
    if {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= flags:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


def _reexec(env_changes, why):
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env["FAIRBENCH_REEXEC"] = str(int(env.get("FAIRBENCH_REEXEC", "0")) + 1)
    if int(env["FAIRBENCH_REEXEC"]) > 3:
        sys.exit("fairbench: re-exec loop (%s)" % why)
    print("fairbench: %s; re-executing" % why, file=sys.stderr, flush=True)
    exe = env_changes.get("_python", sys.executable)
    env.pop("_python", None)
    os.execve(exe, [exe] + sys.argv, env)


def _import_libraries(use_torch):
    try:
        import numpy  # noqa: F401
        if use_torch:
            import torch  # noqa: F401
    except ImportError as e:
        if os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON) and os.path.exists(
                SYSTEM_PYTHON):
            _reexec({"_python": SYSTEM_PYTHON}, "%s under %s" % (e, sys.executable))
        sys.exit("fairbench: %s (apt-get install python3-numpy python3-torch)" % e)


def loaded_blas_libraries():
    paths = []
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            name = os.path.basename(p)
            if ("blas" in name or "blis" in name or "mkl" in name) and p not in paths:
                paths.append(p)
    return paths


def describe_blas():
    """(blas, kernel, handle): the library behind libblas.so.3 and, for OpenBLAS, its kernel."""
    libs = loaded_blas_libraries()
    front = next((p for p in libs if os.path.basename(p).startswith("libblas.so")), None)
    blas = os.path.realpath(front) if front else (libs[0] if libs else "none loaded")
    for p in libs:
        try:
            lib = ctypes.CDLL(p)
            corename = lib.openblas_get_corename
        except (OSError, AttributeError):
            continue
        corename.restype = ctypes.c_char_p
        config = lib.openblas_get_config
        config.restype = ctypes.c_char_p
        if front is None or "openblas" in blas:
            return "%s (%s)" % (blas, config().decode()), corename().decode(), lib
    if "/blas/" in blas:
        return blas + " (reference netlib BLAS: slow)", "reference", None
    return blas, "unknown", None


def pin_threads(threads, handle, use_torch):
    if handle is not None:
        handle.openblas_set_num_threads(threads)
    if use_torch:
        import torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            pass  # already set in this process (only allowed once)


def sanity_gflops(n=1024, reps=5):
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


def setup(args, use_torch=True):
    threads = str(args.threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var) != threads:
            os.environ[var] = threads  # read at library load: this process has not loaded any
    # libgomp threads spin at barriers by default; on a shared, oversubscribed machine the
    # spinning thread takes the core its partner needs, and PyTorch's many small parallel ops
    # each wait for a descheduled thread (SASRec on 2 threads: 2.1x slower per batch).
    policy = args.omp_wait_policy
    if policy == "auto":
        policy = "PASSIVE" if args.threads > 1 and "OMP_WAIT_POLICY" not in os.environ else "keep"
    if policy != "keep":
        os.environ["OMP_WAIT_POLICY"] = policy
    forced = args.blas_core not in ("auto", "keep")
    if forced and os.environ.get("OPENBLAS_CORETYPE", "").lower() != args.blas_core.lower():
        _reexec({"OPENBLAS_CORETYPE": args.blas_core, "OPENBLAS_L2_SIZE": None},
                "--blas-core %s" % args.blas_core)
    _import_libraries(use_torch)
    blas, kernel, handle = describe_blas()
    best = best_kernel_for_cpu(cpu_flags())
    weak = KERNEL_RANK.get(kernel.lower(), 99) < KERNEL_RANK.get((best or "").lower(), -1)
    if args.blas_core == "auto" and handle is not None and best and weak:
        _reexec({"OPENBLAS_CORETYPE": best, "OPENBLAS_L2_SIZE": None},
                "OpenBLAS chose the %s kernel on a CPU that supports %s" % (kernel, best))
    pin_threads(args.threads, handle, use_torch)
    env = {"blas": blas, "kernel": kernel, "threads": args.threads,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
           "coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
           "l2_size_env": os.environ.get("OPENBLAS_L2_SIZE"), "best_kernel_for_cpu": best}
    if use_torch:
        import torch
        env["torch"] = torch.__version__
    if args.config_index is None:
        note = "" if not weak else " (weaker than %s: kept by --blas-core)" % best
        print("fairbench: BLAS %s, kernel %s%s; OPENBLAS_CORETYPE=%s; %d thread(s), "
              "OMP_WAIT_POLICY=%s%s" %
              (blas, kernel, note, env["coretype_env"], args.threads, env["omp_wait_policy"],
               ", torch " + env["torch"] if use_torch else ""), file=sys.stderr, flush=True)
    return env


def time_reps(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def summary(name, config, times_ms, rss_before, env, extra=None):
    rec = {"name": name, "config": config, "median_ms": statistics.median(times_ms),
           "min_ms": min(times_ms), "max_ms": max(times_ms), "reps": len(times_ms),
           "times_ms": [round(t, 3) for t in times_ms], "peak_rss_mb": round(max_rss_mb(), 1),
           "rss_before_mb": round(rss_before, 1), "blas": env["blas"], "kernel": env["kernel"],
           "threads": env["threads"], "omp_wait_policy": env["omp_wait_policy"]}
    rec.update(extra or {})
    rec["sanity_gflops"] = round(sanity_gflops(), 1)  # after the RSS reading: not counted
    return rec


def emit(rec):
    print(json.dumps(rec), flush=True)
    cfg = " ".join("%s=%s" % kv for kv in rec["config"].items())
    print("%-28s %-40s median %10.2f ms  [%.2f, %.2f] x%d  peak RSS %7.1f MiB (%.1f before)  "
          "%s, %d thr, sanity %.0f GFLOP/s" %
          (rec["name"], cfg, rec["median_ms"], rec["min_ms"], rec["max_ms"], rec["reps"],
           rec["peak_rss_mb"], rec["rss_before_mb"], rec["kernel"], rec["threads"],
           rec["sanity_gflops"]), file=sys.stderr, flush=True)


def run(name, configs, measure, args, env):
    """measure(config, args, env) -> (times_ms, rss_before_mb, extra dict or None)."""
    if args.config_index is not None:
        config = configs[args.config_index]
        times, rss_before, extra = measure(config, args, env)
        emit(summary(name, config, times, rss_before, env, extra))
        return
    failed = 0
    for i in range(len(configs)):
        rc = subprocess.call([sys.executable] + sys.argv + ["--config-index", str(i)])
        if rc != 0:
            print("fairbench: config %s failed (exit %d)" % (configs[i], rc), file=sys.stderr)
            failed += 1
    if failed:
        sys.exit(1)
