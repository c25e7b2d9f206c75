"""Independent cross-check of `rankscope spectra` and `rankscope info`.

Reads a safetensors file with its own small reader, folds conv kernels
with numpy reshapes/transposes written from the definitions (not from
rankscope's code), computes singular values with numpy's LAPACK in
float64, and compares every figure rankscope prints.

usage: crosscheck.py RANKSCOPE MODEL FOLD [COMPOSE-PATTERN]

With a compose pattern, the factors it groups are multiplied here (factor 0
applied first, W = F_{N-1} ... F_0) and compared as one layer each.
"""
import json
import re
import struct
import subprocess
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=DTYPES[info["dtype"]])
        tensors[name] = arr.reshape(info["shape"]).astype(np.float64)
    return tensors


def fold(w, scheme):
    """DESIGN.md §4 folding of an (f, c, kh, kw) kernel."""
    f, c, kh, kw = w.shape
    if scheme == 0:
        return w.reshape(f, c * kh * kw)
    if scheme == 1:   # rows (f, kh), cols (c, kw)
        return w.transpose(0, 2, 1, 3).reshape(f * kh, c * kw)
    if scheme == 2:   # rows (f, kw), cols (c, kh)
        return w.transpose(0, 3, 1, 2).reshape(f * kw, c * kh)
    return w.transpose(0, 2, 3, 1).reshape(f * kh * kw, c)


def compose(tensors, pattern):
    """Groups tensors by a compose pattern ('#' = the factor index, '*' any
    text) and replaces each group by its product, named without the '#'."""
    prefix, suffix = pattern.split("#")
    glob = lambda p: ".*".join(re.escape(x) for x in p.split("*"))
    rx = re.compile("(" + glob(prefix) + ")(0|[1-9][0-9]*)(" + glob(suffix) + ")$")
    groups = {}
    for name in list(tensors):
        m = rx.match(name)
        if m:
            key = m.group(1) + "#" + m.group(3)
            groups.setdefault(key, {})[int(m.group(2))] = tensors.pop(name)
    for key, factors in groups.items():
        w = factors[0]
        for k in range(1, len(factors)):
            w = factors[k] @ w
        name = key.replace(".#.", ".") if ".#." in key else key.replace("#", "")
        tensors[name] = w
    return tensors


def run(rankscope, *args):
    out = subprocess.run([rankscope, *args], check=True, capture_output=True)
    return json.loads(out.stdout)


def main():
    rankscope, model, scheme = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tensors = read_safetensors(model)
    extra = []
    if len(sys.argv) > 4:
        tensors = compose(tensors, sys.argv[4])
        extra = ["--compose", sys.argv[4]]
    spectra = run(rankscope, "spectra", "--format", "json", "--no-cache",
                  "--fold", str(scheme), *extra, model)
    info = run(rankscope, "info", "--format", "json", "--no-cache",
               "--fold", str(scheme), *extra, model)
    info_by_name = {l["name"]: l for l in info["layers"]}
    failures = 0
    checked = 0

    def check(ok, what):
        nonlocal failures, checked
        checked += 1
        if not ok:
            failures += 1
            print("FAIL:", what, file=sys.stderr)

    expected = [n for n, t in tensors.items() if t.ndim in (2, 4) and t.size]
    check(sorted(l["name"] for l in spectra["layers"]) == sorted(expected),
          "the same layers are found")
    for layer in spectra["layers"]:
        name = layer["name"]
        w = tensors[name]
        a = fold(w, scheme) if w.ndim == 4 else w
        m, n = a.shape
        check([layer["rows"], layer["cols"]] == [m, n], f"{name}: matrix shape")
        s = np.linalg.svd(a, compute_uv=False)
        got = np.array(layer["sigma"])
        tol = 1e-9 * s[0]
        check(np.max(np.abs(got - s)) <= tol,
              f"{name}: sigma differs by {np.max(np.abs(got - s)):.3g} > {tol:.3g}")
        # Curves from numpy's values, by the definitions.
        e2 = s ** 2
        tail = np.concatenate([np.cumsum(e2[::-1])[::-1], [0.0]])
        err_fro = np.sqrt(tail / tail[0])
        err_spec = np.concatenate([s[1:] / s[0], [0.0]]) if len(s) else []
        err_spec = np.concatenate([[1.0], err_spec])[: len(s) + 1]
        check(np.allclose(layer["err_fro"], err_fro, rtol=0, atol=1e-9),
              f"{name}: err_fro curve")
        check(np.allclose(layer["err_spec"], err_spec, rtol=0, atol=1e-9),
              f"{name}: err_spec curve")
        check(np.allclose(layer["energy"], 1 - err_fro ** 2, rtol=0, atol=1e-9),
              f"{name}: energy curve")
        # Direct truncation error at a few ranks, from the matrix itself.
        u, sv, vt = np.linalg.svd(a, full_matrices=False)
        for r in sorted({1, len(s) // 3, len(s) // 2}):
            ar = (u[:, :r] * sv[:r]) @ vt[:r]
            fro = np.linalg.norm(a - ar) / np.linalg.norm(a)
            spec = np.linalg.norm(a - ar, 2) / np.linalg.norm(a, 2)
            check(abs(layer["err_fro"][r] - fro) <= 1e-9, f"{name}: err_fro({r}) vs direct")
            check(abs(layer["err_spec"][r] - spec) <= 1e-9, f"{name}: err_spec({r}) vs direct")
        # info's summary figures
        i = info_by_name[name]
        energy = 1 - err_fro ** 2
        for key, frac in (("rank_90", 0.90), ("rank_99", 0.99), ("rank_999", 0.999)):
            want = int(np.argmax(energy >= frac))
            # Equal, unless the energy sits within rounding of the boundary.
            check(i[key] == want or abs(energy[i[key]] - frac) < 1e-12,
                  f"{name}: {key} {i[key]} vs {want}")
        check(abs(i["fro_norm"] - np.linalg.norm(a)) <= 1e-9 * np.linalg.norm(a),
              f"{name}: fro_norm")
        check(abs(i["spec_norm"] - s[0]) <= 1e-9 * s[0], f"{name}: spec_norm")
        check(abs(i["stable_rank"] - e2.sum() / e2[0]) <= 1e-9 * e2.sum() / e2[0],
              f"{name}: stable rank")
        p = s / s.sum()
        p = p[p > 0]
        check(abs(i["effective_rank"] - np.exp(-(p * np.log(p)).sum())) <= 1e-6,
              f"{name}: effective rank")
        check(i["breakeven_rank"] == (m * n) // (m + n), f"{name}: break-even")
    print(f"crosscheck {model} fold {scheme}: {checked} checks, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
