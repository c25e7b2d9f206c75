#!/usr/bin/python3
"""make-npz.py DIR — fixtures for tests/cli-formats.sh, written by numpy itself.

In DIR: the same weights as model.npz (numpy.savez, stored entries),
model-z.npz (numpy.savez_compressed), one .npy per array under npy/ and a
safetensors twin model.safetensors (checklib.py's writer, our own), so
the C readers can be compared with an independent writer.  The weights
include a Fortran-order float64 matrix, float16, a 4-D kernel and an int64
non-layer tensor.  Also v2.npy (format 2.0, numpy.lib.format.write_array).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import write_safetensors  # noqa: E402


def weights():
    rng = np.random.default_rng(7)
    return {
        "dense": rng.standard_normal((8, 6)).astype("<f4"),
        "fort": np.asfortranarray(rng.standard_normal((5, 7)).astype("<f8")),
        "half": rng.standard_normal((6, 4)).astype("<f2"),
        "conv": rng.standard_normal((4, 3, 3, 3)).astype("<f4"),
        "step": np.arange(3, dtype="<i8"),
    }


def main():
    out = sys.argv[1]
    arrays = weights()
    os.makedirs(os.path.join(out, "npy"), exist_ok=True)
    np.savez(os.path.join(out, "model.npz"), **arrays)
    np.savez_compressed(os.path.join(out, "model-z.npz"), **arrays)
    for name, a in arrays.items():
        np.save(os.path.join(out, "npy", name + ".npy"), a)
    write_safetensors(os.path.join(out, "model.safetensors"), arrays)
    with open(os.path.join(out, "v2.npy"), "wb") as f:
        np.lib.format.write_array(f, arrays["dense"], version=(2, 0))
    assert np.isfortran(np.load(os.path.join(out, "model.npz"))["fort"])


if __name__ == "__main__":
    main()
