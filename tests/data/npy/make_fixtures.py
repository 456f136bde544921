#!/usr/bin/env python3
"""Writes the NumPy-made fixtures that tests/test_core_npy.cpp loads.

Regenerate (from the repository root) with

    python3 tests/data/npy/make_fixtures.py

The files are committed, so the test suite never needs Python. They were made with NumPy 1.24;
np.save of NumPy >= 1.23 pads headers for in-place growth, and the tests check that attnlab's
writer reproduces f32.npy, i64.npy, scalar.npy and empty.npy byte for byte, so regenerate with
NumPy >= 1.23. Values are simple formulas, repeated in the C++ tests. Keep the files tiny.
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def main():
    f32 = (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3)
    np.save(path("f32.npy"), f32)
    np.save(path("f64.npy"), np.array([0.1, -2.5, 1e300, 5e-324], dtype=np.float64))
    np.save(path("i64.npy"), np.array([[0, -1], [2**62, -(2**63)]], dtype=np.int64))
    # Column-major data: attnlab converts to row-major on load.
    np.save(path("fortran_f8.npy"),
            np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4)))
    np.save(path("fortran_f4.npy"), np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)))
    # Big-endian data: attnlab byte-swaps on load.
    np.save(path("be_f8.npy"), np.arange(5, dtype=">f8") * 1.5)
    np.save(path("be_f4.npy"), np.arange(3, dtype=">f4") - 1)
    np.save(path("be_i8.npy"), np.array([1, -2, 2**40], dtype=">i8"))
    np.save(path("scalar.npy"), np.array(3.25))
    np.save(path("empty.npy"), np.zeros((0, 3), dtype=np.float32))
    # Explicit format versions (np.save picks 1.0 for small headers).
    with open(path("v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.arange(4, dtype=np.float32), version=(2, 0))
    with open(path("v3.npy"), "wb") as f:
        np.lib.format.write_array(f, np.arange(4, dtype=np.int64), version=(3, 0))
    arrays = dict(
        weight=f32,
        bias=np.array([0.5, -0.5]),
        steps=np.array(7, dtype=np.int64),
    )
    np.savez(path("savez.npz"), **arrays)
    np.savez_compressed(path("savez_compressed.npz"), **arrays)
    total = sum(os.path.getsize(path(n)) for n in os.listdir(HERE)
                if n.endswith((".npy", ".npz")))
    print(f"fixtures written to {HERE}: {total} bytes")


if __name__ == "__main__":
    main()
