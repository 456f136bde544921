# A stand-in baseline for the `bench compare` test, run with --python /bin/sh: it prints the
# JSON line a real baseline prints (experiments/baselines/bench_case.py).
echo "fake baseline: $*" >&2
echo '{"side": "fake", "median_ms": 1000.0, "min_ms": 900.0, "max_ms": 1100.0, "reps": 1, "kernel": "FakeKernel"}'
