"""Independent checks of `rankscope apply --dense` (cli-dense.sh).

    densecheck.py write KIND IN OUT        an F16, BF16 or in,out copy of IN,
                                           made by torch
    densecheck.py check IN PARTS DENSE PLAN APPLY_OUT
    densecheck.py bytes IN PARTS PLAN [APPLY_OUT]
                                           the parts' bytes are the plan's, for
                                           every method

check compares the dense file with the model it came from and with the
parts file apply writes without --dense, rebuilt by samples/apply_plan.py
(torch, written from rankscope-plan(5)): the same tensor names and shapes;
every compressed layer in the model's dtype (F16, BF16, F32, F64; others
F32), within one unit in the last place of the parts' product; everything
else byte for byte; views (--split) joined back into their tensor; and
apply's measured err_F the relative Frobenius distance of the values as
written.
"""
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "samples"))
from checklib import FLOATS, Checker, SafeTensors, write_safetensors  # noqa: E402


def write(kind, src, out):
    import torch
    st = SafeTensors(src)
    items = []
    for name in st.order:
        t = torch.from_numpy(st.array(name))
        if kind == "f16":
            items.append((name, "F16", t.half().numpy()))
        elif kind == "bf16":
            bits = t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
            items.append((name, "BF16", bits))
        elif kind == "in-out":
            a = t.float().numpy()
            items.append((name, "F32", a.T.copy() if a.ndim == 2 else a))
        else:
            sys.exit(f"densecheck.py: unknown copy {kind}")
    write_safetensors(out, items, st.metadata)


def ulp(r, dtype):
    """One unit in the last place of each value of r in the dtype."""
    if dtype == "F16":
        return np.spacing(np.abs(r).astype(np.float16)).astype(np.float64)
    if dtype == "F32":
        return np.spacing(np.abs(r).astype(np.float32)).astype(np.float64)
    if dtype == "F64":
        return np.spacing(np.abs(r))
    # bfloat16: 8 significant bits
    e = np.floor(np.log2(np.maximum(np.abs(r), 2.0 ** -126)))
    return 2.0 ** (e - 7)


def rebuilt(parts, plan):
    import apply_plan
    tensors = apply_plan.from_numpy({n: parts.values(n) for n in parts.entries})
    shapes = {l["name"]: tuple(l["shape"]) for l in plan["layers"]}
    state = apply_plan.rebuild(tensors, plan, shapes)
    out = {}
    for layer in plan["layers"]:
        w = state[layer["name"]].double().numpy()
        if layer.get("layout") == "in,out" and list(w.shape) != list(layer["shape"]):
            # factors rebuild W (out x in), stored as W^T; the parts in
            # tensor order (sparse, codes) rebuild the stored tensor itself
            # (the in,out case of cli-dense.sh keeps square layers off the
            # factorised methods, where the two could not be told apart)
            w = w.T
        out[layer["name"]] = w.reshape(layer["shape"])
    return out


def measured_fro(apply_out):
    """apply's table: layer -> err_F meas."""
    got = {}
    for line in open(apply_out):
        f = line.split()
        if len(f) >= 4 and f[0] != "layer" and not line.startswith(("wrote", "bytes")):
            try:
                got[f[0]] = float(f[3])
            except ValueError:
                pass
    return got


def check(c, src, parts_path, dense_path, plan_path, apply_out):
    model, parts, dense = SafeTensors(src), SafeTensors(parts_path), SafeTensors(dense_path)
    plan = json.load(open(plan_path))
    c.check(dense.metadata.get("rankscope_dense") == "true", "metadata says dense")
    c.check(sorted(dense.entries) == sorted(model.entries),
            f"the model's tensor names: {sorted(set(dense.entries) ^ set(model.entries))}")
    compressed = [l for l in plan["layers"] if l["method"] != "dense"]
    c.check(len(compressed) > 0, "some layer compressed")
    ref = rebuilt(parts, plan)
    meas = measured_fro(apply_out)
    # the whole tensor each compressed layer lives in, and its rows there
    layers_of = {}
    for layer in plan["layers"]:
        name = layer["name"]
        whole = name if name in model.entries else name.rsplit(".", 1)[0]
        layers_of.setdefault(whole, []).append(layer)
    for name, info in model.entries.items():
        d = dense.entries.get(name)
        if d is None:
            continue
        c.check(d["shape"] == info["shape"], f"{name}: shape {d['shape']} {info['shape']}")
        want = info["dtype"] if info["dtype"] in FLOATS else "F32"
        mine = [l for l in layers_of.get(name, []) if l["method"] != "dense"]
        if not mine:
            c.check(dense.raw(name) == model.raw(name), f"{name}: copied byte for byte")
            continue
        c.check(d["dtype"] == want, f"{name}: dtype {d['dtype']}, expected {want}")
        got = dense.array(name)
        views = layers_of[name]
        if len(views) > 1 or views[0]["name"] != name:
            # a split tensor: its views' rows in order, compressed or copied
            rows = []
            for v in views:
                rows.append(ref[v["name"]] if v["method"] != "dense"
                            else parts.array(v["name"]))
            r = np.concatenate(rows, axis=0)
        else:
            r = ref[name]
        gap = np.abs(got - r) - ulp(r, want)
        c.check(float(gap.max()) <= 1e-300 + 1e-12 * float(np.abs(r).max()),
                f"{name}: within one ulp of the rebuilt parts (worst excess {gap.max():.3g})")
        w = model.array(name)
        for v in views:
            if v["method"] == "dense" or v["name"] not in meas:
                continue
            if v["name"] == name:
                err = np.linalg.norm(w - got) / np.linalg.norm(w)
                c.close(meas[v["name"]], err, 2e-6, f"{name}: apply's err_F is that of the "
                        "values as written")
    c.check(len(meas) > 0, "apply printed its table")


def part_kind(suffix):
    """What a part holds (rankscope-plan(5), COMPRESSED MODELS): 'packed'
    for bit streams (codes, bitmaps: U8, rounded up to a byte), 'index' for
    CSR's integers, 'rule' for a quantiser's F32 numbers (grid, scale),
    'value' for everything in the layer's value dtype."""
    if suffix in ("quant.codes", "sparse.bitmap", "channels.bitmap"):
        return "packed"
    if suffix in ("sparse.row_ptr", "sparse.col"):
        return "index"
    if suffix in ("quant.grid", "quant.scale"):
        return "rule"
    return "value"


def check_bytes(c, src, parts_path, plan_path, apply_out=None):
    """For every method the bytes written are the bytes the plan costs
    (predicted.storage_bits / 8), up to the byte each bit-packed tensor is
    rounded to: values in the layer's value dtype (F16 and BF16 models keep
    theirs, others F32), bit streams as U8, CSR's row pointers U32 and
    columns U16, a quantiser's grid or scale F32.  The whole data section
    is the plan's bits_after plus the tensors that are not layers and that
    rounding, so the file shrinks by what the plan said; apply's closing
    'bytes' line says the same."""
    model, parts = SafeTensors(src), SafeTensors(parts_path)
    plan = json.load(open(plan_path))
    layer_names = set()
    rounding = 0          # bits added by rounding bit streams up to bytes
    compressed_bytes = compressed_bits = 0
    for layer in plan["layers"]:
        name = layer["name"]
        layer_names.add(name)
        if layer["method"] == "dense":
            continue
        dtype = model.entries[name]["dtype"]
        # --dtype's (recorded in the plan), else the model's F16/BF16, else F32
        vd = plan.get("value_dtype") or (dtype if dtype in ("F16", "BF16") else "F32")
        mine = [k for k in parts.entries if k.startswith(name + ".")]
        c.check(len(mine) >= 2, f"{name}: its parts {mine}")
        packed = 0
        for k in mine:
            kind, dt = part_kind(k[len(name) + 1:]), parts.entries[k]["dtype"]
            want = {"packed": ("U8",), "index": ("U32", "U16"), "rule": ("F32",),
                    "value": (vd,)}[kind]
            c.check(dt in want, f"{k} ({kind}): {dt}, expected {' or '.join(want)}")
            packed += kind == "packed"
        written = sum(len(parts.raw(k)) for k in mine)
        bits = layer["predicted"]["storage_bits"]
        extra = written * 8 - bits
        c.check(0 <= extra < 8 * max(packed, 1) and (packed > 0 or extra == 0),
                f"{name} ({layer['method']}): {written} bytes written, the plan costs "
                f"{bits / 8} ({packed} bit-packed tensors may round up by < 1 byte each)")
        rounding += extra
        compressed_bytes += written
        compressed_bits += bits
    rest = sum(len(model.raw(k)) for k in model.entries if k not in layer_names)
    dense_kept = sum(len(model.raw(l["name"])) for l in plan["layers"] if l["method"] == "dense")
    data = sum(len(parts.raw(k)) for k in parts.entries)
    t = plan["totals"]
    c.check(data * 8 == t["bits_after"] + 8 * rest + rounding,
            f"data section {data} bytes = bits_after / 8 {t['bits_after'] / 8} + the "
            f"{rest} bytes of the other tensors + {rounding / 8} bytes of rounding")
    before = sum(len(model.raw(k)) for k in model.entries)
    c.check(before * 8 == t["bits_before"] + 8 * rest, "the model's side of the ratio")
    if apply_out is not None:
        line = [x for x in open(apply_out).read().splitlines() if x.startswith("bytes ")]
        if c.check(len(line) == 1, "apply printed its 'bytes' line"):
            size = os.path.getsize(parts_path)
            header = size - data
            want = (f"bytes {size} = header {header} + compressed layers {compressed_bytes} "
                    f"(the plan's {compressed_bits} bits = {compressed_bits / 8:.1f} bytes, + "
                    f"{compressed_bytes - compressed_bits / 8:.1f} rounding bit-packed tensors "
                    f"to whole bytes) + other tensors {rest + dense_kept}")
            c.check(line[0] == want, f"apply's bytes line '{line[0]}', expected '{want}'")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "write":
        write(*args)
        return 0
    c = Checker("densecheck")
    if cmd == "check":
        check(c, *args)
    elif cmd == "bytes":
        check_bytes(c, *args)
    else:
        sys.exit(f"densecheck.py: unknown command {cmd}")
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
