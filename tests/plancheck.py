"""Independent checker for rankscope plan files and applied models.

Written from rankscope-plan(5), not from rankscope's code: it reads
safetensors with its own reader, folds convolution kernels by the index
formulas of the four fold schemes, and recomputes every figure with
numpy's LAPACK in float64.

usage:
  plancheck.py schema PLAN SCHEMA     validate PLAN against the JSON Schema
  plancheck.py predict PLAN MODEL     recompute every predicted figure and
                                      the totals from MODEL (within 1e-9)
  plancheck.py apply PLAN MODEL OUT   check OUT, written by `rankscope apply
                                      PLAN MODEL -o OUT`
  plancheck.py csv PLAN CSV           the CSV form of a plan against the file

Each subcommand prints "NAME: N checks, F failed" and exits 1 when F > 0
(2 on a usage error).
"""
import csv
import hashlib
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True   # leave no __pycache__ in tests/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import DTYPES, Checker, SafeTensors  # noqa: E402

TOL_PREDICT = 1e-9
TOL_APPLY = 1e-5

def fold_indices(shape, scheme):
    """Row and column of kernel element (fi, ci, hi, wi) under a scheme:
    0: f x (c kh kw)  1: (f kh) x (c kw)  2: (f kw) x (c kh)  3: (f kh kw) x c
    with the first-named index varying slowest."""
    f, c, kh, kw = shape
    fi, ci, hi, wi = np.meshgrid(np.arange(f), np.arange(c), np.arange(kh),
                                 np.arange(kw), indexing="ij")
    if scheme == 0:
        return (f, c * kh * kw), fi, (ci * kh + hi) * kw + wi
    if scheme == 1:
        return (f * kh, c * kw), fi * kh + hi, ci * kw + wi
    if scheme == 2:
        return (f * kw, c * kh), fi * kw + wi, ci * kh + hi
    if scheme == 3:
        return (f * kh * kw, c), (fi * kh + hi) * kw + wi, ci
    raise ValueError(f"fold scheme {scheme}")


def fold(w, scheme):
    """The matrix of a kernel (f, c, kh, kw) under a fold scheme."""
    (rows, cols), r, c = fold_indices(w.shape, scheme)
    m = np.full((rows, cols), np.nan)
    m[r, c] = w
    assert not np.isnan(m).any()
    return m


def layer_matrix(st, name, scheme):
    w = st.array(name)
    return w if w.ndim == 2 else fold(w, scheme)


def load_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


# ---- schema -------------------------------------------------------------

def cmd_schema(plan_path, schema_path):
    import jsonschema

    c = Checker("schema")
    schema = load_json(schema_path)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(load_json(plan_path)),
                    key=lambda e: list(e.absolute_path))
    c.check(True, "the schema is a valid schema")
    for e in errors:
        c.check(False, f"{plan_path}: /{'/'.join(map(str, e.absolute_path))}: {e.message}")
    if not errors:
        c.check(True, f"{plan_path} validates")
    return c.done()


# ---- predict ------------------------------------------------------------

def truncation_figures(s, r):
    """Exact figures of the best rank-r approximation (Eckart-Young-Mirsky)."""
    e2 = s ** 2
    total = e2.sum()
    tail = e2[r:].sum()
    rel_fro = np.sqrt(tail / total) if total > 0 else 0.0
    rel_spec = (s[r] / s[0] if r < len(s) else 0.0) if s[0] > 0 else 0.0
    return rel_fro, rel_spec, 1.0 - rel_fro ** 2


def close(a, b, tol):
    return isinstance(a, (int, float)) and not isinstance(a, bool) and abs(a - b) <= tol


def cmd_predict(plan_path, model_path):
    c = Checker("predict")
    plan = load_json(plan_path)
    st = SafeTensors(model_path)

    model = plan.get("model", {})
    c.check(model.get("size") == os.path.getsize(model_path), "model.size is the file size")
    c.check(model.get("header_sha256") == hashlib.sha256(st.header_bytes).hexdigest(),
            "model.header_sha256 is the SHA-256 of the header's bytes")
    c.check(plan.get("format") == "rankscope-plan" and plan.get("version") == 1,
            "format and version")

    names = [l["name"] for l in plan["layers"]]
    c.check(len(names) == len(set(names)), "no layer appears twice")
    model_layers = [n for n in st.order if st.is_layer(n)]
    in_plan = set(names)
    c.check(names == [n for n in model_layers if n in in_plan],
            "plan layers are model layers, in the model's order")

    before = after = fbefore = fafter = 0
    worst_spec = worst_fro = 0.0
    product = 1.0
    for l in plan["layers"]:
        name = l["name"]
        if not c.check(name in st.entries and st.is_layer(name), f"{name}: a layer of the model"):
            continue
        info = st.entries[name]
        c.check(l["shape"] == info["shape"], f"{name}: shape {l['shape']} vs {info['shape']}")
        if len(info["shape"]) == 2:
            c.check(l["fold"] is None, f"{name}: fold null for a 2-D weight")
            scheme = None
        else:
            c.check(l["fold"] in (0, 1, 2, 3), f"{name}: fold 0..3 for a kernel")
            scheme = l["fold"] if l["fold"] in (0, 1, 2, 3) else 0
        a = layer_matrix(st, name, scheme)
        m, n = a.shape
        k = min(m, n)
        c.check(l["matrix"] == [m, n], f"{name}: matrix {l['matrix']} vs {[m, n]}")
        c.check(l["groups"] == 1 and type(l["groups"]) is int, f"{name}: groups 1")
        c.check(l["sparsity"] == 0 and type(l["sparsity"]) is float, f"{name}: sparsity 0.0")
        c.check(l["bits"] == DTYPES[info["dtype"]][1], f"{name}: bits of {info['dtype']}")
        s = np.linalg.svd(a, compute_uv=False)
        p = l["predicted"]
        before += m * n
        fbefore += 2 * m * n
        if l["method"] == "lowrank":
            r = l["rank"]
            ok = c.check(type(r) is int and 1 <= r < k, f"{name}: rank {r} in 1..{k - 1}")
            ok = c.check(ok and r * (m + n) < m * n, f"{name}: rank {r} pays") and ok
            if not ok:
                continue
            fro, spec, energy = truncation_figures(s, r)
            params, flops = r * (m + n), 2 * r * (m + n)
        else:
            c.check(l["method"] == "dense", f"{name}: method {l['method']!r}")
            c.check(l["rank"] is None, f"{name}: dense rank is null")
            fro, spec, energy = 0.0, 0.0, 1.0
            params, flops = m * n, 2 * m * n
        c.check(close(p["rel_fro"], fro, TOL_PREDICT),
                f"{name}: rel_fro {p['rel_fro']!r} vs {fro!r}")
        c.check(close(p["rel_spec"], spec, TOL_PREDICT),
                f"{name}: rel_spec {p['rel_spec']!r} vs {spec!r}")
        c.check(close(p["energy"], energy, TOL_PREDICT),
                f"{name}: energy {p['energy']!r} vs {energy!r}")
        c.check(p["params"] == params and type(p["params"]) is int,
                f"{name}: params {p['params']} vs {params}")
        c.check(p["flops"] == flops and type(p["flops"]) is int,
                f"{name}: flops {p['flops']} vs {flops}")
        after += params
        fafter += flops
        worst_spec = max(worst_spec, spec)
        worst_fro = max(worst_fro, fro)
        product *= 1.0 + spec

    t = plan["totals"]
    c.check(t["params_before"] == before, f"params_before {t['params_before']} vs {before}")
    c.check(t["params_after"] == after, f"params_after {t['params_after']} vs {after}")
    c.check(t["flops_before"] == fbefore, f"flops_before {t['flops_before']} vs {fbefore}")
    c.check(t["flops_after"] == fafter, f"flops_after {t['flops_after']} vs {fafter}")
    ratio = before / after if after else 1.0
    c.check(close(t["ratio"], ratio, TOL_PREDICT * ratio), f"ratio {t['ratio']} vs {ratio}")
    c.check(close(t["max_rel_spec"], worst_spec, TOL_PREDICT),
            f"max_rel_spec {t['max_rel_spec']} vs {worst_spec}")
    c.check(close(t["max_rel_fro"], worst_fro, TOL_PREDICT),
            f"max_rel_fro {t['max_rel_fro']} vs {worst_fro}")
    c.check(close(t["net_bound"], product - 1.0, TOL_PREDICT * product),
            f"net_bound {t['net_bound']} vs {product - 1.0}")
    return c.done()


# ---- apply --------------------------------------------------------------

def cmd_apply(plan_path, model_path, out_path):
    c = Checker("apply")
    plan = load_json(plan_path)
    src = SafeTensors(model_path)
    out = SafeTensors(out_path)

    # Layout: header padded so that data starts 8-byte aligned; tensors
    # contiguous in header order; nothing after the last one.
    c.check((8 + out.header_len) % 8 == 0, "data starts at a multiple of 8")
    end = 0
    for name, info in out.entries.items():
        b, e = info["data_offsets"]
        c.check(b == end and e >= b, f"{name}: offsets {b}..{e} follow on")
        end = e
    c.check(len(out.data) == end, f"data is {len(out.data)} bytes, tensors {end}")

    lowrank = {l["name"]: l for l in plan["layers"] if l["method"] == "lowrank"}
    expected = []
    for name in src.order:
        expected += [name + ".lowrank.A", name + ".lowrank.B"] if name in lowrank else [name]
    c.check(list(out.entries) == expected,
            "tensors: the model's, in order, each factorised weight replaced by its "
            f"A and B (got {list(out.entries)[:8]}...)")

    # Copied through byte for byte.
    for name, info in src.entries.items():
        if name in lowrank:
            c.check(name not in out.entries, f"{name}: the factorised weight is gone")
            continue
        o = out.entries.get(name)
        if not c.check(o is not None, f"{name}: copied"):
            continue
        c.check(o["dtype"] == info["dtype"] and o["shape"] == info["shape"],
                f"{name}: same dtype and shape")
        c.check(out.raw(name) == src.raw(name), f"{name}: same bytes")

    # Factors: names, dtype, shapes, the sqrt split and the measured errors.
    for name, l in lowrank.items():
        r = l["rank"]
        rows, cols = l["matrix"]
        an, bn = name + ".lowrank.A", name + ".lowrank.B"
        if not c.check(an in out.entries and bn in out.entries, f"{name}: A and B present"):
            continue
        ai, bi = out.entries[an], out.entries[bn]
        c.check(ai["dtype"] == "F32" and bi["dtype"] == "F32", f"{name}: factors are F32")
        c.check(ai["shape"] == [r, cols], f"{an}: shape {ai['shape']} vs {[r, cols]}")
        c.check(bi["shape"] == [rows, r], f"{bn}: shape {bi['shape']} vs {[rows, r]}")
        if ai["shape"] != [r, cols] or bi["shape"] != [rows, r]:
            continue
        a, b = out.array(an), out.array(bn)
        w = layer_matrix(src, name, l["fold"])
        c.check(list(w.shape) == [rows, cols], f"{name}: the plan's matrix is the fold's")
        d = w - b @ a
        s = np.linalg.svd(w, compute_uv=False)
        fro = np.linalg.norm(d) / np.linalg.norm(w)
        spec = np.linalg.norm(d, 2) / s[0]
        p = l["predicted"]
        c.check(abs(fro - p["rel_fro"]) <= TOL_APPLY,
                f"{name}: measured rel_fro {fro:.9g} vs predicted {p['rel_fro']:.9g}")
        c.check(abs(spec - p["rel_spec"]) <= TOL_APPLY,
                f"{name}: measured rel_spec {spec:.9g} vs predicted {p['rel_spec']:.9g}")
        # B = U sqrt(S), A = sqrt(S) V^T: column t of B and row t of A both
        # have norm sqrt(s_t); B^T B and A A^T are both diag(s_1..s_r).
        want = np.sqrt(s[:r])
        c.check(np.allclose(np.linalg.norm(b, axis=0), want, rtol=1e-5, atol=1e-6 * want[0]),
                f"{name}: columns of B have norms sqrt(sigma)")
        c.check(np.allclose(np.linalg.norm(a, axis=1), want, rtol=1e-5, atol=1e-6 * want[0]),
                f"{name}: rows of A have norms sqrt(sigma)")
        c.check(np.allclose(b.T @ b, a @ a.T, rtol=0, atol=1e-5 * s[0]),
                f"{name}: B^T B = A A^T (an even split)")

    # Metadata: the model's entries kept, the plan and the version added.
    meta = out.metadata
    for key, value in src.metadata.items():
        if key in ("rankscope_plan", "rankscope_version"):
            continue
        c.check(meta.get(key) == value, f"metadata {key} kept")
    c.check(set(meta) == set(src.metadata) | {"rankscope_plan", "rankscope_version"},
            f"metadata keys: {sorted(set(meta))}")
    c.check(isinstance(meta.get("rankscope_version"), str) and
            plan["created_by"]["tool"] == "rankscope " + meta.get("rankscope_version", ""),
            "rankscope_version is the tool's version")
    stored_text = meta.get("rankscope_plan", "{}")
    stored = json.loads(stored_text)
    c.check(stored_text.endswith("}\n") and stored_text.count("\n") == 1,
            "rankscope_plan is one line of JSON and a newline")
    choice = lambda p: [(l["name"], l["method"], l["rank"], l["fold"], l["matrix"])
                        for l in p.get("layers", [])]
    c.check(choice(stored) == choice(plan), "rankscope_plan has the plan's layer choices")
    c.check(stored == plan, "rankscope_plan is the plan, as parsed JSON")
    return c.done()


# ---- csv ----------------------------------------------------------------

def cmd_csv(plan_path, csv_path):
    c = Checker("csv")
    plan = load_json(plan_path)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    c.check(len(rows) == len(plan["layers"]), f"{len(rows)} rows for "
            f"{len(plan['layers'])} layers")
    for row, l in zip(rows, plan["layers"]):
        p = l["predicted"]
        name = l["name"]
        rows_, cols = l["matrix"]
        c.check(row["layer"] == name, f"row {row['layer']} is layer {name}")
        c.check([int(row["rows"]), int(row["cols"])] == l["matrix"], f"{name}: matrix")
        c.check(row["fold"] == ("" if l["fold"] is None else str(l["fold"])), f"{name}: fold")
        c.check(row["method"] == l["method"], f"{name}: method")
        c.check(row["rank"] == ("" if l["rank"] is None else str(l["rank"])), f"{name}: rank")
        for key, col in (("rel_fro", "err_fro"), ("rel_spec", "err_spec"),
                         ("energy", "energy")):
            c.check(float(row[col]) == p[key], f"{name}: {col} {row[col]} vs {p[key]!r}")
        c.check(int(row["params"]) == p["params"], f"{name}: params")
        c.check(int(row["flops"]) == p["flops"], f"{name}: flops")
        c.check(int(row["params_dense"]) == rows_ * cols, f"{name}: params_dense")
    return c.done()


COMMANDS = {"schema": (cmd_schema, 2), "predict": (cmd_predict, 2),
            "apply": (cmd_apply, 3), "csv": (cmd_csv, 2)}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS or len(argv) - 2 != COMMANDS[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    fn, _ = COMMANDS[argv[1]]
    return fn(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
