#!/usr/bin/python3
"""make-npz.py DIR — fixtures for tests/cli-formats.sh, written by numpy itself.

In DIR: the same weights as model.npz (numpy.savez, stored entries),
model-z.npz (numpy.savez_compressed), one .npy per array under npy/ and a
safetensors twin model.safetensors (a minimal writer of our own, below), so
the C readers can be compared with an independent writer.  The weights
include a Fortran-order float64 matrix, float16, a 4-D kernel and an int64
non-layer tensor.  Also v2.npy (format 2.0, numpy.lib.format.write_array).
"""
import json
import os
import struct
import sys

import numpy as np


def weights():
    rng = np.random.default_rng(7)
    return {
        "dense": rng.standard_normal((8, 6)).astype("<f4"),
        "fort": np.asfortranarray(rng.standard_normal((5, 7)).astype("<f8")),
        "half": rng.standard_normal((6, 4)).astype("<f2"),
        "conv": rng.standard_normal((4, 3, 3, 3)).astype("<f4"),
        "step": np.arange(3, dtype="<i8"),
    }


ST_DTYPE = {"<f4": "F32", "<f8": "F64", "<f2": "F16", "<i8": "I64"}


def write_safetensors(path, arrays):
    header, blobs, at = {}, [], 0
    for name, a in arrays.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": ST_DTYPE[a.dtype.str], "shape": list(a.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


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
