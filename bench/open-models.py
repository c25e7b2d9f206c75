#!/usr/bin/python3
"""open-models.py DIR [MB] — the same model of about MB megabytes (default
1024) in every format rankscope reads, each written by its format's own
writer, for bench-open: safetensors (the format's definition, as the tests
write it), NumPy .npz (numpy.savez), a PyTorch checkpoint (torch.save), ONNX
(onnx.helper, raw_data initializers of a MatMul chain), a Hugging Face
sharded checkpoint (three safetensors shards and their index) and, when
ggml's library is at $GGML_BASE_LIB, GGUF (F16, through gguf-check.py's
writer).  Prints the paths written, one per line.
"""
import json
import os
import subprocess
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
from checklib import write_safetensors  # noqa: E402


def weights(mb):
    n = 2048                                   # 16 MiB per float32 layer
    count = max(1, int(mb * 1e6 // (n * n * 4)))
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, n)).astype("<f4")
    # distinct layers without generating 1 GB of random numbers
    return {f"layers.{i}.proj.weight": np.roll(base, i, axis=1) for i in range(count)}


def main(d, mb):
    os.makedirs(d, exist_ok=True)
    w = weights(mb)
    names = list(w)
    out = []

    p = os.path.join(d, "model.safetensors")
    write_safetensors(p, [(k, "F32", w[k]) for k in names])
    out.append(p)

    p = os.path.join(d, "model.npz")
    np.savez(p, **w)
    out.append(p)

    sd = os.path.join(d, "sharded")
    os.makedirs(sd, exist_ok=True)
    wmap = {}
    for s in range(3):
        f = f"model-{s + 1:05d}-of-00003.safetensors"
        part = names[s::3]
        write_safetensors(os.path.join(sd, f), [(k, "F32", w[k]) for k in part])
        wmap.update({k: f for k in part})
    json.dump({"metadata": {}, "weight_map": wmap},
              open(os.path.join(sd, "model.safetensors.index.json"), "w"), sort_keys=True)
    out.append(sd)

    try:
        import torch
        p = os.path.join(d, "model.pt")
        torch.save({k: torch.from_numpy(v) for k, v in w.items()}, p)
        out.append(p)
    except ImportError:
        print("open-models: no torch: no model.pt", file=sys.stderr)

    try:
        import onnx
        from onnx import helper, numpy_helper, TensorProto
        n = w[names[0]].shape[0]
        nodes, inits, x = [], [], "x"
        for i, k in enumerate(names):
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w[k].T), k))
            nodes.append(helper.make_node("MatMul", [x, k], [f"h{i}"]))
            x = f"h{i}"
        g = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, n])],
                              inits)
        p = os.path.join(d, "model.onnx")
        onnx.save(helper.make_model(g, producer_name="bench"), p)
        out.append(p)
    except ImportError:
        print("open-models: no onnx: no model.onnx", file=sys.stderr)

    lib = os.environ.get("GGML_BASE_LIB", "")
    if lib and os.path.exists(lib):
        writer = os.path.join(here, "..", "tests", "gguf-check.py")
        p = os.path.join(d, "model.gguf")
        st = os.path.join(d, "model.safetensors")
        if subprocess.run([sys.executable, writer, "write-f16", p, st]).returncode == 0:
            out.append(p)
        else:
            print("open-models: gguf-check.py write-f16 failed: no model.gguf", file=sys.stderr)
    else:
        print(f"open-models: no ggml library (GGML_BASE_LIB={lib or 'unset'}; "
              "./bootstrap installs it): no model.gguf", file=sys.stderr)
    for p in out:
        print(p)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1024)
