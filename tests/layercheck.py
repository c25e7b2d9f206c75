#!/usr/bin/python3
"""layercheck.py — fixtures and checks for tests/cli-layers.sh: layers as
their runtime sees them, checked against numpy.

  layercheck.py make DIR
      DIR/net.safetensors: tensors written in scrambled order with numbered
      names (natural order is the network's), an embedding table, a Conv1d
      kernel, a conv followed by a depthwise kernel, a first conv on a
      one-channel image (not depthwise), stacked experts (3-D, not a
      layer) and a linear layer; DIR/twin-in-out.safetensors: the same
      linear layer stored in x out, as Paddle and tfjs keep it.
  layercheck.py spectra DIR SPECTRA.json
      every layer's singular values equal numpy's SVD of the matrix the
      layer is defined to be (1e-9 relative), rows and cols included.
  layercheck.py order INFO.json
      layers in natural order of names, kinds and groups as stated.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checker, natural_order, write_safetensors  # noqa: E402


def weights():
    rng = np.random.default_rng(11)
    w = {
        "layers.10.proj.weight": rng.standard_normal((12, 9)),
        "layers.9.proj.weight": rng.standard_normal((9, 12)),
        "layers.2.proj.weight": rng.standard_normal((12, 12)),
        "model.embed_tokens.weight": rng.standard_normal((50, 8)),
        "audio.conv1d.weight": rng.standard_normal((6, 4, 3)),
        "stem.weight": rng.standard_normal((8, 1, 3, 3)),
        "block.0.pw.weight": rng.standard_normal((16, 8, 1, 1)),
        "block.1.dw.weight": rng.standard_normal((16, 1, 3, 3)),
        "moe.experts.weight": rng.standard_normal((4, 6, 5, )).repeat(20, axis=2),
        "layers.2.proj.bias": rng.standard_normal(12),
        "vit.pos_table": rng.standard_normal((1, 20, 80)),
    }
    return {k: v.astype("<f4") for k, v in w.items()}


def matrix(name, a):
    """The layer matrix by rankscope's definitions (rankscope(1)): 2-D as
    stored; kernels (f, c, kh[, kw]) folded as f x (c kh kw)."""
    if a.ndim == 2:
        return a
    return a.reshape(a.shape[0], -1)


def cmd_make(d):
    w = weights()
    names = list(w)
    order = [names[i] for i in (0, 3, 7, 1, 5, 9, 2, 10, 4, 6, 8)]   # scrambled
    write_safetensors(os.path.join(d, "net.safetensors"),
                      [(n, "F32", w[n]) for n in order])
    lin = w["layers.9.proj.weight"]
    write_safetensors(os.path.join(d, "twin-in-out.safetensors"),
                      [("fc.weight", "F32", np.ascontiguousarray(lin.T))])
    write_safetensors(os.path.join(d, "twin-out-in.safetensors"),
                      [("fc.weight", "F32", lin)])
    qkv = np.concatenate([w["layers.2.proj.weight"], w["layers.9.proj.weight"],
                          np.roll(w["layers.2.proj.weight"], 1, axis=1)])   # 12 + 9 + 12 rows
    write_safetensors(os.path.join(d, "fused.safetensors"), [("attn.qkv.weight", "F32", qkv)])
    return 0


def cmd_spectra(d, path):
    c = Checker("spectra")
    w = weights()
    w["fc.weight"] = w["layers.9.proj.weight"]
    for e, x in enumerate(w["moe.experts.weight"]):   # a stack: one layer per expert
        w[f"moe.experts.weight.{e}"] = x
    w["attn.qkv.weight.q"] = w["layers.2.proj.weight"]   # the fused weight's parts
    w["attn.qkv.weight.k"] = w["layers.9.proj.weight"]
    w["attn.qkv.weight.v"] = np.roll(w["layers.2.proj.weight"], 1, axis=1)
    got = json.load(open(path))["layers"]
    c.check(len(got) > 0, "some layers")
    for l in got:
        m = matrix(l["name"], w[l["name"]].astype(np.float64))
        c.check([l["rows"], l["cols"]] == list(m.shape),
                f"{l['name']}: {l['rows']}x{l['cols']} is W's {m.shape}")
        s = np.linalg.svd(m, compute_uv=False)
        ok = len(s) == len(l["sigma"]) and np.allclose(l["sigma"], s, rtol=1e-9,
                                                       atol=1e-12 * s[0])
        c.check(ok, f"{l['name']}: singular values equal numpy's")
    return c.done()


def cmd_order(path):
    c = Checker("order")
    info = json.load(open(path))
    layers = info["layers"]
    names = [l["name"] for l in layers]
    c.check(names == natural_order(names), f"layers in natural order: {names}")
    c.check(names.index("layers.9.proj.weight") < names.index("layers.10.proj.weight"),
            "layers.9 before layers.10")
    kinds = {l["name"]: (l["kind"], l["groups"]) for l in layers}
    want = {
        "model.embed_tokens.weight": ("embedding", None),
        "audio.conv1d.weight": ("conv", 1),
        "stem.weight": ("conv", 1),
        "block.0.pw.weight": ("conv", 1),
        "block.1.dw.weight": ("conv", 16),
        "layers.2.proj.weight": ("linear", None),
    }
    for n, k in want.items():
        c.check(kinds.get(n) == k, f"{n}: kind and groups {kinds.get(n)}, expected {k}")
    others = {t["name"]: t["not_a_layer"] for t in info["other_tensors"]}
    c.check("vit.pos_table" in others and "not a Conv1d kernel" in others["vit.pos_table"],
            f"a (1, n, d) table is not a layer: {others.get('vit.pos_table')}")
    experts = [n for n in names if n.startswith("moe.experts.weight")]
    c.check(experts == [f"moe.experts.weight.{e}" for e in range(4)],
            f"the stack of 4 experts is 4 layers: {experts}")
    c.check(all(kinds[n] == ("linear", None) for n in experts), "each expert is linear")
    return c.done()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"make": lambda: cmd_make(*args), "spectra": lambda: cmd_spectra(*args),
              "order": lambda: cmd_order(*args)}[cmd]())
