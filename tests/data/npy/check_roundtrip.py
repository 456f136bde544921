#!/usr/bin/env python3
"""Checks with NumPy the .npy/.npz files attnlab writes (the test suite itself needs no Python).

Usage, from the build directory:

    mkdir -p /tmp/npycheck
    ATTNLAB_NPY_CHECK_DIR=/tmp/npycheck ./attnlab_tests -tc="numpy check files*"
    python3 <repo>/tests/data/npy/check_roundtrip.py /tmp/npycheck

The test case "numpy check files" (tests/test_core_npy.cpp) writes the files below; the expected
values are repeated here. Every .npy must also equal np.save's bytes for the same array.
Exits non-zero on the first mismatch.
"""
import io
import os
import sys

import numpy as np


def expected_arrays():
    return {
        "f32": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
        "f64_r4": (np.arange(30, dtype=np.float64) * 0.25 - 3).reshape(2, 3, 1, 5),
        "i64": np.array([0, -1, 2**62, -(2**63)], dtype=np.int64),
        "scalar": np.array(3.25, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    for name, want in expected_arrays().items():
        path = os.path.join(folder, name + ".npy")
        got = np.load(path, allow_pickle=False)
        if not same(got, want):
            sys.exit(f"{path}: got {got.dtype} {got.shape} {got!r}, want {want!r}")
        buf = io.BytesIO()
        np.save(buf, want)
        with open(path, "rb") as f:
            if f.read() != buf.getvalue():
                sys.exit(f"{path}: bytes differ from np.save's")
        print(f"ok  {name}.npy  {got.dtype} {got.shape}")

    path = os.path.join(folder, "multi.npz")
    arrays = expected_arrays()
    want = {
        "weight": arrays["f32"],
        "layers/0/bias": np.array([0.5, -0.5]),
        "steps": np.array(7, dtype=np.int64),
        "empty": arrays["empty"],
    }
    with np.load(path, allow_pickle=False) as z:
        if z.files != list(want):
            sys.exit(f"{path}: entries {z.files}, want {list(want)} in that order")
        for key, value in want.items():
            if not same(z[key], value):
                sys.exit(f"{path}:{key}: got {z[key]!r}, want {value!r}")
    print(f"ok  multi.npz  {list(want)}")
    print("all files written by attnlab read back correctly with NumPy", np.__version__)


if __name__ == "__main__":
    main()
