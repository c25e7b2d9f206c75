#!/usr/bin/python3
"""imatrixcheck.py — llama.cpp importance matrices as calibration files:
fixtures in both of llama-imatrix's formats, and the independent check of
the figures rankscope computes from them (cli-imatrix.sh).

    imatrixcheck.py write LIB DIR
        DIR/model.safetensors   the network (checklib.py's writer)
        DIR/imatrix.gguf        the GGUF imatrix, written by ggml's own
                                gguf_* functions (LIB, through ctypes)
        DIR/imatrix.dat         the legacy binary imatrix (written here,
                                from the format's definition below)
    imatrixcheck.py check KIND LIB DIR INFO.json SPECTRA.json
        KIND gguf or dat: reads DIR/imatrix.KIND back (the GGUF through
        ggml's reader, the .dat with the reader below), and compares
        rankscope's `info` and `spectra --format json -C` with numpy
    imatrixcheck.py hostile LIB DIR
        broken files, one per rule (cli-imatrix.sh says what each must
        draw), and DIR/trunc/N.dat: a small valid .dat cut after N bytes,
        with DIR/trunc/list ("N STATUS" a line: 0 where the cut falls
        exactly after the last entry, a file as the first writers left it)
    imatrixcheck.py seeds DIR   a few valid and broken .dat files for the
                                fuzz corpus (tests/fuzz/corpus/imatrix)

The formats, from llama.cpp's tools/imatrix/imatrix.cpp (llama-imatrix
sums s_j = sum of x_j^2 over the c input vectors each matrix, each expert
of a stack, multiplies):
  GGUF      tensors NAME.in_sum2 (F32, ne = [n, n_mat]: s per matrix) and
            NAME.counts (F32, ne = [1, n_mat]: c per matrix), optionally
            NAME.in_sum (sum of x_j); metadata general.type = "imatrix",
            imatrix.datasets (strings), imatrix.chunk_count and
            imatrix.chunk_size (u32).  NAME is the weight's whole name.
  legacy    little-endian: int32 n_entries; per entry int32 len, the name,
            int32 ncall, int32 nval, nval float32 (s_j / c * ncall, with
            ncall = ceil(max c / chunk_size); an expert with c = 0 as 1 *
            ncall); then int32 last chunk count, int32 len, the dataset's
            name.
The expected figures (rankscope(1), CALIBRATION): with D the diagonal the
file gives a layer (GGUF: the row of in_sum2; legacy: the row of values as
stored, the sums up to one factor ncall / c per matrix, which no ratio
sees), out_err[r] = sqrt(tr(E D E^T) / tr(W D W^T)), E = W - W_r the
rank-r SVD truncation, and whitened_out_err[r] is the tail of W D^(1/2)'s
singular values over tr(W D W^T) (D positive: no shift).  An expert view
NAME.e takes row e of its stack's statistics; a count of 0 (GGUF) means no
statistics.
"""
import ctypes
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checker, SafeTensors, write_safetensors  # noqa: E402

GGML_TYPE_F32 = 0
CHUNK = 8           # the chunk size the legacy values are scaled with
DATASET = "wiki.train.raw"

# the network: name -> shape (out, in); experts (E, out, in)
LINEAR = {
    "blk.0.attn_q.weight": (6, 4),
    "blk.0.ffn_up.weight": (24, 16),
    "blk.0.ffn_down.weight": (16, 24),
}
EXPERTS = ("blk.0.ffn_up_exps.weight", (3, 12, 16))
EXPERT_VECTORS = (25, 15, 0)      # the vectors routed to each expert
VECTORS = 40


def network():
    rng = np.random.default_rng(7)
    w = {"token_embd.weight": rng.standard_normal((10, 16)).astype("<f4")}
    for name, shape in LINEAR.items():
        w[name] = rng.standard_normal(shape).astype("<f4")
    w[EXPERTS[0]] = rng.standard_normal(EXPERTS[1]).astype("<f4")
    w["output_norm.weight"] = (1 + 0.1 * rng.standard_normal(16)).astype("<f4")
    return w


def activations():
    """NAME -> (s (n_mat, n) float64, c (n_mat,)): what llama-imatrix sums.
    Columns of very different scales, so D is far from a multiple of I."""
    rng = np.random.default_rng(11)
    stats = {}
    for name, (_, n) in LINEAR.items():
        x = rng.standard_normal((VECTORS, n)) * np.exp(rng.standard_normal(n))
        stats[name] = ((x * x).sum(axis=0)[None, :], np.array([VECTORS]))
    e, _, n = EXPERTS[1]
    s = np.zeros((e, n))
    for k, c in enumerate(EXPERT_VECTORS):
        x = rng.standard_normal((c, n)) * np.exp(rng.standard_normal(n))
        s[k] = (x * x).sum(axis=0)
    stats[EXPERTS[0]] = (s, np.array(EXPERT_VECTORS))
    return stats


# ---- ggml, through ctypes ----------------------------------------------------

class ggml_init_params(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p),
                ("no_alloc", ctypes.c_bool)]


class gguf_init_params(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


def ggml(lib):
    L = ctypes.CDLL(lib)
    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    L.ggml_init.restype = vp
    L.ggml_init.argtypes = [ggml_init_params]
    L.ggml_free.argtypes = [vp]
    L.ggml_new_tensor_2d.restype = vp
    L.ggml_new_tensor_2d.argtypes = [vp, ctypes.c_int, i64, i64]
    L.ggml_set_name.restype = vp
    L.ggml_set_name.argtypes = [vp, ctypes.c_char_p]
    L.ggml_get_data.restype = vp
    L.ggml_get_data.argtypes = [vp]
    L.ggml_nbytes.restype = ctypes.c_size_t
    L.ggml_nbytes.argtypes = [vp]
    L.gguf_init_empty.restype = vp
    L.gguf_free.argtypes = [vp]
    L.gguf_set_val_str.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
    L.gguf_set_val_u32.argtypes = [vp, ctypes.c_char_p, ctypes.c_uint32]
    L.gguf_set_arr_str.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
                                   ctypes.c_size_t]
    L.gguf_add_tensor.argtypes = [vp, vp]
    L.gguf_write_to_file.restype = ctypes.c_bool
    L.gguf_write_to_file.argtypes = [vp, ctypes.c_char_p, ctypes.c_bool]
    L.gguf_init_from_file.restype = vp
    L.gguf_init_from_file.argtypes = [ctypes.c_char_p, gguf_init_params]
    L.gguf_get_n_tensors.restype = i64
    L.gguf_get_n_tensors.argtypes = [vp]
    L.gguf_get_tensor_name.restype = ctypes.c_char_p
    L.gguf_get_tensor_name.argtypes = [vp, i64]
    L.gguf_get_tensor_type.restype = ctypes.c_int
    L.gguf_get_tensor_type.argtypes = [vp, i64]
    L.gguf_get_tensor_offset.restype = ctypes.c_size_t
    L.gguf_get_tensor_offset.argtypes = [vp, i64]
    L.gguf_get_tensor_size.restype = ctypes.c_size_t
    L.gguf_get_tensor_size.argtypes = [vp, i64]
    L.gguf_get_data_offset.restype = ctypes.c_size_t
    L.gguf_get_data_offset.argtypes = [vp]
    L.gguf_find_key.restype = i64
    L.gguf_find_key.argtypes = [vp, ctypes.c_char_p]
    L.gguf_get_val_str.restype = ctypes.c_char_p
    L.gguf_get_val_str.argtypes = [vp, i64]
    return L


def write_gguf(L, path, stats, extra=(), sums=()):
    """What llama-imatrix's save_imatrix writes: per NAME (sorted) in_sum2
    (n, n_mat) and counts (1, n_mat), F32; `sums` names also get in_sum.
    `extra` adds (name, ne0, ne1, float32 values) tensors as they are."""
    tensors = []
    for name in sorted(stats):
        s, c = stats[name]
        tensors.append((name + ".in_sum2", s.shape[1], s.shape[0], s))
        tensors.append((name + ".counts", 1, len(c), np.asarray(c, dtype=np.float64)))
        if name in sums:
            tensors.append((name + ".in_sum", s.shape[1], s.shape[0], np.sqrt(s)))
    tensors += list(extra)
    size = sum(4 * ne0 * ne1 + 1024 for _, ne0, ne1, _ in tensors) + 4096
    ctx = L.ggml_init(ggml_init_params(size, None, False))
    g = L.gguf_init_empty()
    L.gguf_set_val_str(g, b"general.type", b"imatrix")
    arr = (ctypes.c_char_p * 1)(DATASET.encode())
    L.gguf_set_arr_str(g, b"imatrix.datasets", arr, 1)
    L.gguf_set_val_u32(g, b"imatrix.chunk_count", 5)
    L.gguf_set_val_u32(g, b"imatrix.chunk_size", CHUNK)
    for name, ne0, ne1, values in tensors:
        t = L.ggml_new_tensor_2d(ctx, GGML_TYPE_F32, ne0, ne1)
        L.ggml_set_name(t, name.encode())
        raw = np.ascontiguousarray(values, dtype="<f4").tobytes()
        assert L.ggml_nbytes(t) == len(raw), name
        ctypes.memmove(L.ggml_get_data(t), raw, len(raw))
        L.gguf_add_tensor(g, t)
    ok = L.gguf_write_to_file(g, path.encode(), False)
    L.gguf_free(g)
    L.ggml_free(ctx)
    assert ok, path


def read_gguf(L, path):
    """NAME -> float32 values of every tensor, through ggml's reader, and
    general.type."""
    g = L.gguf_init_from_file(path.encode(), gguf_init_params(True, None))
    assert g, path
    with open(path, "rb") as f:
        blob = f.read()
    base = L.gguf_get_data_offset(g)
    out = {}
    for i in range(L.gguf_get_n_tensors(g)):
        assert L.gguf_get_tensor_type(g, i) == GGML_TYPE_F32
        at = base + L.gguf_get_tensor_offset(g, i)
        n = L.gguf_get_tensor_size(g, i)
        out[L.gguf_get_tensor_name(g, i).decode()] = np.frombuffer(blob[at:at + n], "<f4")
    kind = L.gguf_get_val_str(g, L.gguf_find_key(g, b"general.type")).decode()
    L.gguf_free(g)
    return out, kind


# ---- the legacy format -------------------------------------------------------

def legacy_values(s, c):
    """llama-imatrix's stored values for sums s (n_mat, n), counts c."""
    ncall = int((max(c) + CHUNK - 1) // CHUNK)
    out = np.empty_like(s, dtype=np.float32)
    for k in range(len(c)):
        if c[k] == 0:
            out[k] = np.float32(1.0) * np.float32(ncall)
        else:
            out[k] = (s[k].astype(np.float32) / np.float32(c[k])) * np.float32(ncall)
    return ncall, out.reshape(-1)


def dat_entry(name, ncall, values):
    nb = name.encode() if isinstance(name, str) else name
    v = np.asarray(values, dtype="<f4")
    return struct.pack("<i", len(nb)) + nb + struct.pack("<ii", ncall, len(v)) + v.tobytes()


def dat_trailer(last=5, dataset=DATASET):
    d = dataset.encode()
    return struct.pack("<ii", last, len(d)) + d


def dat_file(entries, trailer=None):
    """entries: [(name, ncall, values)]."""
    body = struct.pack("<i", len(entries)) + b"".join(dat_entry(*e) for e in entries)
    return body + (dat_trailer() if trailer is None else trailer)


def write_dat(path, stats):
    entries = []
    for name in sorted(stats):
        ncall, v = legacy_values(*stats[name])
        entries.append((name, ncall, v))
    with open(path, "wb") as f:
        f.write(dat_file(entries))


def read_dat(path):
    """NAME -> (ncall, float32 values), the trailer: the format, strictly."""
    with open(path, "rb") as f:
        b = f.read()
    (n,), at = struct.unpack_from("<i", b, 0), 4
    out = {}
    for _ in range(n):
        (ln,) = struct.unpack_from("<i", b, at)
        name = b[at + 4:at + 4 + ln].decode()
        at += 4 + ln
        ncall, nval = struct.unpack_from("<ii", b, at)
        at += 8
        out[name] = (ncall, np.frombuffer(b, "<f4", nval, at))
        at += 4 * nval
    last, ln = struct.unpack_from("<ii", b, at)
    dataset = b[at + 8:at + 8 + ln].decode()
    assert at + 8 + ln == len(b), "nothing after the dataset name"
    return out, (last, dataset)


# ---- write -------------------------------------------------------------------

def write_all(lib, d):
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"), network())
    stats = activations()
    write_gguf(ggml(lib), os.path.join(d, "imatrix.gguf"), stats,
               sums=("blk.0.ffn_up.weight",))
    write_dat(os.path.join(d, "imatrix.dat"), stats)


# ---- check -------------------------------------------------------------------

def file_stats(kind, lib, d, c):
    """NAME -> (rows (n_mat, n) as float64, counts or None) from the file."""
    if kind == "gguf":
        tensors, gtype = read_gguf(ggml(lib), os.path.join(d, "imatrix.gguf"))
        c.check(gtype == "imatrix", "general.type is imatrix")
        out = {}
        for name, v in tensors.items():
            if name.endswith(".in_sum2"):
                base = name[:-len(".in_sum2")]
                counts = tensors[base + ".counts"].astype(np.float64)
                out[base] = (v.astype(np.float64).reshape(len(counts), -1), counts)
        return out
    entries, (last, dataset) = read_dat(os.path.join(d, "imatrix.dat"))
    c.check(dataset == DATASET and last == 5, "the .dat trailer")
    return {name: (v.astype(np.float64), None) for name, (_, v) in entries.items()}


def diag_for(layer, cols, stats):
    """The layer's D (None: no statistics), by rankscope(1)'s rules."""
    if layer in stats:
        rows, counts = stats[layer]
        return rows.reshape(-1)
    base, _, e = layer.rpartition(".")
    if base in stats and e.isdigit() and ("exps" in base or "expert" in base):
        rows, counts = stats[base]
        rows = rows.reshape(-1, cols)
        if counts is not None and counts[int(e)] == 0:
            return None
        return rows[int(e)]
    return None


def check(kind, lib, d, info_path, spectra_path):
    c = Checker(f"imatrixcheck-{kind}")
    st = SafeTensors(os.path.join(d, "model.safetensors"))
    stats = file_stats(kind, lib, d, c)
    info = {l["name"]: l for l in json.load(open(info_path))["layers"]}
    spectra = {l["name"]: l for l in json.load(open(spectra_path))["layers"]}
    weights = {}
    for name in st.order:
        a = st.array(name)
        if name == EXPERTS[0]:
            for e in range(a.shape[0]):
                weights[f"{name}.{e}"] = a[e]
        elif a.ndim == 2:
            weights[name] = a
    c.check(sorted(weights) == sorted(spectra), f"layers: {sorted(spectra)}")
    with_stats = 0
    for name, w in weights.items():
        if name not in spectra or name not in info:
            c.check(False, f"{name}: in rankscope's output")
            continue
        dg = None if name.startswith("token_embd") else diag_for(name, w.shape[1], stats)
        cal, ical = spectra[name].get("calibration"), info[name].get("calibration")
        if dg is None:
            c.check(cal is None and ical is None, f"{name}: no statistics, none used")
            continue
        with_stats += 1
        if not c.check(cal is not None and ical is not None, f"{name}: calibrated"):
            continue
        c.check(ical["statistics"] == "diag" and cal["statistics"] == "diag",
                f"{name}: diagonal statistics")
        c.check(cal["shift"] == 0, f"{name}: no shift for a positive D")
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        total = float(((w * w) @ dg).sum())
        ws = np.linalg.svd(w * np.sqrt(dg), compute_uv=False)
        k = len(s)
        c.check(len(cal["out_err"]) == k + 1, f"{name}: k + 1 values of out_err")
        for r in sorted({0, 1, 2, k // 2, k - 1, k}):
            e = w - (u[:, :r] * s[:r]) @ vt[:r]
            want = np.sqrt(((e * e) @ dg).sum() / total)
            c.close(cal["out_err"][r], want, 1e-9, f"{name}: out_err[{r}]")
            c.close(cal["whitened_out_err"][r], np.sqrt((ws[r:] ** 2).sum() / total), 1e-9,
                    f"{name}: whitened_out_err[{r}]")
    c.check(with_stats == 6 if kind == "dat" else with_stats == 5,
            f"{kind}: {with_stats} layers with statistics")
    return c.done()


# ---- hostile files -----------------------------------------------------------

Q = "blk.0.attn_q.weight"
UP_EXPS = EXPERTS[0]


def hostile(lib, d):
    os.makedirs(os.path.join(d, "trunc"), exist_ok=True)
    good = [(Q, 2, [1.0, 2.0, 3.0, 4.0])]
    files = {
        "huge-entries": struct.pack("<i", 0x7fffffff) + dat_file(good)[4:],
        "lying-name": struct.pack("<ii", 1, 4000) + Q.encode() + dat_file(good)[8 + len(Q):],
        "lying-nval": dat_file([(Q, 2, [1.0] * 4)])[:-len(dat_trailer()) - 16 - 4]
                      + struct.pack("<i", 1000) + np.ones(4, "<f4").tobytes() + dat_trailer(),
        "huge-nval": dat_file([(Q, 2, [1.0] * 4)])[:-len(dat_trailer()) - 16 - 4]
                     + struct.pack("<i", 0x7fffffff) + np.ones(4, "<f4").tobytes() + dat_trailer(),
        "negative-nval": dat_file([(Q, 2, [1.0] * 4)])[:-len(dat_trailer()) - 16 - 4]
                         + struct.pack("<i", -5) + np.ones(4, "<f4").tobytes() + dat_trailer(),
        "zero-ncall": dat_file([(Q, 0, [1.0] * 4)]),
        "negative-value": dat_file([(Q, 2, [1.0, 2.0, -1.0, 4.0])]),
        "nan-value": dat_file([(Q, 2, [1.0, float("nan"), 3.0, 4.0])]),
        "inf-value": dat_file([(Q, 2, [float("inf"), 1.0, 3.0, 4.0])]),
        "nul-in-name": dat_file([(b"blk\0.0", 2, [1.0] * 4)]),
        "duplicate": dat_file([(Q, 2, [1.0] * 4), (Q, 3, [2.0] * 4)]),
        "trailing-bytes": dat_file(good, trailer=b"\1\2\3"),
        "after-dataset": dat_file(good) + b"xyz",
        "lying-dataset": dat_file(good, trailer=struct.pack("<ii", 5, 99) + b"abc"),
        "wrong-nval": dat_file([(Q, 2, [1.0] * 5)]),
        "no-match": dat_file([("blk.9.nothing.weight", 2, [1.0] * 4)]),
        "extra": dat_file(good + [("blk.9.extra.weight", 2, [1.0] * 4)]),
        "two-experts": dat_file([(UP_EXPS, 2, [1.0] * 32)]),
        "ragged-experts": dat_file([(UP_EXPS, 2, [1.0] * 40)]),
        "escape-name": dat_file(good + [("blk.9.\x1b[31mred", 2, [1.0] * 4)]),
    }
    for name, b in files.items():
        with open(os.path.join(d, name + ".dat"), "wb") as f:
            f.write(b)
    # GGUF imatrix files through ggml: a wrong width, counts that do not
    # fit the stack, a negative count, NaN and negative sums
    L = ggml(lib)
    q = {Q: (np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([40]))}
    bad = {
        "gguf-wrong-width": ({Q: (np.ones((1, 5)), np.array([40]))}, ()),
        "gguf-counts": ({UP_EXPS: (np.ones((3, 16)), np.array([1, 2]))}, ()),
        "gguf-negative-count": ({Q: (np.ones((1, 4)), np.array([-1]))}, ()),
        "gguf-nan": ({Q: (np.array([[np.nan, 1, 1, 1]]), np.array([40]))}, ()),
        "gguf-negative": ({Q: (np.array([[1, 1, -2, 1]]), np.array([40]))}, ()),
        "gguf-extra": (q, (("blk.7.stray.weight.in_sum2", 4, 1, np.ones(4)),)),
    }
    for name, (stats, extra) in bad.items():
        write_gguf(L, os.path.join(d, name + ".gguf"), stats, extra=extra)
    # a small valid file, cut after every byte
    whole = dat_file(good)
    ends = len(whole) - len(dat_trailer())
    with open(os.path.join(d, "trunc", "list"), "w") as lst:
        for n in range(len(whole)):
            with open(os.path.join(d, "trunc", f"{n}.dat"), "wb") as f:
                f.write(whole[:n])
            lst.write(f"{n} {0 if n == ends else 1}\n")
    return 0


def seeds(d):
    os.makedirs(d, exist_ok=True)
    good = [(Q, 2, [1.0, 2.0, 3.0, 4.0])]
    stats = activations()
    full = []
    for name in sorted(stats):
        ncall, v = legacy_values(*stats[name])
        full.append((name, ncall, v))
    out = {
        "seed-one-entry": dat_file(good),
        "seed-no-trailer": dat_file(good, trailer=b""),
        "seed-network": dat_file(full),
        "seed-experts-short": dat_file([(UP_EXPS, 2, [1.0] * 32)]),
        "seed-nan": dat_file([(Q, 2, [1.0, float("nan"), 3.0, 4.0])]),
        "seed-truncated": dat_file(good)[:21],
        "seed-duplicate": dat_file([(Q, 2, [1.0] * 4), (Q, 3, [2.0] * 4)]),
        "seed-lying-nval": dat_file([(Q, 2, [1.0] * 4)])[:-len(dat_trailer()) - 20]
                           + struct.pack("<i", 1000) + np.ones(4, "<f4").tobytes(),
    }
    for name, b in out.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(b)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "write":
        write_all(argv[2], argv[3])
        return 0
    if len(argv) == 7 and argv[1] == "check" and argv[2] in ("gguf", "dat"):
        return check(*argv[2:])
    if len(argv) == 4 and argv[1] == "hostile":
        return hostile(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "seeds":
        return seeds(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
