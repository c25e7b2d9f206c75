#!/usr/bin/env python3
"""make-seeds.py — writes the hand-made seeds of two fuzz corpora.

    tests/fuzz/make-seeds.py CORPUS_DIR

writes CORPUS_DIR/safetensors/seed-* (small valid files: every dtype, the
ranks of shapes layers are made of, metadata, a compose declaration, odd
header lengths) and CORPUS_DIR/lua-args/seed-* (call sequences in the
byte format of fuzz-lua-args.c: every function and method with good
arguments, and a few with bad ones), and tests/fuzz/lua-args.dict (the
same format's pieces: each string as an argument, boundary numbers,
each callee).  The plan and cache seeds come from the program itself
(tests/fuzz/README).  Everything is deterministic.
"""
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- safetensors ----

def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def values(n, scale=0.25):
    return [((i * 37 + 11) % 23 - 11) * scale for i in range(n)]


def f32(shape):
    n = 1
    for d in shape:
        n *= d
    return struct.pack("<%df" % n, *values(n))


def f64(shape):
    n = 1
    for d in shape:
        n *= d
    return struct.pack("<%dd" % n, *values(n))


def f16(shape):
    n = 1
    for d in shape:
        n *= d
    return struct.pack("<%de" % n, *values(n))


def bf16(shape):
    raw = f32(shape)
    return b"".join(raw[i + 2:i + 4] for i in range(0, len(raw), 4))


def safetensors_seeds():
    seeds = {}
    seeds["empty"] = safetensors([])
    seeds["metadata-only"] = safetensors([], {"format": "pt", "note": "x"})
    seeds["linear-f32"] = safetensors([("fc.weight", "F32", [4, 6], f32([4, 6])),
                                       ("fc.bias", "F32", [4], f32([4]))])
    seeds["linear-f16"] = safetensors([("w", "F16", [3, 5], f16([3, 5]))])
    seeds["linear-bf16"] = safetensors([("w", "BF16", [5, 3], bf16([5, 3]))])
    seeds["linear-f64"] = safetensors([("w", "F64", [2, 7], f64([2, 7]))])
    seeds["conv-f32"] = safetensors([("conv.weight", "F32", [3, 2, 3, 2],
                                      f32([3, 2, 3, 2]))], {"format": "pt"})
    seeds["conv-f16"] = safetensors([("c", "F16", [2, 3, 1, 3], f16([2, 3, 1, 3]))])
    seeds["mixed"] = safetensors([
        ("a.weight", "F32", [2, 3], f32([2, 3])),
        ("b.weight", "BF16", [2, 2, 2, 2], bf16([2, 2, 2, 2])),
        ("steps", "I64", [1], struct.pack("<q", 7)),
        ("mask", "BOOL", [4], b"\x01\x00\x01\x01"),
        ("codes", "U8", [2, 2], b"\x01\x02\x03\x04"),
        ("q", "I8", [3], b"\x7f\x80\x00"),
        ("h", "I16", [2], b"\x01\x00\xff\xff"),
        ("u16", "U16", [1], b"\x01\x00"),
        ("i32", "I32", [1], b"\x01\x00\x00\x00"),
        ("u32", "U32", [1], b"\x01\x00\x00\x00"),
        ("u64", "U64", [1], b"\x01" + b"\x00" * 7),
        ("c64", "C64", [1], b"\x00" * 8),
        ("e5", "F8_E5M2", [2], b"\x3c\xbc"),
        ("e4", "F8_E4M3", [2], b"\x38\xb8"),
        ("e8", "F8_E8M0", [1], b"\x7f"),
        ("f4", "F4", [2, 2], b"\x12\x34"),
        ("f6a", "F6_E2M3", [4], b"\x00\x00\x00"),
        ("f6b", "F6_E3M2", [4], b"\x00\x00\x00"),
    ])
    seeds["shapes"] = safetensors([
        ("scalar", "F32", [], f32([])),
        ("vec", "F32", [3], f32([3])),
        ("zero", "F32", [0, 4], b""),
        ("three", "F32", [2, 1, 2], f32([2, 1, 2])),
        ("five", "F32", [1, 1, 1, 1, 2], f32([1, 1, 1, 1, 2])),
        ("one", "F32", [1, 1], f32([1, 1])),
    ])
    seeds["nan"] = safetensors([("good", "F32", [2, 2], f32([2, 2])),
                                ("bad", "F32", [2, 2],
                                 struct.pack("<4f", 1.0, float("nan"), 0.0, 2.0)),
                                ("inf", "F16", [1, 2, 1, 1], struct.pack("<2e", 1.0, float("inf")))])
    seeds["unpadded"] = safetensors([("w", "F32", [2, 2], f32([2, 2]))], pad=False)
    seeds["composed"] = safetensors([
        ("fc1.factors.0.weight", "F32", [2, 6], f32([2, 6])),
        ("fc1.factors.1.weight", "F16", [3, 2], f16([3, 2])),
        ("fc1.factors.2.weight", "F32", [4, 3], f32([4, 3])),
        ("fc2.weight", "F32", [2, 4], f32([2, 4])),
    ], {"compose": "fc*.factors.#.weight"})
    seeds["composed-bad-chain"] = safetensors([
        ("m.0", "F32", [2, 3], f32([2, 3])),
        ("m.1", "F32", [2, 3], f32([2, 3])),
    ], {"compose": "m.#"})
    seeds["escapes"] = safetensors([("w\x07\"x\x1b[31m", "F32", [1, 2], f32([1, 2]))],
                                   {"k\n": "v\t"})
    return seeds


# ---- Lua calls (fuzz-lua-args.c) ----

def callee_table():
    src = open(os.path.join(HERE, "fuzz-lua-args.c")).read()
    body = src[src.index("static const callee callees[] = {"):]
    body = body[:body.index("};")]
    return [(k, n) for k, n in re.findall(r'\{(\w+_FN), (?:"([^"]*)"|NULL)\}', body)]


CALLEES = None
LAYERS = {"conv1.weight": 0, "fc.weight": 1, "head.weight": 2, "lora.weight": 3}


def callee(kind, name):
    global CALLEES
    if CALLEES is None:
        CALLEES = callee_table()
    return CALLEES.index((kind, name or ""))


def nil():
    return bytes([0])


def boolean(b):
    return bytes([2 if b else 1])


def integer(v):
    return bytes([4]) + struct.pack(">q", v)


def number(v):
    return bytes([6]) + struct.pack(">d", v)


def string(s):
    raw = s.encode() if isinstance(s, str) else s
    assert len(raw) < 256
    return bytes([8, len(raw)]) + raw


def value(v):
    if isinstance(v, bytes):
        return v                      # already encoded
    if v is None:
        return nil()
    if isinstance(v, bool):
        return boolean(v)
    if isinstance(v, int):
        return integer(v)
    if isinstance(v, float):
        return number(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return bytes([10, len(v)]) + b"".join(value(x) for x in v)
    if isinstance(v, dict):
        return bytes([9, len(v)]) + b"".join(value(k) + value(x) for k, x in v.items())
    raise TypeError(v)


def layer(name):
    return bytes([11, LAYERS[name]])


def model():
    return bytes([12])


def plan():
    return bytes([13])


def register(i):
    return bytes([14, i])


def with_metatable(entries, mt, array=False):
    """A table (dict or list) with metatable number mt of fuzz-lua-args.c."""
    if array:
        body = bytes([len(entries)]) + b"".join(value(x) for x in entries)
    else:
        body = bytes([len(entries)]) + b"".join(value(k) + value(x)
                                                for k, x in entries.items())
    return bytes([15, 1 if array else 0]) + body + bytes([mt])


def call(kind, name, *args, self_layer=None, fuzzed_self=False, field=None, reg=0):
    """One call; for LAYER_FN self_layer names the object unless fuzzed_self;
    for REGISTER_FN reg is the register and field the string looked up in
    it (when it holds a table)."""
    out = bytes([callee(kind, name), len(args) | (8 if fuzzed_self else 0)])
    assert len(args) <= 7
    if kind == "REGISTER_FN":
        out += bytes([reg])
        if field is not None:
            out += bytes([0])         # strings[0]; overwritten below
            out = out[:-1] + bytes([STRINGS.index(field)])
    elif kind == "LAYER_FN" and not fuzzed_self:
        out += bytes([LAYERS[self_layer]])
    return out + b"".join(value(a) for a in args)


def string_table():
    src = open(os.path.join(HERE, "fuzz-lua-args.c")).read()
    body = src[src.index("static const char *const strings[] = {"):]
    body = body[:body.index("};")]
    return [s.encode().decode("unicode_escape") for s in re.findall(r'"((?:[^"\\]|\\.)*)"', body)]


STRINGS = string_table()


def lua_seeds():
    P = "PLAN_FN"
    seeds = {}
    q = []
    for name in ["sigma", "err_fro", "err_spec", "energy", "params", "flops", "pays"]:
        q.append(call("LAYER_FN", name, 2, self_layer="fc.weight"))
    for name in ["sigmas", "breakeven", "stable_rank", "effective_rank", "fro_norm",
                 "spec_norm", "ready", "storage", "__tostring"]:
        q.append(call("LAYER_FN", name, self_layer="conv1.weight"))
    q.append(call("LAYER_FN", "rank_for_energy", 0.9, self_layer="head.weight"))
    q.append(call("LAYER_FN", "rank_for_err_fro", 0.1, self_layer="lora.weight"))
    q.append(call("LAYER_FN", "rank_for_err_spec", 0.1, self_layer="fc.weight"))
    q.append(call("LAYER_FN", "prune_error", 0.5, self_layer="fc.weight"))
    q.append(call("LAYER_FN", "prune_rows_error", 0.5, self_layer="conv1.weight"))
    q.append(call("LAYER_FN", "prune_cols_error", 0.25, self_layer="head.weight"))
    q.append(call("LAYER_FN", "count_below", 0.3, self_layer="fc.weight"))
    q.append(call("LAYER_FN", "quant_error", "kmeans", 4, self_layer="fc.weight"))
    q.append(call("LAYER_FN", "quant_storage", "uniform-channel", 3, self_layer="fc.weight"))
    q.append(call("LAYER_FN", "storage", 10, self_layer="fc.weight"))
    q.append(call("LAYER_FN", "__index", "shape", self_layer="conv1.weight"))
    q.append(call("LAYER_FN", "__index", "factors", self_layer="lora.weight"))
    q.append(call("LAYER_FN", "__eq", layer("fc.weight"), self_layer="fc.weight"))
    seeds["layer-methods"] = bytes([0]) + b"".join(q)

    q = [call("MODEL_FN", "layers"), call("MODEL_FN", "layer", "fc.weight"),
         call("MODEL_FN", "params"), call("MODEL_FN", "metadata", "format"),
         call("MODEL_FN", "__index", "path"), call("MODEL_FN", "__index", "nlayers"),
         call("MODEL_FN", "__len"), call("MODEL_FN", "__tostring"),
         call("MODULE_FN", "model"), call("MODULE_FN", "plan"),
         call(P, "totals"), call(P, "__tostring"), call(P, "get", "fc.weight"),
         call(P, "reset")]
    seeds["model-plan"] = bytes([0]) + b"".join(q)

    specs = [
        ("fc.weight", 2),
        ("fc.weight", {"method": "lowrank", "rank": 1}),
        ("head.weight", {"method": "prune", "sparsity": 0.5}),
        ("conv1.weight", {"method": "prune-rows", "sparsity": 0.5}),
        ("conv1.weight", {"method": "prune-cols", "sparsity": 0.25}),
        ("fc.weight", {"method": "quant", "quantizer": "kmeans", "bits": 3}),
        ("lora.weight", {"method": "quant", "quantizer": "ternary", "bits": 2}),
        ("fc.weight", {"method": "lowrank+sparse", "rank": 1, "sparsity": 0.9}),
        ("fc.weight", {"method": "quant+sparse", "quantizer": "uniform-tensor",
                       "bits": 4, "sparsity": 0.9}),
        ("head.weight", {"method": "lowrank+sparse+quant", "rank": 1, "sparsity": 0.9,
                         "quantizer": "binary", "bits": 1}),
        ("fc.weight", {"method": "grouped", "rank": 1, "groups": 2}),
        ("conv1.weight", {"method": "grouped", "rank": 1, "groups": 2, "fold": 1}),
        ("conv1.weight", {"method": "tucker2", "ranks": [2, 1]}),
        ("conv1.weight", {"method": "cp", "rank": 2}),
        ("fc.weight", {"method": "tt", "d": 2}),
        ("lora.weight", {"method": "tt", "rows": [5, 1], "cols": [2, 4], "ranks": [1]}),
        ("head.weight", {"method": "tt", "rows": [3, 1], "cols": [2, 3], "eps": 0.5}),
        ("head.weight", {"method": "dense"}),
    ]
    for i, (name, spec) in enumerate(specs):
        target = layer(name) if i % 2 else name
        seeds["plan-set-%02d" % i] = bytes([0]) + call(P, "set", target, spec) + \
            call(P, "get", target) + call(P, "totals")
    seeds["plan-set-all"] = bytes([1]) + b"".join(
        call(P, "set", layer(n), s) for n, s in specs[:12])

    q = [call("MODULE_FN", "tucker_modes", layer("conv1.weight")),
         call("REGISTER_FN", None, 1, 1, field="bound", reg=0),
         call("REGISTER_FN", None, 2, 1, field="params", reg=0),
         call("REGISTER_FN", None, 2, 2, field="flops", reg=0),
         call("MODULE_FN", "tucker", layer("conv1.weight"), 2, 1, {"iterations": 5,
                                                                   "tol": 1e-6}),
         call("MODULE_FN", "tt", layer("fc.weight"), {"d": 2, "eps": 0.1}),
         call("MODULE_FN", "tt", layer("conv1.weight"), {"rows": [2, 2], "cols": [3, 6],
                                                         "ranks": [2]}),
         call("MODULE_FN", "cp", layer("head.weight"), 2, {"iterations": 20}),
         call("MODULE_FN", "cp", layer("conv1.weight"), 3),
         call("MODULE_FN", "grouped", layer("fc.weight"), 2),
         call("MODULE_FN", "grouped", layer("conv1.weight"), 3, {"fold": 2}),
         call("MODULE_FN", "combine", layer("fc.weight"), {"rank": 1, "sparsity": 0.8}),
         call("MODULE_FN", "combine", layer("head.weight"),
              {"quantizer": "kmeans", "bits": 2, "sparsity": 0.9})]
    seeds["kernels"] = bytes([0]) + b"".join(q)

    # wrong types and values, and metatables on the tables
    q = [call("LAYER_FN", "sigma", None, fuzzed_self=True),
         call("LAYER_FN", "sigma", model(), 1, fuzzed_self=True),
         call("LAYER_FN", "sigma", float("nan"), self_layer="fc.weight"),
         call("LAYER_FN", "err_fro", 2 ** 63 - 1, self_layer="fc.weight"),
         call("LAYER_FN", "storage", -1, self_layer="fc.weight"),
         call("LAYER_FN", "quant_error", "kmeans", 99, self_layer="fc.weight"),
         call(P, "set", "nope", 1),
         call(P, "set", layer("fc.weight"), "2"),
         call(P, "set", layer("fc.weight"), with_metatable({}, 0)),
         call(P, "set", layer("fc.weight"), with_metatable({"rank": 1}, 3)),
         call(P, "set", layer("fc.weight"), with_metatable({"method": 12345}, 12)),
         call(P, "set", layer("fc.weight"), {"method": "grouped", "rank": 1,
                                             "groups": 1e300}),
         call(P, "set", layer("conv1.weight"), {"method": "tucker2",
                                                "ranks": with_metatable([2, 1], 6, True)}),
         call("MODULE_FN", "tt", layer("fc.weight"), with_metatable({"d": 2}, 1)),
         call("MODULE_FN", "cp", layer("fc.weight"), 2 ** 40),
         call("MODULE_FN", "combine", layer("fc.weight"), {"bits": float("inf")})]
    seeds["bad-arguments"] = bytes([1]) + b"".join(q)
    return seeds


def dict_entry(raw):
    return '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else
                         "\\x%02x" % b for b in raw) + '"'


def lua_dictionary():
    lines = ["# fuzz-lua-args.c's byte format: strings, numbers and callees as encoded",
             "# (written by make-seeds.py)"]
    for s in STRINGS:
        lines.append(dict_entry(string(s)))
    for v in (0, 1, 2, -1, 2 ** 31 - 1, 2 ** 31, 2 ** 53, 2 ** 63 - 1, -2 ** 63):
        lines.append(dict_entry(integer(v)))
    for v in (0.5, 1.0, 0.999, 1e300, -1e300, float("inf"), float("-inf"), float("nan"),
              2.0 ** 63, 2.0 ** 64, -0.0, 5e-324):
        lines.append(dict_entry(number(v)))
    for i, (kind, name) in enumerate(callee_table()):
        lines.append(dict_entry(bytes([i, 2])))
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    for sub, seeds in (("safetensors", safetensors_seeds()), ("lua-args", lua_seeds())):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(out, sub, "seed-" + name), "wb") as f:
                f.write(data)
    with open(os.path.join(HERE, "lua-args.dict"), "w") as f:
        f.write(lua_dictionary())


if __name__ == "__main__":
    main()
