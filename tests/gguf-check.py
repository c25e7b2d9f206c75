#!/usr/bin/python3
"""gguf-check.py — GGUF fixtures written by llama.cpp's own ggml library,
and the independent check of what rankscope reads from them.

    gguf-check.py write LIB DIR     writes the fixtures into DIR
    gguf-check.py compare LIB DIR   compares DIR/dump-* (tests/test-gguf
                                    --dump) and DIR/*.spectra.json
                                    (rankscope spectra) with ggml's values
    gguf-check.py seeds LIB DIR     small files of every type for the fuzz
                                    corpus (tests/fuzz/corpus/gguf)
    gguf-check.py write-f16 OUT SAFETENSORS
                                    OUT: every tensor of SAFETENSORS as F16,
                                    in its order (bench/open-models.py);
                                    LIB is $GGML_BASE_LIB

LIB is libggml-base.so (the prebuilt ggml of the npm package
@node-llama-cpp/linux-x64), used through ctypes: ggml_quantize_chunk
quantises, the gguf_* writer writes the files, and each type's
ggml_type_traits.to_float dequantises for the reference values.  Nothing
here comes from rankscope's code: the reference is ggml itself.

Fixtures, in DIR:
  TYPE.gguf         for every type written: three 2-D weights of TYPE
                    (ne[0] a multiple of 256, so every block fits) and an F32
                    1-D norm, with metadata (strings, numbers, arrays)
  ref/TYPE/NAME.npy the tensor as ggml's to_float dequantises it (float32,
                    C-order shape, i.e. ne reversed)
  raw-TYPE.gguf     one tensor of random bytes in TYPE (NaN and infinite
                    scales included), its reference in ref/raw-TYPE/
  F32-twin.safetensors  the F32 network (checklib.py's writer, our own,
                    from the safetensors format)
  q8_1.gguf         a tensor of a type rankscope lists but does not decode
  align64.gguf      general.alignment = 64
  types.txt         the types written, one a line
The comparison: every value rankscope decodes equals ggml's, as float32
bit patterns (NaN with NaN); the layers rs_layer_load gives equal the
reference matrices; a quantised GGUF's spectra equal numpy's SVD of
ggml's dequantised matrices (1e-6 relative); the F32 GGUF's spectra equal
its safetensors twin's (compared by cli-gguf.sh).
"""
import ctypes
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checker, SafeTensors, write_safetensors  # noqa: E402

# ggml.h's enum ggml_type, for the types written here
GGML = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8,
    "Q8_1": 9, "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14,
    "IQ2_XXS": 16, "IQ2_XS": 17, "IQ3_XXS": 18, "IQ1_S": 19, "IQ4_NL": 20, "IQ3_S": 21,
    "IQ2_S": 22, "IQ4_XS": 23, "IQ1_M": 29, "BF16": 30, "TQ1_0": 34, "TQ2_0": 35,
    "MXFP4": 39, "NVFP4": 40, "Q1_0": 41, "Q2_0": 42,
}
# the types rankscope decodes (dtype.h) and therefore checks value by value
DECODED = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K",
           "Q3_K", "Q4_K", "Q5_K", "Q6_K", "TQ1_0", "TQ2_0",
           "MXFP4", "NVFP4", "Q1_0", "Q2_0"]
# the i-quants take an importance matrix (some require one): all ones here
WITH_IMATRIX = ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M")
BLOCK_TYPES = [t for t in DECODED if t not in ("F32", "F16", "BF16")]

# the network: name -> ne (ne[0] contiguous); shapes in C order are ne reversed
WEIGHTS = {
    "blk.0.attn_q.weight": (256, 64),
    "blk.0.ffn_up.weight": (256, 96),
    "blk.0.ffn_down.weight": (512, 48),
}
NORM = ("output_norm.weight", 256)

GGUF_TYPE_UINT32, GGUF_TYPE_FLOAT32 = 4, 6


class ggml_init_params(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p),
                ("no_alloc", ctypes.c_bool)]


class ggml_type_traits(ctypes.Structure):
    # ggml.h (this ggml): type_name, blck_size, blck_size_interleave,
    # type_size, is_quantized, to_float, from_float_ref
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


class Ggml:
    def __init__(self, path):
        L = self.L = ctypes.CDLL(path)
        vp, sz, i64 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64
        L.ggml_init.restype = vp
        L.ggml_init.argtypes = [ggml_init_params]
        L.ggml_free.argtypes = [vp]
        L.ggml_new_tensor.restype = vp
        L.ggml_new_tensor.argtypes = [vp, ctypes.c_int, ctypes.c_int, ctypes.POINTER(i64)]
        L.ggml_set_name.restype = vp
        L.ggml_set_name.argtypes = [vp, ctypes.c_char_p]
        L.ggml_get_data.restype = vp
        L.ggml_get_data.argtypes = [vp]
        L.ggml_nbytes.restype = sz
        L.ggml_nbytes.argtypes = [vp]
        L.ggml_row_size.restype = sz
        L.ggml_row_size.argtypes = [ctypes.c_int, i64]
        L.ggml_blck_size.restype = i64
        L.ggml_blck_size.argtypes = [ctypes.c_int]
        L.ggml_type_size.restype = sz
        L.ggml_type_size.argtypes = [ctypes.c_int]
        L.ggml_type_name.restype = ctypes.c_char_p
        L.ggml_type_name.argtypes = [ctypes.c_int]
        L.ggml_quantize_chunk.restype = sz
        L.ggml_quantize_chunk.argtypes = [ctypes.c_int, vp, vp, i64, i64, i64, vp]
        L.ggml_get_type_traits.restype = ctypes.POINTER(ggml_type_traits)
        L.ggml_get_type_traits.argtypes = [ctypes.c_int]
        L.gguf_init_empty.restype = vp
        L.gguf_free.argtypes = [vp]
        L.gguf_set_val_str.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
        L.gguf_set_val_u32.argtypes = [vp, ctypes.c_char_p, ctypes.c_uint32]
        L.gguf_set_val_i32.argtypes = [vp, ctypes.c_char_p, ctypes.c_int32]
        L.gguf_set_val_f32.argtypes = [vp, ctypes.c_char_p, ctypes.c_float]
        L.gguf_set_val_bool.argtypes = [vp, ctypes.c_char_p, ctypes.c_bool]
        L.gguf_set_val_u64.argtypes = [vp, ctypes.c_char_p, ctypes.c_uint64]
        L.gguf_set_arr_str.argtypes = [vp, ctypes.c_char_p,
                                       ctypes.POINTER(ctypes.c_char_p), sz]
        L.gguf_set_arr_data.argtypes = [vp, ctypes.c_char_p, ctypes.c_int, vp, sz]
        L.gguf_add_tensor.argtypes = [vp, vp]
        L.gguf_write_to_file.restype = ctypes.c_bool
        L.gguf_write_to_file.argtypes = [vp, ctypes.c_char_p, ctypes.c_bool]
        self.check_traits()

    def check_traits(self):
        """The traits struct layout above must be this library's: its
        fields agree with the separate accessors for every type."""
        for name, t in GGML.items():
            tr = self.L.ggml_get_type_traits(t).contents
            assert tr.type_name.decode().upper() == name, (name, tr.type_name)
            assert tr.blck_size == self.L.ggml_blck_size(t), name
            assert tr.type_size == self.L.ggml_type_size(t), name

    def quantize(self, t, x):
        """x (float32, rows x n_per_row) quantised to type t: the bytes."""
        x = np.ascontiguousarray(x, dtype="<f4")
        rows, n = x.shape
        out = ctypes.create_string_buffer(rows * self.L.ggml_row_size(t, n))
        imatrix = np.ones(n, dtype="<f4")
        iq = t in [GGML[k] for k in WITH_IMATRIX]
        got = self.L.ggml_quantize_chunk(t, x.ctypes.data, out, 0, rows, n,
                                         imatrix.ctypes.data if iq else None)
        assert got == len(out.raw), (t, got, len(out.raw))
        return out.raw

    def to_float(self, t, raw, count):
        """ggml's dequantisation of `count` elements of type t."""
        if t == GGML["F32"]:
            return np.frombuffer(raw, dtype="<f4", count=count).copy()
        fn = self.L.ggml_get_type_traits(t).contents.to_float
        assert fn, t
        src = ctypes.create_string_buffer(bytes(raw), len(raw))
        y = np.zeros(count, dtype=np.float32)
        TO_FLOAT(fn)(ctypes.cast(src, ctypes.c_void_p), y.ctypes.data, count)
        return y

    def write(self, path, tensors, meta, alignment=None):
        """A GGUF of tensors [(name, type, ne, raw bytes)] and metadata."""
        L = self.L
        size = sum(len(r) for _, _, _, r in tensors) + 1024 * (len(tensors) + 4)
        ctx = L.ggml_init(ggml_init_params(size, None, False))
        g = L.gguf_init_empty()
        if alignment is not None:
            L.gguf_set_val_u32(g, b"general.alignment", alignment)
        for key, kind, value in meta:
            k = key.encode()
            if kind == "str":
                L.gguf_set_val_str(g, k, value.encode())
            elif kind == "u32":
                L.gguf_set_val_u32(g, k, value)
            elif kind == "i32":
                L.gguf_set_val_i32(g, k, value)
            elif kind == "u64":
                L.gguf_set_val_u64(g, k, value)
            elif kind == "f32":
                L.gguf_set_val_f32(g, k, value)
            elif kind == "bool":
                L.gguf_set_val_bool(g, k, value)
            elif kind == "strs":
                arr = (ctypes.c_char_p * len(value))(*[v.encode() for v in value])
                L.gguf_set_arr_str(g, k, arr, len(value))
            elif kind == "f32s":
                a = np.asarray(value, dtype="<f4")
                L.gguf_set_arr_data(g, k, GGUF_TYPE_FLOAT32, a.ctypes.data, len(a))
        for name, t, ne, raw in tensors:
            tp = L.ggml_new_tensor(ctx, t, len(ne), (ctypes.c_int64 * len(ne))(*ne))
            L.ggml_set_name(tp, name.encode())
            assert L.ggml_nbytes(tp) == len(raw), (name, L.ggml_nbytes(tp), len(raw))
            ctypes.memmove(L.ggml_get_data(tp), raw, len(raw))
            L.gguf_add_tensor(g, tp)
        ok = L.gguf_write_to_file(g, path.encode(), False)
        L.gguf_free(g)
        L.ggml_free(ctx)
        assert ok, path


def network():
    """The F32 weights (C order: ne reversed), deterministic, with a gently
    decaying spectrum: well separated singular values, none so small that
    float32 rounding of the weights decides it."""
    rng = np.random.default_rng(2024)
    w = {}
    for name, (n_in, n_out) in WEIGHTS.items():
        a = rng.standard_normal((n_out, n_in))
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        s = 0.96 ** np.arange(len(s))
        w[name] = ((u * s) @ vt * 4.0).astype("<f4")
    w[NORM[0]] = (1.0 + 0.1 * rng.standard_normal(NORM[1])).astype("<f4")
    return w


META = [
    ("general.architecture", "str", "llama"),
    ("general.name", "str", "rankscope test network"),
    ("general.file_type", "u32", 1),
    ("llama.block_count", "u32", 1),
    ("llama.rope.freq_base", "f32", 10000.0),
    ("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5),
    ("tokenizer.ggml.model", "str", "gpt2"),
    ("tokenizer.ggml.tokens", "strs", ["<s>", "</s>", "a", "b", "\u00e9t\u00e9"]),
    ("tokenizer.ggml.scores", "f32s", [0.0, -1.0, -2.5, -3.0, -4.0]),
    ("tokenizer.ggml.add_bos_token", "bool", True),
    ("general.size_label", "u64", 123456789012),
]


def save_ref(d, sub, name, values, shape):
    os.makedirs(os.path.join(d, "ref", sub), exist_ok=True)
    np.save(os.path.join(d, "ref", sub, name + ".npy"),
            np.asarray(values, dtype="<f4").reshape(shape))


def write_all(lib, d):
    g = Ggml(lib)
    os.makedirs(d, exist_ok=True)
    w = network()
    norm = w[NORM[0]]
    rng = np.random.default_rng(99)
    written = []
    for tn in DECODED:
        t = GGML[tn]
        tensors = []
        for name, ne in WEIGHTS.items():
            raw = g.quantize(t, w[name])
            tensors.append((name, t, ne, raw))
            save_ref(d, tn, name, g.to_float(t, raw, w[name].size), w[name].shape)
        tensors.append((NORM[0], GGML["F32"], (NORM[1],), norm.tobytes()))
        save_ref(d, tn, NORM[0], norm, norm.shape)
        meta = [m if m[0] != "general.file_type" else (m[0], "u32", t) for m in META]
        g.write(os.path.join(d, tn + ".gguf"), tensors, meta)
        written.append(tn)
        if tn in BLOCK_TYPES:
            # random bytes: every bit pattern of scales and quants, NaN included
            ne = (512, 3)
            nbytes = 3 * g.L.ggml_row_size(t, 512)
            raw = rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes()
            g.write(os.path.join(d, "raw-" + tn + ".gguf"),
                    [("random.weight", t, ne, raw)], [("general.architecture", "str", "x")])
            save_ref(d, "raw-" + tn, "random.weight", g.to_float(t, raw, 3 * 512), (3, 512))
    write_safetensors(os.path.join(d, "F32-twin.safetensors"), w)   # all float32
    # a type listed but not decoded (Q8_1, ggml's dot-product intermediate,
    # which ggml itself cannot dequantise), beside a decoded one
    ne = WEIGHTS["blk.0.attn_q.weight"]
    raw = rng.integers(0, 256, ne[1] * g.L.ggml_row_size(GGML["Q8_1"], ne[0]),
                       dtype=np.uint8).tobytes()
    g.write(os.path.join(d, "q8_1.gguf"),
            [("blk.0.attn_q.weight", GGML["Q8_1"], ne, raw),
             ("blk.0.ffn_up.weight", GGML["Q8_0"], WEIGHTS["blk.0.ffn_up.weight"],
              g.quantize(GGML["Q8_0"], w["blk.0.ffn_up.weight"]))],
            [("general.architecture", "str", "llama")])
    # a non-default alignment
    g.write(os.path.join(d, "align64.gguf"),
            [(NORM[0], GGML["F32"], (NORM[1],), norm.tobytes()),
             ("blk.0.attn_q.weight", GGML["Q4_K"], WEIGHTS["blk.0.attn_q.weight"],
              g.quantize(GGML["Q4_K"], w["blk.0.attn_q.weight"]))],
            [("general.architecture", "str", "llama")], alignment=64)
    with open(os.path.join(d, "types.txt"), "w") as f:
        f.write("\n".join(written) + "\n")


def same_bits(c, got, ref, what):
    """got (float64, rankscope) equals ref (float32, ggml) exactly: got is
    a float32 widened, with ref's bit pattern (any NaN matches a NaN)."""
    got = np.asarray(got, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float32).ravel()
    if not c.check(got.shape == ref.shape, f"{what}: {got.shape} values, ggml {ref.shape}"):
        return
    g32 = got.astype(np.float32)
    nan = np.isnan(ref)
    widened = np.array_equal(g32.astype(np.float64)[~np.isnan(got)], got[~np.isnan(got)])
    c.check(widened, f"{what}: values are not float32 widened")
    diff = np.flatnonzero((g32.view(np.uint32) != ref.view(np.uint32)) & ~nan |
                          (nan != np.isnan(got)))
    c.check(diff.size == 0, f"{what}: {diff.size} of {ref.size} values differ from "
            f"ggml's, first at {diff[:1].tolist()}: "
            f"{g32[diff[:1]].tolist()} vs {ref[diff[:1]].tolist()}")


def sigma_close(c, got, want, what):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if not c.check(got.shape == want.shape, f"{what}: {got.size} singular values, "
                   f"numpy {want.size}"):
        return
    tol = 1e-6 * np.maximum(np.abs(want), 1e-300) + 1e-12 * want[0]
    bad = np.flatnonzero(np.abs(got - want) > tol)
    c.check(bad.size == 0, f"{what}: sigma[{bad[:1].tolist()}] {got[bad[:1]].tolist()} "
            f"vs numpy {want[bad[:1]].tolist()}")


def compare_dump(c, d, sub):
    """DIR/dump-SUB (test-gguf --dump) against DIR/ref/SUB."""
    refdir, dumpdir = os.path.join(d, "ref", sub), os.path.join(d, "dump-" + sub)
    names = sorted(n[:-4] for n in os.listdir(refdir))
    for name in names:
        ref = np.load(os.path.join(refdir, name + ".npy"))
        raw = os.path.join(dumpdir, name + ".values")
        if not c.check(os.path.exists(raw), f"{sub}/{name}: no values dumped"):
            continue
        same_bits(c, np.fromfile(raw, dtype="<f8"), ref, f"{sub}/{name} (values)")
        layer = os.path.join(dumpdir, name + ".layer")
        if ref.ndim == 2 and np.all(np.isfinite(ref)):
            if c.check(os.path.exists(layer), f"{sub}/{name}: not loaded as a layer"):
                got = np.fromfile(layer, dtype="<f8")
                same_bits(c, got, ref, f"{sub}/{name} (rs_layer_load)")


def compare_all(lib, d):
    c = Checker("gguf-check")
    Ggml(lib)   # the traits layout still holds
    types = open(os.path.join(d, "types.txt")).read().split()
    c.check(sorted(types) == sorted(DECODED), f"types written: {types}")
    for tn in types:
        compare_dump(c, d, tn)
        if tn in BLOCK_TYPES:
            compare_dump(c, d, "raw-" + tn)
        # spectra: rankscope's against numpy's SVD of ggml's dequantised matrices
        spec = os.path.join(d, tn + ".spectra.json")
        if not c.check(os.path.exists(spec), f"{tn}: no spectra"):
            continue
        layers = json.load(open(spec))["layers"]
        c.check([l["name"] for l in layers] == list(WEIGHTS),
                f"{tn}: layers {[l['name'] for l in layers]}")
        for l in layers:
            if l["name"] not in WEIGHTS:
                continue
            ref = np.load(os.path.join(d, "ref", tn, l["name"] + ".npy")).astype(np.float64)
            c.check(l["shape"] == list(ref.shape) and l["rows"] == ref.shape[0] and
                    l["cols"] == ref.shape[1], f"{tn}/{l['name']}: shape {l['shape']}")
            sigma_close(c, l["sigma"], np.linalg.svd(ref, compute_uv=False),
                        f"{tn}/{l['name']}")
    return c.done()


def write_seeds(lib, d):
    """One small file per type: a 2 x 256 weight, a norm, a little metadata."""
    g = Ggml(lib)
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 256)).astype("<f4")
    norm = np.ones(32, dtype="<f4")
    for tn in DECODED:
        t = GGML[tn]
        g.write(os.path.join(d, "ggml-" + tn.lower()),
                [("blk.0.w.weight", t, (256, 2), g.quantize(t, x)),
                 ("norm.weight", GGML["F32"], (32,), norm.tobytes())],
                [("general.architecture", "str", "llama"), ("general.file_type", "u32", t),
                 ("tokenizer.ggml.tokens", "strs", ["a", "b"]),
                 ("tokenizer.ggml.scores", "f32s", [0.0, -1.0])])


def write_f16(lib, out, src):
    """Every tensor of the safetensors file src, converted to F16, into the
    GGUF out: ne is the shape reversed (a 0-d tensor is one element)."""
    g = Ggml(lib)
    st = SafeTensors(src)
    tensors = []
    for name in st.entries:        # the file's order
        a = np.ascontiguousarray(st.values(name), dtype="<f2")
        tensors.append((name, GGML["F16"], tuple(reversed(a.shape)) or (1,), a.tobytes()))
    del st
    g.write(out, tensors, [("general.architecture", "str", "bench"),
                           ("general.file_type", "u32", 1)])   # 1: mostly F16


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "write-f16":
        lib = os.environ.get("GGML_BASE_LIB", "")
        if not lib:
            sys.exit("gguf-check.py write-f16: GGML_BASE_LIB is not set")
        write_f16(lib, sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) != 4 or sys.argv[1] not in ("write", "compare", "seeds"):
        sys.exit("usage: gguf-check.py write|compare|seeds LIBGGML_BASE DIR\n"
                 "       gguf-check.py write-f16 OUT SAFETENSORS  (LIB: $GGML_BASE_LIB)")
    if sys.argv[1] == "write":
        write_all(sys.argv[2], sys.argv[3])
        return 0
    if sys.argv[1] == "seeds":
        write_seeds(sys.argv[2], sys.argv[3])
        return 0
    return compare_all(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    sys.exit(main())
