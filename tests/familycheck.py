"""Independent checker for rankscope's pruning, quantisation and low rank +
sparse figures and for the models `rankscope apply` writes with them.

Written from the definitions in rankscope's headers (prune.h, quant.h,
combine.h, plan.h), rankscope-plan(5) (DECOMPOSITIONS) and the output
layout apply documents, not from its code: it reads and writes safetensors with its own code, folds
convolution kernels by the index formulas of the four fold schemes, and
recomputes every figure with numpy in float64.

usage:
  familycheck.py make-combo OUT
      writes a model whose float32 layers are exactly rank 4 plus 20 large
      spikes ("spiky"), 700 scattered nonzeros ("scatter") and exactly
      rank 6 ("rank6"), with a random float16 layer ("half") and a bias
  familycheck.py figures LOG MODEL
      LOG is the output of tests/lua/families/figures.lua on MODEL: every
      record it holds is recomputed from the raw weights
  familycheck.py apply PLAN MODEL OUT APPLY_LOG
      OUT was written by `rankscope apply PLAN MODEL -o OUT`, which printed
      APPLY_LOG: names, dtypes, shapes, copied bytes, metadata, and every
      layer rebuilt from its parts against the plan's predictions; for
      the decompositions (grouped, tucker2, cp, tt) also the exact figures
      recomputed (a grouped SVD's, the HOSVD and TT-SVD bounds), the
      documented params and flops, and the factors' orthogonality
  familycheck.py global-prune PLAN MODEL OUT SPARSITY
      OUT is the model a global-prune plan at SPARSITY wrote: one threshold
      across the layers, recomputed here from all the weights

Each subcommand prints "NAME: N checks, F failed" and exits 1 when F > 0
(2 on a usage error).
"""
import json
import math
import os
import sys

import numpy as np

sys.dont_write_bytecode = True   # leave no __pycache__ in tests/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import (DTYPES, Checker, SafeTensors,  # noqa: E402
                      write_safetensors)

TOL_FIG = 1e-9       # figures recomputed in float64 from the same weights
TOL_APPLY = 1e-5     # measured on float32 parts against float64 predictions

# A compressed layer's values (factors, kept weights, codebooks) are stored
# in its value dtype (rankscope-plan(5)): the model's F16 or BF16, else F32.
def value_dtype(dtype):
    return dtype if dtype in ("F16", "BF16") else "F32"


def value_bits(dtype):
    return 16 if dtype in ("F16", "BF16") else 32


def value_eps(vd):
    """The relative rounding of a value to vd (half a unit in the last place)."""
    return {"F32": 2.0 ** -24, "F16": 2.0 ** -11, "BF16": 2.0 ** -8}[vd]


# ---- folding ----------------------------------------------------------------

def fold_index(shape, scheme):
    """For each element of a tensor (row-major), its (row, col) in the layer
    matrix, and the matrix shape.  2-D: as it is.  Kernels (f, c, kh, kw):
    0: f x (c kh kw)  1: (f kh) x (c kw)  2: (f kw) x (c kh)  3: (f kh kw) x c
    with the first-named index varying slowest."""
    if len(shape) == 2:
        m, n = shape
        r, c = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
        return (m, n), r.ravel(), c.ravel()
    f, c, kh, kw = shape
    fi, ci, hi, wi = np.meshgrid(np.arange(f), np.arange(c), np.arange(kh),
                                 np.arange(kw), indexing="ij")
    if scheme == 0:
        out = (f, c * kh * kw), fi, (ci * kh + hi) * kw + wi
    elif scheme == 1:
        out = (f * kh, c * kw), fi * kh + hi, ci * kw + wi
    elif scheme == 2:
        out = (f * kw, c * kh), fi * kw + wi, ci * kh + hi
    elif scheme == 3:
        out = (f * kh * kw, c), (fi * kh + hi) * kw + wi, ci
    else:
        raise ValueError(f"fold scheme {scheme}")
    return out[0], out[1].ravel(), out[2].ravel()


def fold(t, scheme):
    """The layer matrix of tensor t."""
    (m, n), r, c = fold_index(t.shape, scheme)
    w = np.full((m, n), np.nan)
    w[r, c] = t.ravel()
    assert not np.isnan(w).any()
    return w


def unfold(w, shape, scheme):
    """The tensor (row-major flat) whose layer matrix is w."""
    _, r, c = fold_index(shape, scheme)
    return w[r, c]


# ---- the definitions ----------------------------------------------------------

def dropped(count, p):
    """Elements dropped at sparsity p: floor(p count)."""
    if not p > 0:
        return 0
    if p >= 1:
        return count
    return min(count, math.floor(p * count))


class Layer:
    """A layer matrix and what the figures of it need, computed once."""

    def __init__(self, w, dense_bits, vbits):
        self.w, self.dense, self.vbits = w, dense_bits, vbits
        self.m, self.n = w.shape
        self.fro, self.spec = np.linalg.norm(w), np.linalg.norm(w, 2)
        self.sv = np.linalg.svd(w, compute_uv=False)
        self.sq = np.sort((w * w).ravel())
        self.total = self.sq.sum()
        self.line_sq = {a: np.sort((w * w).sum(axis=a)) for a in (0, 1)}
        self.quant_errors = {}
        self.reported = {}

    def prune_error(self, p):
        d = dropped(self.sq.size, p)
        return math.sqrt(self.sq[:d].sum() / self.total) if self.total > 0 else 0.0

    def lines_error(self, p, axis):
        norms = self.line_sq[axis]
        d = math.floor(p * norms.size) if p > 0 else 0
        return math.sqrt(norms[:d].sum() / self.total) if self.total > 0 else 0.0

    def quant_error(self, q, b):
        """By definition; None for k-means.  Binary and ternary have one width."""
        key = (q, quant_width(q, b) if q in ("binary", "ternary") else b)
        if key not in self.quant_errors:
            qw = quantise(self.w, q, b)
            self.quant_errors[key] = None if qw is None else rel(self.w - qw, self.w)
        return self.quant_errors[key]


def sparse_bits(m, n, nnz, vbits):
    csr = 32 * (m + 1) + nnz * (16 if n <= 65536 else 32)
    return nnz * vbits + min(m * n, csr)


def quant_width(q, b):
    return {"binary": 1, "ternary": 2}.get(q, b)


def sparse_format(m, n, nnz):
    """The index a sparse part is stored with: the cheaper one, the bitmap
    on a tie (rankscope-plan(5), storage_bits)."""
    csr = 32 * (m + 1) + nnz * (16 if n <= 65536 else 32)
    return "bitmap" if m * n <= csr else "csr"


def quant_bits(q, b, m, n, vbits=32, full=False):
    """Codes, plus the levels spelt out (k-means, or a refined codebook) in
    the value dtype, or the rule's F32 numbers (grid, scale)."""
    width = quant_width(q, b)
    per = m if q == "uniform-channel" else 1
    if full or q == "kmeans":
        extra = per * 2 ** width * vbits
    else:
        extra = {"uniform-tensor": 64, "uniform-channel": 64 * m, "binary": 32, "ternary": 32}[q]
    return width * m * n + extra


def round_half_away(v):
    """C's round() for v >= 0 (numpy's rounds half to even)."""
    f = np.floor(v)
    return np.where(v - f >= 0.5, f + 1, f)


def uniform_levels(x, bits, axis=None):
    """(codes, lo, step) of x on 2^bits levels evenly over [min, max], of
    the whole array, or of each row (axis=1)."""
    levels = 2 ** bits
    lo = x.min(axis=axis, keepdims=axis is not None)
    hi = x.max(axis=axis, keepdims=axis is not None)
    step = (hi - lo) / (levels - 1)
    safe = np.where(step > 0, step, 1.0)
    codes = np.where(step > 0, np.clip(round_half_away((x - lo) / safe), 0, levels - 1), 0.0)
    return codes, lo, step


def quantise(w, q, b):
    """Q(W) by definition; None for k-means (checked on apply's codebook)."""
    if q in ("uniform-tensor", "uniform-channel"):
        codes, lo, step = uniform_levels(w, b, 1 if q == "uniform-channel" else None)
        return lo + codes * step
    if q == "binary":
        alpha = np.abs(w).mean()
        return np.where(w < 0, -alpha, alpha)
    if q == "ternary":
        t, alpha = ternary_optimum(w)
        return np.where(np.abs(w) < t, 0.0, np.where(w < 0, -alpha, alpha))
    return None


def ternary_optimum(w):
    """(threshold, alpha) minimising ||W - alpha T||_F over every threshold:
    keeping the j largest magnitudes at alpha = their mean leaves
    ||W||^2 - S_j^2 / j; only whole runs of equal magnitudes can be kept."""
    a = np.sort(np.abs(w).ravel())[::-1]
    s = np.cumsum(a)
    j = np.arange(1, a.size + 1)
    ends = np.append(a[1:] != a[:-1], True)
    gain = np.where(ends, s * s / j, -1.0)
    best = int(np.argmax(gain))
    if gain[best] <= 0:
        return math.inf, 0.0
    return a[best], s[best] / (best + 1)


def rel(d, w):
    nw = np.linalg.norm(w)
    return float(np.linalg.norm(d) / nw) if nw > 0 else 0.0


def rel_spec(d, w):
    s = np.linalg.norm(w, 2)
    return float(np.linalg.norm(d, 2) / s) if s > 0 else 0.0


# ---- make-combo -----------------------------------------------------------------

def cmd_make_combo(out):
    rng = np.random.default_rng(20240601)
    m, n = 60, 50

    def with_spectrum(s):
        u, _ = np.linalg.qr(rng.standard_normal((m, m)))
        v, _ = np.linalg.qr(rng.standard_normal((n, n)))
        return (u[:, :len(s)] * s) @ v[:, :len(s)].T

    def spikes(count, lo, hi):
        x = np.zeros(m * n)
        at = rng.choice(m * n, size=count, replace=False)
        x[at] = rng.choice([-1.0, 1.0], size=count) * rng.uniform(lo, hi, size=count)
        return x.reshape(m, n)

    # rank 4 plus 20 spikes, each larger than any low-rank entry but
    # smaller than sigma_4, so alternating projections can separate them
    spiky = with_spectrum([40.0, 30.0, 20.0, 15.0]) + spikes(20, 6.0, 9.0)
    half = rng.standard_normal((40, 30)) / math.sqrt(30)
    tensors = [
        ("spiky.weight", "F32", spiky.astype("<f4")),
        ("scatter.weight", "F32", spikes(700, 1.0, 2.0).astype("<f4")),
        ("rank6.weight", "F32", with_spectrum([1.0, 0.8, 0.6, 0.5, 0.4, 0.3]).astype("<f4")),
        ("half.weight", "F16", half.astype("<f2")),
        ("half.bias", "F32", rng.standard_normal(40).astype("<f4")),
    ]
    write_safetensors(out, tensors, {"made_by": "tests/familycheck.py make-combo"})
    print("make-combo: 0 checks, 0 failed")
    return 0


# ---- figures ----------------------------------------------------------------------

def parse_fig(tokens):
    out = {}
    for t in tokens:
        k, v = t.split("=", 1)
        out[k] = v
    return out


def cmd_figures(log_path, model_path):
    c = Checker("figures")
    st = SafeTensors(model_path)
    layers = {}
    counts = {"rec": 0, "fig": 0}
    with open(log_path) as f:
        lines = [l.split() for l in f if l.startswith(("figlayer ", "rec ", "fig "))]
    for t in lines:
        if t[0] == "figlayer":
            name, m, n, scheme, dbits = t[1], int(t[2]), int(t[3]), t[4], int(t[5])
            if not c.check(name in st.entries and st.is_layer(name), f"{name}: a layer"):
                continue
            info = st.entries[name]
            w = fold(st.values(name), None if scheme == "-" else int(scheme))
            c.check(w.shape == (m, n), f"{name}: matrix {m}x{n} vs {w.shape}")
            c.check(dbits == DTYPES[info["dtype"]][1], f"{name}: {dbits} bits a value")
            layers[name] = Layer(w, w.size * DTYPES[info["dtype"]][1],
                                 value_bits(info["dtype"]))
            continue
        name = t[1]
        if name not in layers:
            c.check(False, f"record of an unknown layer: {' '.join(t)}")
            continue
        L = layers[name]
        w, m, n = L.w, L.m, L.n
        if t[0] == "rec":
            counts["rec"] += 1
            kind, args, value = t[2], t[3:-1], t[-1]
            what = f"{name}: {kind}({', '.join(args)})"
            if kind == "prune_error":
                c.close(float(value), L.prune_error(float(args[0])), TOL_FIG, what)
            elif kind == "prune_rows_error":
                c.close(float(value), L.lines_error(float(args[0]), 1), TOL_FIG, what)
            elif kind == "prune_cols_error":
                c.close(float(value), L.lines_error(float(args[0]), 0), TOL_FIG, what)
            elif kind == "count_below":
                want = int(np.count_nonzero(np.abs(w) < float(args[0])))
                c.check(int(value) == want, f"{what}: got {value}, expected {want}")
            elif kind == "storage":
                want = L.dense if args[0] == "-" else sparse_bits(m, n, int(args[0]), L.vbits)
                c.check(int(value) == want, f"{what}: got {value}, expected {want}")
            elif kind == "quant_storage":
                want = quant_bits(args[0], int(args[1]), m, n, L.vbits)
                c.check(int(value) == want, f"{what}: got {value}, expected {want}")
            elif kind == "quant_error":
                q, b = args[0], int(args[1])
                L.reported[(q, b)] = float(value)
                err = L.quant_error(q, b)
                if err is not None:
                    c.close(float(value), err, TOL_FIG, what)
                else:
                    # k-means (its codebook is checked on what apply
                    # writes): no worse than the single level at the mean
                    c.check(0 <= float(value) <= rel(w - w.mean(), w) + TOL_FIG,
                            f"{what}: {value} within [0, error of the mean]")
            else:
                c.check(False, f"unknown record {' '.join(t)}")
            continue
        # fig NAME SPEC key=value...
        counts["fig"] += 1
        spec, got = t[2], parse_fig(t[3:])
        what = f"{name}: plan:set {spec}"
        parts = spec.split(":")
        method = parts[0]
        count, dense = m * n, L.dense
        want = {"method": "dense", "bits": dense, "nonzeros": count, "err_fro": 0.0,
                "err_spec": 0.0, "bound": "F", "params": count, "flops": 2 * count}
        choice = None
        if method in ("prune", "prune-rows", "prune-cols"):
            p = float(parts[1])
            if method == "prune":
                nnz = count - dropped(count, p)
                bits, err = sparse_bits(m, n, nnz, L.vbits), L.prune_error(p)
            else:
                side, other = (m, n) if method == "prune-rows" else (n, m)
                nnz = (side - (math.floor(p * side) if p > 0 else 0)) * other
                bits = nnz * L.vbits + side
                err = L.lines_error(p, 1 if method == "prune-rows" else 0)
            choice = {"bits": bits, "nonzeros": nnz, "err_fro": err,
                      "params": nnz, "flops": 2 * nnz}
        elif method == "quant":
            q, b = parts[1], int(parts[2])
            err = L.quant_error(q, b)
            if err is None:      # k-means: the layer query's, checked above
                err = L.reported.get((q, b), math.nan)
            choice = {"bits": quant_bits(q, b, m, n, L.vbits), "err_fro": err}
        elif method == "lowrank":
            r = int(parts[1])
            sv = L.sv
            if r * (m + n) < m * n:
                want.update({"method": "lowrank", "bits": r * (m + n) * L.vbits,
                             "err_fro": math.sqrt((sv[r:] ** 2).sum() / (sv ** 2).sum()),
                             "err_spec": sv[r] / sv[0] if r < sv.size else 0.0,
                             "params": r * (m + n), "flops": 2 * r * (m + n)})
        if choice is not None and choice["bits"] < dense:
            want.update(choice)
            want["method"] = method
            want["bound"] = "T"
            want["err_spec"] = choice["err_fro"] * L.fro / L.spec
        for key in ("method", "bits", "nonzeros", "bound", "params", "flops"):
            c.check(str(got.get(key)) == str(want[key]),
                    f"{what}: {key} {got.get(key)}, expected {want[key]}")
        for key in ("err_fro", "err_spec"):
            c.close(float(got.get(key, "nan")), want[key], TOL_FIG, f"{what}: {key}")
    c.check(len(layers) > 0 and counts["rec"] > 0 and counts["fig"] > 0,
            f"the log holds layers, records and figures ({len(layers)}, {counts})")
    return c.done()


# ---- apply --------------------------------------------------------------------------

def sparse_suffixes(l):
    m, n = l["matrix"]
    if sparse_format(m, n, l["predicted"]["nonzeros"]) == "bitmap":
        return ["sparse.values", "sparse.bitmap"]
    return ["sparse.values", "sparse.row_ptr", "sparse.col"]


def quant_suffixes(l):
    q = l["quantizer"]
    if l.get("refined") or q == "kmeans":
        return ["quant.codes", "quant.codebook"]
    return ["quant.codes", "quant.grid" if q.startswith("uniform") else "quant.scale"]


def part_names(l):
    """The tensors apply writes for plan entry l, in their order
    (rankscope-plan(5), COMPRESSED MODELS); the name itself when dense."""
    name, method = l["name"], l["method"]
    conv = len(l["shape"]) == 4
    if method == "tt":
        tt = l.get("tt") or {}
        return [f"{name}.tt.{k}" for k in range(len(tt.get("rows", [])))] or [name]
    if method == "dense":
        return [name]
    lowrank = ["lowrank.A", "lowrank.B"]
    sparse = sparse_suffixes(l) if "sparse" in method or method == "prune" else []
    quant = quant_suffixes(l) if "quant" in method else []
    return [name + "." + s for s in {
        "lowrank": lowrank,
        "prune": sparse,
        "prune-rows": ["channels.values", "channels.bitmap"],
        "prune-cols": ["channels.values", "channels.bitmap"],
        "quant": quant,
        "lowrank+sparse": lowrank + sparse,
        "quant+sparse": sparse + quant,
        "lowrank+sparse+quant": lowrank + sparse + quant,
        "grouped": ["grouped.A", "grouped.B"],
        "tucker2": ["tucker.first", "tucker.core", "tucker.last"],
        "cp": (["cp.first", "cp.vertical", "cp.horizontal", "cp.last"] if conv
               else ["cp.first", "cp.last"]),
    }.get(method, [])] or [name]


def parse_apply_log(path):
    """{layer: (method, pred_fro, meas_fro, bound, pred_spec, meas_spec)}, and
    the largest gap of the closing line."""
    rows, gap = {}, None
    with open(path) as f:
        for line in f:
            t = line.split()
            if not t or t[0] in ("layer", "bytes"):
                continue
            if t[0] == "wrote":
                gap = float(line.rsplit("predicted|", 1)[1].split()[0])
                continue
            bound = "<=" in t
            t = [x for x in t if x != "<="]
            try:
                rows[t[0]] = (t[1], float(t[2]), float(t[3]), bound, float(t[4]), float(t[5]))
            except (IndexError, ValueError):
                rows.setdefault("(unparsed lines)", []).append(line.rstrip())
    return rows, gap


def bits_of(packed, count):
    """The first count bits of a little-endian bit stream, as booleans."""
    return np.unpackbits(packed.astype(np.uint8), bitorder="little")[:count].astype(bool)


def check_sparse(c, name, out, l, shape, scheme, nnz, vd):
    """The sparse part, read from either index (rankscope-plan(5), Pruning):
    a bitmap of tensor positions with the values in ascending position, or
    CSR over the layer matrix with the values row by row.  Returns its
    dense scatter as the layer matrix, and the kept values and their flat
    tensor positions, ascending."""
    m, n = l["matrix"]
    count = m * n
    vi = out.entries[name + ".sparse.values"]
    c.check(vi["dtype"] == vd and vi["shape"] == [nnz],
            f"{name}.sparse.values: {vd} [{nnz}], got {vi['dtype']} {vi['shape']}")
    vals = out.values(name + ".sparse.values").ravel()
    fmt = sparse_format(m, n, nnz)
    flatpos = np.arange(count).reshape(shape)
    pos_of = fold(flatpos, scheme).astype(np.int64)     # matrix (i, j) -> tensor position
    if fmt == "bitmap":
        bi = out.entries[name + ".sparse.bitmap"]
        want = (count + 7) // 8
        ok = c.check(bi["dtype"] == "U8" and bi["shape"] == [want],
                     f"{name}.sparse.bitmap: U8 [{want}], got {bi['dtype']} {bi['shape']}")
        mask = bits_of(out.values(name + ".sparse.bitmap"), count) if ok else np.zeros(count, bool)
        c.check(not ok or int(mask.sum()) == nnz, f"{name}: the bitmap marks {nnz} positions")
        c.check(not ok or not np.any(np.unpackbits(out.values(name + ".sparse.bitmap")
                                                   .astype(np.uint8), bitorder="little")[count:]),
                f"{name}: the bitmap's unused bits are 0")
        idx = np.flatnonzero(mask)
    else:
        ri, ci = out.entries[name + ".sparse.row_ptr"], out.entries[name + ".sparse.col"]
        cdt = "U16" if n <= 65536 else "U32"
        c.check(ri["dtype"] == "U32" and ri["shape"] == [m + 1],
                f"{name}.sparse.row_ptr: U32 [{m + 1}], got {ri['dtype']} {ri['shape']}")
        c.check(ci["dtype"] == cdt and ci["shape"] == [nnz],
                f"{name}.sparse.col: {cdt} [{nnz}], got {ci['dtype']} {ci['shape']}")
        ptr = out.values(name + ".sparse.row_ptr").astype(np.int64)
        col = out.values(name + ".sparse.col").astype(np.int64)
        ok = c.check(ptr[0] == 0 and ptr[-1] == nnz and bool(np.all(np.diff(ptr) >= 0)),
                     f"{name}: CSR row pointers from 0 to {nnz}, non-decreasing")
        rows = np.repeat(np.arange(m), np.diff(ptr)) if ok else np.zeros(0, np.int64)
        ok = ok and c.check(col.size == 0 or (col.min() >= 0 and col.max() < n),
                            f"{name}: CSR columns within 0..{n - 1}")
        if ok:
            for i in range(m):
                seg = col[ptr[i]:ptr[i + 1]]
                ok &= bool(np.all(np.diff(seg) > 0))
            c.check(ok, f"{name}: CSR columns strictly ascending in each row")
        pos = pos_of[rows, col] if ok else np.zeros(0, np.int64)
        order = np.argsort(pos, kind="stable")
        idx, vals = pos[order], vals[order] if ok else vals
    ok = c.check(vals.size == idx.size == nnz, f"{name}: {nnz} sparse values and positions")
    flat = np.zeros(count)
    if ok:
        flat[idx] = vals
    return fold(flat.reshape(shape), scheme), vals, idx


def quant_levels(c, out, l, m, vd):
    """The levels of a quantised part (rankscope-plan(5), Quantisation):
    the codebook spelt out, or rebuilt in double precision from the F32
    grid (offset + k step) or scale (binary -a, a; ternary -a, 0, a)."""
    name, q, width = l["name"], l["quantizer"], quant_width(l["quantizer"], l["bits"])
    levels = 2 ** width
    per = m if q == "uniform-channel" else None
    if l.get("refined") or q == "kmeans":
        bshape = [m, levels] if per else [levels]
        book = value_part(c, out, vd, name + ".quant.codebook", bshape)
        return book
    if q.startswith("uniform"):
        gshape = [m, 2] if per else [2]
        grid = value_part(c, out, "F32", name + ".quant.grid", gshape)
        if grid is None:
            return None
        g = grid.reshape(-1, 2)
        book = g[:, :1] + np.arange(levels)[None, :] * g[:, 1:]
        return book if per else book[0]
    scale = value_part(c, out, "F32", name + ".quant.scale", [1])
    if scale is None:
        return None
    a = float(scale[0])
    return np.array([-a, a]) if q == "binary" else np.array([-a, 0.0, a, 0.0])


# ---- the decompositions (rankscope-plan(5), DECOMPOSITIONS and COMPRESSED
# MODELS > Decompositions): each layer rebuilt from its float32 parts, and
# the recorded figures recomputed with numpy where they are exact

DECOMPOSITIONS = ("grouped", "tucker2", "cp", "tt")
ORTHO_TOL = 1e-5     # orthonormality of float32 factors


def value_part(c, out, vd, pname, shape):
    """Part pname as float64 if it is of the value dtype vd and the given
    shape, else None."""
    info = out.entries[pname]
    ok = c.check(info["dtype"] == vd and info["shape"] == list(shape),
                 f"{pname}: {vd} {list(shape)}, got {info['dtype']} {info['shape']}")
    return out.values(pname) if ok else None


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def tails(sv, r):
    """Sum of the squares of the singular values past the r-th."""
    return float((sv[r:] ** 2).sum())


def tt_svd(w, rows, cols, ranks):
    """TT-SVD (Oseledets) of matrix w as a TT-matrix, keeping ranks[k + 1]
    singular values at step k: (cores, the squares dropped in all)."""
    d = len(rows)
    x = w.reshape(rows + cols)
    x = x.transpose([a for k in range(d) for a in (k, d + k)])
    cores, dropped_sq, r_prev = [], 0.0, 1
    rest = x.reshape(r_prev, -1)
    for k in range(d - 1):
        rest = rest.reshape(r_prev * rows[k] * cols[k], -1)
        u, sv, vt = np.linalg.svd(rest, full_matrices=False)
        r = ranks[k + 1]
        dropped_sq += tails(sv, r)
        cores.append(u[:, :r].reshape(r_prev, rows[k], cols[k], r))
        rest = sv[:r, None] * vt[:r]
        r_prev = r
    cores.append(rest.reshape(r_prev, rows[-1], cols[-1], 1))
    return cores, dropped_sq


def tt_matrix(cores):
    """W(i, j) = core_0[:, i_1, j_1, :] @ ... @ core_(d-1)[:, i_d, j_d, :], row
    and column indices mixed-radix with the first mode most significant."""
    x = cores[0][0]                         # (m_1, n_1, r_1)
    for core in cores[1:]:
        a, b, _ = x.shape
        _, mk, nk, s = core.shape
        x = np.einsum("abr,rijs->aibjs", x, core).reshape(a * mk, b * nk, s)
    return x[:, :, 0]


def check_decomposition(c, l, out, t, w, vd):
    """Layer l (grouped, tucker2, cp or tt) rebuilt from its parts in out
    exactly as rankscope-plan(5) lays them out, as the matrix of l's fold
    (w is the original's); the recorded figures that are exact, the
    documented params, flops, bounds and orthogonality checked on the way.
    None when the parts cannot be read."""
    name, method, p = l["name"], l["method"], l["predicted"]
    m, n = w.shape
    conv = t.ndim == 4
    f, ch, kh, kw = t.shape if conv else (m, n, 1, 1)
    fro, spec = np.linalg.norm(w), np.linalg.norm(w, 2)
    what = f"{name} ({method})"
    if method == "grouped":
        g, r = l["groups"], l["rank"]
        if not c.check(is_int(g) and is_int(r) and g >= 2 and n % g == 0 and
                       1 <= r <= min(m, n // g),
                       f"{what}: groups {g!r} >= 2 divide n = {n}, rank {r!r} in 1..min(m, n/g)"):
            return None
        nb = n // g
        a = value_part(c, out, vd, name + ".grouped.A", (g, r, nb))
        b = value_part(c, out, vd, name + ".grouped.B", (g, m, r))
        if a is None or b is None:
            return None
        approx = np.concatenate([b[i] @ a[i] for i in range(g)], axis=1)
        # the recorded figures are exact: recomputed from each block's SVD
        tail_sq, alds = 0.0, 0.0
        for i in range(g):
            sv = np.linalg.svd(w[:, i * nb:(i + 1) * nb], compute_uv=False)
            tail_sq += tails(sv, r)
            alds = max(alds, sv[r] if r < sv.size else 0.0)
        exact_fro, exact_alds = math.sqrt(tail_sq) / fro, alds / spec
        c.close(p["rel_fro"], exact_fro, TOL_FIG,
                f"{what}: predicted.rel_fro is sqrt(sum of the blocks' tails) / ||W||_F")
        c.close(p.get("rel_spec_alds"), exact_alds, TOL_FIG,
                f"{what}: predicted.rel_spec_alds is max_g sigma_(g,r+1) / ||W||_2")
        c.close(p["rel_spec"], min(math.sqrt(g) * exact_alds, exact_fro * fro / spec), TOL_FIG,
                f"{what}: predicted.rel_spec is min(sqrt(g) alds, rel_fro ||W||_F / ||W||_2)")
        params = r * (g * m + n)
        flops = 2 * params
    elif method == "tucker2":
        ranks = l.get("ranks")
        if not c.check(isinstance(ranks, list) and len(ranks) == 2 and all(map(is_int, ranks))
                       and 1 <= ranks[0] <= f and 1 <= ranks[1] <= ch,
                       f"{what}: ranks {ranks!r} in 1..{f} and 1..{ch}"):
            return None
        ro, ri = ranks
        if conv:
            first = value_part(c, out, vd, name + ".tucker.first", (ri, ch, 1, 1))
            core = value_part(c, out, vd, name + ".tucker.core", (ro, ri, kh, kw))
            last = value_part(c, out, vd, name + ".tucker.last", (f, ro, 1, 1))
        else:
            first = value_part(c, out, vd, name + ".tucker.first", (ri, n))
            core = value_part(c, out, vd, name + ".tucker.core", (ro, ri))
            last = value_part(c, out, vd, name + ".tucker.last", (m, ro))
        if first is None or core is None or last is None:
            return None
        first, last = first.reshape(ri, ch), last.reshape(f, ro)
        c.check(np.abs(first @ first.T - np.eye(ri)).max() <= ORTHO_TOL,
                f"{what}: tucker.first (U_in transposed) has orthonormal rows")
        c.check(np.abs(last.T @ last - np.eye(ro)).max() <= ORTHO_TOL,
                f"{what}: tucker.last (U_out) has orthonormal columns")
        if conv:
            approx = fold(np.einsum("oj,jlyx,li->oiyx", last, core, first), l["fold"])
        else:
            approx = last @ core @ first
        # the HOSVD bound from the two unfoldings' singular values
        sv_out = np.linalg.svd(t.reshape(f, -1), compute_uv=False)
        sv_in = np.linalg.svd((t.transpose(1, 0, 2, 3) if conv else t.T).reshape(ch, -1),
                              compute_uv=False)
        bound = math.sqrt(tails(sv_out, ro) + tails(sv_in, ri)) / fro
        c.close(p.get("rel_fro_bound"), bound, TOL_FIG,
                f"{what}: predicted.rel_fro_bound is sqrt(tail_out + tail_in) / ||W||_F")
        if not conv:
            # no Tucker-2 of a matrix beats its truncated SVD, and HOOI
            # from the HOSVD reaches it
            c.check(abs(p["rel_fro"] - math.sqrt(tails(sv_out, min(ro, ri))) / fro) <= TOL_APPLY,
                    f"{what}: a matrix's Tucker-2 is its truncated SVD at min(r_out, r_in)")
        params = ch * ri + ri * ro * kh * kw + ro * f
        flops = 2 * params
    elif method == "cp":
        R = l["rank"]
        if not c.check(is_int(R) and R >= 1, f"{what}: rank {R!r} >= 1"):
            return None
        if conv:
            first = value_part(c, out, vd, name + ".cp.first", (R, ch, 1, 1))
            vert = value_part(c, out, vd, name + ".cp.vertical", (R, 1, kh, 1))
            horiz = value_part(c, out, vd, name + ".cp.horizontal", (R, 1, 1, kw))
            last = value_part(c, out, vd, name + ".cp.last", (f, R, 1, 1))
            if first is None or vert is None or horiz is None or last is None:
                return None
            approx = fold(np.einsum("or,ri,ry,rx->oiyx", last[:, :, 0, 0], first[:, :, 0, 0],
                                    vert[:, 0, :, 0], horiz[:, 0, 0, :]), l["fold"])
            params = R * (f + ch + kh + kw)
        else:
            first = value_part(c, out, vd, name + ".cp.first", (R, n))
            last = value_part(c, out, vd, name + ".cp.last", (m, R))
            if first is None or last is None:
                return None
            approx = last @ first
            params = R * (m + n)
        flops = 2 * params
    else:
        tt = l.get("tt")
        ok = c.check(isinstance(tt, dict) and all(isinstance(tt.get(k), list) and
                                                  all(map(is_int, tt[k]))
                                                  for k in ("rows", "cols", "ranks")),
                     f"{what}: tt has integer lists rows, cols and ranks: {tt!r}")
        if not ok:
            return None
        rows, cols, ranks = tt["rows"], tt["cols"], tt["ranks"]
        d = len(rows)
        ok = c.check(2 <= d <= 8 and len(cols) == d and len(ranks) == d + 1,
                     f"{what}: d = {d} in 2..8 row modes, as many column modes, d + 1 ranks")
        ok = c.check(ok and math.prod(rows) == m and math.prod(cols) == n,
                     f"{what}: modes {rows} x {cols} multiply to {m} x {n}") and ok
        ok = c.check(ok and ranks[0] == 1 and ranks[-1] == 1 and min(ranks) >= 1,
                     f"{what}: ranks {ranks} >= 1, the first and last 1") and ok
        if not ok:
            return None
        sizes = [rows[k] * cols[k] for k in range(d)]
        c.check(all(ranks[k] <= min(math.prod(sizes[:k]), math.prod(sizes[k:]))
                    for k in range(1, d)),
                f"{what}: ranks {ranks} within the unfoldings' sizes")
        cores = []
        for k in range(d):
            core = value_part(c, out, vd, f"{name}.tt.{k}", (ranks[k], rows[k], cols[k], ranks[k + 1]))
            if core is None:
                return None
            cores.append(core)
        for k in range(d - 1):
            q = cores[k].reshape(-1, ranks[k + 1])
            c.check(np.abs(q.T @ q - np.eye(ranks[k + 1])).max() <= ORTHO_TOL,
                    f"{what}: core {k} is left-orthogonal")
        approx = tt_matrix(cores)
        # TT-SVD again, here, at the ranks reached: its error and
        # Oseledets' bound, which for TT-SVD agree
        mine, dropped_sq = tt_svd(w, rows, cols, ranks)
        c.close(p.get("rel_fro_bound"), math.sqrt(dropped_sq) / fro, TOL_APPLY,
                f"{what}: predicted.rel_fro_bound is sqrt(sum of the steps' tails) / ||W||_F")
        c.close(p["rel_fro"], rel(w - tt_matrix(mine), w), TOL_APPLY,
                f"{what}: predicted.rel_fro is the TT-SVD's error at these ranks")
        params = sum(ranks[k] * rows[k] * cols[k] * ranks[k + 1] for k in range(d))
        flops = 2 * sum(math.prod(cols[:k]) * ranks[k] * cols[k] * rows[k] * ranks[k + 1] *
                        math.prod(rows[k + 1:]) for k in range(d))
    c.check(p["params"] == params, f"{what}: predicted.params {p['params']}, expected {params}")
    c.check(p["flops"] == flops, f"{what}: predicted.flops {p['flops']}, expected {flops}")
    # float32 parts; the nonzeros of a factorisation are the dense layer's
    vbits = value_bits(vd)
    c.check(p["storage_bits"] == vbits * params,
            f"{what}: predicted.storage_bits {p['storage_bits']}, expected {vbits * params}")
    c.check(p["nonzeros"] == m * n, f"{what}: predicted.nonzeros {p['nonzeros']}, expected {m * n}")
    c.close(p["energy"], 1 - p["rel_fro"] ** 2, TOL_FIG, f"{what}: energy is 1 - rel_fro^2")
    c.check(p["rel_spec_is_bound"] is True, f"{what}: rel_spec is a bound")
    return approx


def cmd_apply(plan_path, model_path, out_path, log_path):
    c = Checker("apply")
    with open(plan_path, "rb") as f:
        plan = json.loads(f.read().decode("utf-8"))
    src, out = SafeTensors(model_path), SafeTensors(out_path)
    printed, gap = parse_apply_log(log_path)

    # layout: data 8-byte aligned, tensors contiguous in header order
    c.check((8 + out.header_len) % 8 == 0, "data starts at a multiple of 8")
    end = 0
    for name, info in out.entries.items():
        b, e = info["data_offsets"]
        c.check(b == end and e >= b, f"{name}: offsets {b}..{e} follow on")
        n_el = int(np.prod(info["shape"])) if info["shape"] else 1
        c.check(e - b == n_el * DTYPES[info["dtype"]][1] // 8,
                f"{name}: {e - b} bytes for {info['dtype']} {info['shape']}")
        end = e
    c.check(len(out.data) == end, f"data is {len(out.data)} bytes, tensors {end}")

    entries = {l["name"]: l for l in plan["layers"]}
    # a composed layer (rankscope-plan(5) "factors"): its factors are
    # copied when it stays dense, else its parts stand where the first
    # of them stood in the file, and W is their product F_{N-1} ... F_0
    factor_of = {f: l for l in plan["layers"] for f in l.get("factors", [])}
    first_factor = {}
    for name in src.order:
        if name in factor_of:
            first_factor.setdefault(factor_of[name]["name"], name)
    products = {}
    for l in plan["layers"]:
        if "factors" in l:
            w = src.values(l["factors"][0])
            for f in l["factors"][1:]:
                w = src.values(f) @ w
            products[l["name"]] = w
    expected = []
    for name in src.order:
        if name in factor_of:
            l = factor_of[name]
            if l["method"] == "dense":
                expected.append(name)
            elif first_factor[l["name"]] == name:
                expected += part_names(l)
            continue
        expected += part_names(entries[name]) if name in entries else [name]
    c.check(list(out.entries) == expected,
            f"tensors in order {expected}, got {list(out.entries)}")

    # copied through byte for byte
    for name, info in src.entries.items():
        layer = entries.get(name, factor_of.get(name))
        if layer is not None and layer["method"] != "dense":
            c.check(name not in out.entries, f"{name}: the compressed weight is gone")
            continue
        o = out.entries.get(name)
        if c.check(o is not None, f"{name}: copied"):
            c.check(o["dtype"] == info["dtype"] and o["shape"] == info["shape"],
                    f"{name}: same dtype and shape")
            c.check(out.raw(name) == src.raw(name), f"{name}: same bytes")

    compressed = [l for l in plan["layers"] if l["method"] != "dense"]
    c.check(sorted(printed) == sorted(l["name"] for l in compressed),
            f"apply printed a line for each compressed layer: {sorted(printed)}")
    worst_gap = 0.0
    for l in compressed:
        name, method, scheme = l["name"], l["method"], l["fold"]
        if name in products:
            t = products[name]
            shape = list(t.shape)
        else:
            shape = src.entries[name]["shape"]
            t = src.values(name)
        w = fold(t, scheme)
        m, n = w.shape
        count = m * n
        p = l["predicted"]
        vd = value_dtype(src.entries[l["factors"][0] if "factors" in l else name]["dtype"])
        c.check(l["matrix"] == [m, n], f"{name}: matrix {l['matrix']} is the fold's {[m, n]}")
        if not all(x in out.entries for x in part_names(l)):
            c.check(False, f"{name}: parts {part_names(l)} missing")
            continue
        approx = None
        if method in ("lowrank", "lowrank+sparse", "lowrank+sparse+quant"):
            r = l["rank"]
            ai, bi = out.entries[name + ".lowrank.A"], out.entries[name + ".lowrank.B"]
            c.check(ai["dtype"] == vd and ai["shape"] == [r, n],
                    f"{name}.lowrank.A: {vd} [{r}, {n}], got {ai['dtype']} {ai['shape']}")
            c.check(bi["dtype"] == vd and bi["shape"] == [m, r],
                    f"{name}.lowrank.B: {vd} [{m}, {r}], got {bi['dtype']} {bi['shape']}")
            approx = out.values(name + ".lowrank.B") @ out.values(name + ".lowrank.A")
        if method in ("prune", "lowrank+sparse", "quant+sparse", "lowrank+sparse+quant"):
            nnz = count - dropped(count, l["sparsity"])
            c.check(p["nonzeros"] == nnz, f"{name}: predicted.nonzeros {p['nonzeros']} vs {nnz}")
            s, vals, idx = check_sparse(c, name, out, l, shape, scheme, nnz, vd)
            if method == "prune":
                approx = s
                flat = t.ravel()
                kept = np.zeros(flat.size, dtype=bool)
                kept[idx] = True
                c.check(np.array_equal(vals, flat[idx].astype(np.float32)),
                        f"{name}: sparse values are the weights at their indices")
                if 0 < nnz < flat.size:
                    c.check(np.abs(flat[kept]).min() >= np.abs(flat[~kept]).max(),
                            f"{name}: the kept weights are the largest in magnitude")
            else:
                approx = s if approx is None else approx + s
        if method in ("prune-rows", "prune-cols"):
            rows = method == "prune-rows"
            side, other = (m, n) if rows else (n, m)
            kept = side - (math.floor(l["sparsity"] * side) if l["sparsity"] > 0 else 0)
            c.check(p["nonzeros"] == kept * other,
                    f"{name}: predicted.nonzeros {p['nonzeros']} vs {kept * other}")
            vi = out.entries[name + ".channels.values"]
            ii = out.entries[name + ".channels.bitmap"]
            vshape = [kept, n] if rows else [m, kept]
            nb = (side + 7) // 8
            c.check(vi["dtype"] == vd and vi["shape"] == vshape,
                    f"{name}.channels.values: {vd} {vshape}, got {vi['dtype']} {vi['shape']}")
            c.check(ii["dtype"] == "U8" and ii["shape"] == [nb],
                    f"{name}.channels.bitmap: U8 [{nb}], got {ii['dtype']} {ii['shape']}")
            if vi["shape"] != vshape or ii["shape"] != [nb]:
                continue
            vals = out.values(name + ".channels.values")
            idx = np.flatnonzero(bits_of(out.values(name + ".channels.bitmap"), side))
            if not c.check(idx.size == kept, f"{name}: the bitmap marks {kept} channels"):
                continue
            approx = np.zeros_like(w)
            norms = (w * w).sum(axis=1 if rows else 0)
            keep = np.zeros(side, dtype=bool)
            keep[idx] = True
            if rows:
                approx[idx, :] = vals
                c.check(np.array_equal(vals, w[idx, :].astype(np.float32)),
                        f"{name}: kept rows are the weights' rows")
            else:
                approx[:, idx] = vals
                c.check(np.array_equal(vals, w[:, idx].astype(np.float32)),
                        f"{name}: kept columns are the weights' columns")
            if 0 < kept < side:
                c.check(norms[keep].min() >= norms[~keep].max(),
                        f"{name}: the kept channels have the largest norms")
        if method in ("quant", "quant+sparse", "lowrank+sparse+quant"):
            q, b = l["quantizer"], l["bits"]
            width = quant_width(q, b)
            levels = 2 ** width
            ci = out.entries[name + ".quant.codes"]
            nbytes = (count * width + 7) // 8
            c.check(ci["dtype"] == "U8" and ci["shape"] == [nbytes],
                    f"{name}.quant.codes: U8 [{nbytes}] ({count} codes of {width} bits), "
                    f"got {ci['dtype']} {ci['shape']}")
            book = quant_levels(c, out, l, m, vd)
            if ci["shape"] != [nbytes] or book is None:
                continue
            codes = fold(unpack_codes(out.values(name + ".quant.codes"), count, width)
                         .reshape(shape), scheme).astype(np.int64)
            if not c.check(codes.min() >= 0 and codes.max() < levels,
                           f"{name}: codes within 0..{levels - 1}"):
                continue
            looked_up = (np.take_along_axis(book, codes, axis=1) if q == "uniform-channel"
                         else book[codes])
            if method == "quant":
                check_codebook(c, name, q, width, w, codes, book, vd if q == "kmeans" else "F32")
                approx = looked_up
            else:
                # the quantised part codes what the other parts leave
                approx = looked_up if approx is None else approx + looked_up
        if method in DECOMPOSITIONS:
            approx = check_decomposition(c, l, out, t, w, vd)
            if approx is None:
                continue
        if approx is None:
            c.check(False, f"{name}: method {method} not rebuilt")
            continue
        d = w - approx
        fro, spec = rel(d, w), rel_spec(d, w)
        c.check(abs(fro - p["rel_fro"]) <= TOL_APPLY,
                f"{name} ({method}): measured rel_fro {fro:.9g} vs predicted {p['rel_fro']:.9g}")
        if p["rel_spec_is_bound"]:
            c.check(method != "lowrank", f"{name}: a low-rank spectral error is exact")
            c.check(spec <= p["rel_spec"] + TOL_APPLY,
                    f"{name} ({method}): measured rel_spec {spec:.9g} exceeds the bound "
                    f"{p['rel_spec']:.9g}")
            if method == "grouped":
                # checked against the blocks above; ALDS's measure is below
                c.check(spec >= p["rel_spec_alds"] - TOL_APPLY,
                        f"{name} ({method}): measured rel_spec {spec:.9g} below ALDS's "
                        f"measure {p['rel_spec_alds']:.9g}")
            else:
                c.close(p["rel_spec"], p["rel_fro"] * np.linalg.norm(w) / np.linalg.norm(w, 2),
                        1e-9, f"{name}: the bound is rel_fro ||W||_F / ||W||_2")
            if method in ("tucker2", "tt"):
                c.check(fro <= p["rel_fro_bound"] + TOL_APPLY,
                        f"{name} ({method}): measured rel_fro {fro:.9g} exceeds the bound "
                        f"{p['rel_fro_bound']:.9g}")
        else:
            c.check(method == "lowrank", f"{name} ({method}): its spectral error is a bound")
            c.check(abs(spec - p["rel_spec"]) <= TOL_APPLY,
                    f"{name} ({method}): measured rel_spec {spec:.9g} vs predicted "
                    f"{p['rel_spec']:.9g}")
        row = printed.get(name)
        if c.check(row is not None, f"{name}: apply printed it"):
            pm, pf, mf, pb, ps, ms = row
            c.check(pm == method, f"{name}: printed method {pm}")
            c.check(abs(pf - p["rel_fro"]) <= 6e-7, f"{name}: printed predicted err_F {pf}")
            c.check(abs(ps - p["rel_spec"]) <= 6e-7, f"{name}: printed predicted err_2 {ps}")
            c.check(abs(mf - fro) <= 2e-6, f"{name}: printed measured err_F {mf} vs {fro:.7f}")
            c.check(abs(ms - spec) <= 2e-6, f"{name}: printed measured err_2 {ms} vs {spec:.7f}")
            c.check(pb == p["rel_spec_is_bound"], f"{name}: '<=' printed iff a bound")
        worst_gap = max(worst_gap, abs(fro - p["rel_fro"]),
                        0.0 if p["rel_spec_is_bound"] else abs(spec - p["rel_spec"]))
    c.check(gap is not None and gap <= TOL_APPLY and abs(gap - worst_gap) <= 1e-6,
            f"the closing line's largest gap {gap} (measured here {worst_gap:.3g})")

    # metadata: the model's kept, the plan and the version added
    meta = out.metadata
    for key, value in src.metadata.items():
        c.check(meta.get(key) == value, f"metadata {key} kept")
    c.check(set(meta) == set(src.metadata) | {"rankscope_plan", "rankscope_version"},
            f"metadata keys {sorted(meta)}")
    stored = json.loads(meta.get("rankscope_plan", "{}"))
    c.check(stored == plan, "rankscope_plan is the plan, as parsed JSON")
    return c.done()


def unpack_codes(packed, count, width):
    """Codes packed at `width` bits (rankscope-plan(5)): code k is bits
    k*width .. k*width + width - 1 of the little-endian bit stream."""
    bits = np.unpackbits(packed.astype(np.uint8), bitorder="little")[: count * width]
    return (bits.reshape(count, width).astype(np.int64) << np.arange(width)).sum(axis=1)


def check_codebook(c, name, q, width, w, codes, book, vd):
    """The codebook is the quantiser's (its levels rounded to the value
    dtype vd), and every weight took its level."""
    f32 = lambda x: float(np.float32(x))
    eps = value_eps(vd)
    if q in ("uniform-tensor", "uniform-channel"):
        rows = [(w, book)] if q == "uniform-tensor" else list(zip(w, book))
        ok = True
        for x, bk in rows:
            lo, hi = x.min(), x.max()
            step = (hi - lo) / (bk.size - 1)
            big = max(abs(hi), abs(lo), 1e-30)
            if vd == "F32":
                ok &= bk[0] == f32(lo) and abs(bk[-1] - hi) <= 1e-6 * big
                ok &= bool(np.allclose(np.diff(bk), step, rtol=1e-5,
                                       atol=1e-7 * abs(step) + 1e-30))
            else:
                # each level is the exact one rounded: within eps of its size
                want = lo + step * np.arange(bk.size)
                ok &= bool(np.all(np.abs(bk - want) <= eps * np.maximum(np.abs(want), 1e-30)
                                  + 1e-12 * big))
        c.check(ok, f"{name}: {q} levels evenly spaced from min to max")
        codes_want = uniform_levels(w, width, 1 if q == "uniform-channel" else None)[0]
        c.check(np.array_equal(codes, codes_want.astype(np.int64)),
                f"{name}: {q} codes are the nearest levels "
                f"({int(np.count_nonzero(codes != codes_want))} differ)")
    elif q == "binary":
        alpha = np.abs(w).mean()
        c.check(abs(book[0] + alpha) <= 1e-6 * alpha and abs(book[1] - alpha) <= 1e-6 * alpha,
                f"{name}: binary codebook [-mean|w|, mean|w|] = {book.tolist()}")
        c.check(np.array_equal(codes, np.where(w < 0, 0, 1)), f"{name}: binary codes are signs")
    elif q == "ternary":
        t, alpha = ternary_optimum(w)
        c.check(abs(book[0] + alpha) <= 1e-6 * alpha and book[1] == 0 and
                abs(book[2] - alpha) <= 1e-6 * alpha and book.size == 4,
                f"{name}: ternary codebook [-alpha, 0, alpha, pad], alpha {alpha}: {book.tolist()}")
        want = np.where(np.abs(w) < t, 1, np.where(w < 0, 0, 2))
        c.check(np.array_equal(codes, want),
                f"{name}: ternary codes by the optimal threshold {t}")
    elif q == "kmeans":
        used = np.unique(book)
        c.check(np.all(np.diff(book) >= 0), f"{name}: k-means codebook ascending")
        c.check(used.size <= 2 ** width, f"{name}: at most 2^{width} centres")
        # every weight maps to its nearest centre (up to the float32
        # rounding of the centres)
        dist = np.abs(w[..., None] - book.reshape((1,) * w.ndim + (-1,)))
        mine = np.take_along_axis(dist, codes[..., None], axis=-1)[..., 0]
        spread = w.max() - w.min()
        bad = int(np.count_nonzero(mine > dist.min(axis=-1) + 1e-6 * spread))
        c.check(bad == 0, f"{name}: k-means: {bad} weights not at their nearest centre")
        # a Lloyd fixed point: each used centre is the mean of its weights
        worst = 0.0
        for k in np.unique(codes):
            worst = max(worst, abs(w[codes == k].mean() - book[k]))
        c.check(worst <= 1e-5 * spread, f"{name}: k-means centres are their clusters' means "
                f"(worst gap {worst:.3g}, range {spread:.3g})")


# ---- global-prune ---------------------------------------------------------------------

def cmd_global_prune(plan_path, model_path, out_path, sparsity):
    c = Checker("global-prune")
    with open(plan_path, "rb") as f:
        plan = json.loads(f.read().decode("utf-8"))
    src, out = SafeTensors(model_path), SafeTensors(out_path)
    sparsity = float(sparsity)
    mats = {l["name"]: fold(src.values(l["name"]), l["fold"]) for l in plan["layers"]}
    total = sum(w.size for w in mats.values())
    # the threshold, independently: the floor(s N)-th smallest magnitude of
    # all the layers' weights; everything at or below it goes
    allmag = np.sort(np.concatenate([np.abs(w).ravel() for w in mats.values()]))
    target = math.floor(sparsity * total)
    thr = allmag[target - 1] if target > 0 else -1.0
    kept_min, dropped_max, removed, all_pay = math.inf, -math.inf, 0, True
    for l in plan["layers"]:
        name = l["name"]
        w = mats[name]
        m, n = w.shape
        below = int(np.count_nonzero(np.abs(w) <= thr))
        nnz = w.size - below
        dbits = w.size * DTYPES[src.entries[name]["dtype"]][1]
        if not c.check(nnz > 0, f"{name}: all {w.size} weights are at or below the "
                       f"threshold {thr:.6g}, which no plan can drop (sparsity < 1)"):
            continue
        vbits = value_bits(src.entries[name]["dtype"])
        pays = below > 0 and sparse_bits(m, n, nnz, vbits) < dbits
        all_pay &= pays
        c.check(l["method"] == ("prune" if pays else "dense"),
                f"{name}: {below} of {w.size} at or below the threshold {thr:.6g}: "
                f"{'prune' if pays else 'dense'} expected, the plan has {l['method']}")
        if l["method"] != "prune":
            c.check(name in out.entries, f"{name}: kept dense")
            continue
        c.check(l["predicted"]["nonzeros"] == nnz,
                f"{name}: {l['predicted']['nonzeros']} nonzeros, expected {nnz}")
        flat = src.values(name).ravel()
        _, _, idx = check_sparse(c, name, out, l, src.entries[name]["shape"], l["fold"],
                                 nnz, value_dtype(src.entries[name]["dtype"]))
        keep = np.zeros(flat.size, dtype=bool)
        keep[idx] = True
        if keep.any():
            kept_min = min(kept_min, np.abs(flat[keep]).min())
        if (~keep).any():
            dropped_max = max(dropped_max, np.abs(flat[~keep]).max())
        removed += int(np.count_nonzero(~keep))
    c.check(dropped_max <= kept_min,
            f"one threshold: every dropped |w| ({dropped_max:.9g} at most) <= every kept |w| "
            f"({kept_min:.9g} at least)")
    achieved = removed / total
    if all_pay:
        ties = int(np.count_nonzero(allmag == thr)) if target > 0 else 0
        c.check(sparsity - 1 / total <= achieved <= sparsity + (ties + 1) / total,
                f"achieved sparsity {achieved:.9f} within 1/N of {sparsity}")
    else:
        c.check(achieved <= sparsity + 1 / total,
                f"achieved sparsity {achieved:.9f} not above {sparsity} with dense layers")
    return c.done()


COMMANDS = {"make-combo": (cmd_make_combo, 1), "figures": (cmd_figures, 2),
            "apply": (cmd_apply, 4), "global-prune": (cmd_global_prune, 4)}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS or len(argv) - 2 != COMMANDS[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    fn, _ = COMMANDS[argv[1]]
    return fn(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
