#!/usr/bin/python3
"""calibcheck.py — the output-norm figures of tests/cli-calib.sh against
numpy on the real inputs X of each layer (not only their Gram matrix).

X comes from a forward pass written here in numpy (the digits MLP and CNN
of samples/, over the 1437 training images of the fixed split), so neither
samples/calibrate.py nor rankscope is trusted for it.

  calibcheck.py write MODEL CALIB [diag]
      CALIB: PREFIX.gram (float64; or PREFIX.diag) and PREFIX.count from
      this file's own X, so rankscope's figures can be held to 1e-9
      against the very inputs they were made from.
  calibcheck.py hostile MODEL DIR
      DIR/NAME.safetensors: calibration files for the MLP that are wrong in
      one way each (NAME says how), for their error messages.
  calibcheck.py greedy SPECTRA.json PLAN.json
      the plan of budget-greedy error=out (params metric, unweighted) is
      optimal among all plans costing no more: every combination of each
      layer's options (dense, or a whitened rank that pays) enumerated from
      the spectra's whitened_out_err curves.
  calibcheck.py gram MODEL CALIB
      every PREFIX.gram (or .diag) in CALIB equals X^T X of that layer's
      inputs (1e-5 relative: activations in float32 there), counts too.
  calibcheck.py spectra MODEL SPECTRA.json
      for every layer and a spread of ranks r: out_err[r] is
      ||(W - W_r) X^T||_F / ||W X^T||_F with W_r numpy's rank-r truncation
      formed explicitly (1e-7); whitened_out_err[r] is no better than the
      optimum over all rank-r matrices, Eckart-Young on W X^T (1e-9), and
      within 1e-6 of it; whitened_out_err is never above out_err.
  calibcheck.py applied MODEL PLAN.json APPLIED.safetensors
      each low-rank layer's parts (B @ A) measured on X: the output error
      equals the plan's predicted out_err (float32 parts: 1e-5).
  calibcheck.py rebuilt MODEL PLAN.json APPLIED.safetensors
      every compressed layer rebuilt from its parts by samples/apply_plan.py
      (any method) and measured on X: its output error equals the plan's
      predicted out_err (float32 values: 1e-5).
  calibcheck.py info MODEL INFO.json
      out_rank_90/99/999 are the smallest whitened ranks reaching the output
      energy (checked against the spectra curves) and out_err_at_rank_99 is
      the plain truncation at rank_99 measured on X.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import Checker, SafeTensors, write_safetensors  # noqa: E402


def training_images():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    x_train, _, _, _ = train_test_split(x, d.target, test_size=0.2, stratify=d.target,
                                        random_state=0)
    return x_train.astype(np.float64)


def patches(x, k=3, pad=1):
    """(B, C, H, W) -> (B*H*W, C*k*k) rows, channel slowest (same-size conv)."""
    b, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((b, h, w, c, k, k))
    for i in range(k):
        for j in range(k):
            out[:, :, :, :, i, j] = xp[:, :, i:i + h, j:j + w].transpose(0, 2, 3, 1)
    return out.reshape(b * h * w, c * k * k)


def layer_inputs(model):
    """{tensor name: X (rows = input vectors)} for the digits MLP or CNN."""
    st = SafeTensors(model)
    w = {n: st.array(n).astype(np.float64) for n in st.entries}
    x = training_images()
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    xs = {}
    if "conv1.weight" not in w:
        h = x
        for name in ("fc1", "fc2", "fc3"):
            xs[name + ".weight"] = h
            h = relu(h @ w[name + ".weight"].T + w[name + ".bias"])
        return w, xs
    b = x.shape[0]
    h = x.reshape(b, 1, 8, 8)
    for name in ("conv1", "conv2", "conv3"):
        p = patches(h)
        xs[name + ".weight"] = p
        f = w[name + ".weight"].shape[0]
        side = h.shape[2]
        y = (p @ w[name + ".weight"].reshape(f, -1).T + w[name + ".bias"])
        h = relu(y.reshape(b, side, side, f).transpose(0, 3, 1, 2))
        if name == "conv2":
            h = h.reshape(b, f, side // 2, 2, side // 2, 2).max(axis=(3, 5))
    h = h.reshape(b, -1)
    xs["fc1.weight"] = h
    h = relu(h @ w["fc1.weight"].T + w["fc1.bias"])
    xs["fc2.weight"] = h
    return w, xs


def matrix(w):
    return w.reshape(w.shape[0], -1)


def out_err(e, x, wx):
    return np.linalg.norm(e @ x.T) / wx


def ranks(k):
    return sorted({0, 1, 2, 3, k // 4, k // 2, (3 * k) // 4, k - 1, k} & set(range(k + 1)))


def write_calib(model, calib, diag=None):
    _, xs = layer_inputs(model)
    out = {}
    for name, x in xs.items():
        prefix = name[:-len(".weight")]
        g = x.T @ x
        if diag == "inputs":
            # the input vectors themselves: rankscope sums G = X^T X, the
            # count is the number of rows
            out[prefix + ".inputs"] = x
            continue
        if diag == "meanabs":
            out[prefix + ".mean_abs"] = np.abs(x).mean(axis=0)
        elif diag:
            out[prefix + ".diag"] = np.diag(g).copy()
        else:
            out[prefix + ".gram"] = (g + g.T) / 2
        out[prefix + ".count"] = np.array(x.shape[0], dtype=np.int64)
    write_safetensors(calib, out)


def write_hostile(model, out):
    _, xs = layer_inputs(model)
    x = xs["fc1.weight"]
    g = x.T @ x
    # |G_ij| above sqrt(G_ii G_jj): no Gram matrix, diagonal untouched
    i, j = np.argsort(np.diag(g))[-2:]
    notpsd = g.copy()
    notpsd[i, j] = notpsd[j, i] = 2 * np.sqrt(g[i, i] * g[j, j])
    asym = g.copy()
    asym[3, 5] += 1e-3 * np.abs(g).max()
    nan = g.copy()
    nan[7, 7] = np.nan
    negdiag = np.diag(g).copy()
    negdiag[2] = -1
    cases = {
        "wrong-size": {"fc1.gram": g[:63, :63].copy()},
        "vector-gram": {"fc1.gram": np.diag(g).copy()},
        "not-symmetric": {"fc1.gram": asym},
        "not-psd": {"fc1.gram": notpsd},
        "nan": {"fc1.gram": nan},
        "negative-diag": {"fc1.diag": negdiag},
        "bad-count": {"fc1.gram": g, "fc1.count": np.array([1, 2], dtype=np.int64)},
        "negative-count": {"fc1.gram": g, "fc1.count": np.array(-5, dtype=np.int64)},
        "integer-gram": {"fc1.gram": np.ones((64, 64), dtype=np.uint8)},
        "inputs-width": {"fc1.inputs": x[:, :63].copy()},
        "inputs-nan": {"fc1.inputs": np.where(np.arange(x.size).reshape(x.shape) == 70,
                                              np.nan, x)},
        "no-match": {"encoder.fc1.gram": g},
        "extra": {"fc1.gram": g, "decoder.gram": g},
    }
    for name, tensors in cases.items():
        write_safetensors(os.path.join(out, name + ".safetensors"), tensors)


def check_diag_spectra(c, model, spectra, mode):
    """out_err[r] of every layer in the norm of the diagonal statistics
    (diag: sum x_j^2; meanabs: N mean|x_j|^2, ASVD's), numpy's truncation."""
    w, xs = layer_inputs(model)
    doc = json.load(open(spectra))
    for layer in doc["layers"]:
        name, cal = layer["name"], layer.get("calibration")
        if name not in xs:
            continue
        c.check(cal is not None and cal["statistics"] == "diag", f"{name}: diagonal statistics")
        if cal is None:
            continue
        x, wm = xs[name], matrix(w[name])
        d = (x * x).sum(0) if mode == "diag" else x.shape[0] * np.abs(x).mean(0) ** 2
        u, s, vt = np.linalg.svd(wm, full_matrices=False)
        total = np.sum(wm * wm * d)
        for r in ranks(len(s)):
            e = wm - (u[:, :r] * s[:r]) @ vt[:r]
            c.close(cal["out_err"][r], np.sqrt(np.sum(e * e * d) / total), 1e-9,
                    f"{name}: {mode} out_err at rank {r}")


def check_greedy(c, spectra, plan_path):
    curves = {l["name"]: l for l in json.load(open(spectra))["layers"]}
    plan = json.load(open(plan_path))
    opts, used, objective = [], 0, 0.0
    for layer in plan["layers"]:
        sp = curves[layer["name"]]
        m, n = sp["rows"], sp["cols"]
        e = sp["calibration"]["whitened_out_err"]
        o = [(m * n, 0.0)] + [(r * (m + n), e[r] ** 2) for r in range(1, len(e) - 1)
                              if r * (m + n) < m * n]
        opts.append(o)
        if layer["method"] == "dense":
            used += m * n
        else:
            c.check(layer.get("whitened") is True, f"{layer['name']}: whitened")
            used += layer["rank"] * (m + n)
            objective += e[layer["rank"]] ** 2
    # best objective over every combination costing <= used: the last layer
    # takes its best option that fits (errors fall with cost)
    best = float("inf")
    import itertools
    for combo in itertools.product(*opts[:-1]):
        cost = sum(x[0] for x in combo)
        err = sum(x[1] for x in combo)
        fits = [x[1] for x in opts[-1] if cost + x[0] <= used]
        if fits:
            best = min(best, err + min(fits))
    c.check(objective <= best + 1e-12, f"greedy objective {objective:.12g} above the best "
            f"{best:.12g} at its cost {used}")


def check_rule(c, spectra, strategy, value, out_path, weight_path):
    """A weight-norm rule run in the output norm (error=out) against the same
    rule in the weight norm (error=weight), from the exact whitened curves."""
    curves = {l["name"]: l for l in json.load(open(spectra))["layers"]}
    out = {l["name"]: l for l in json.load(open(out_path))["layers"]}
    weight = {l["name"]: l for l in json.load(open(weight_path))["layers"]}
    value = float(value)
    changed = 0
    for name, lo in out.items():
        lw, sp = weight[name], curves[name]
        m, n = sp["rows"], sp["cols"]
        e = sp["calibration"]["whitened_out_err"]
        what = f"{strategy} {name}"
        if strategy == "global-prune":
            c.check(lo["method"] == lw["method"] and lo["sparsity"] == lw["sparsity"],
                    f"{what}: the same sparsity as the weight-norm plan")
            if lo["method"] == "prune":
                c.check(lo.get("scored") is True, f"{what}: the scored mask")
                changed += 1
            continue
        if lo["method"] == "lowrank":
            r = lo["rank"]
            c.check(lo.get("whitened") is True, f"{what}: whitened")
            c.close(lo["predicted"]["out_err"], e[r], 1e-9, f"{what}: out_err is the curve's")
            changed += 1
        if strategy in ("uniform", "threshold"):
            c.check((lo["method"], lo["rank"]) == (lw["method"], lw["rank"]),
                    f"{what}: the ranks of the weight-norm rule")
            if lo["method"] == "lowrank":
                c.check(lo["predicted"]["out_err"] <= lw["predicted"]["out_err"] + 1e-12,
                        f"{what}: whitened no worse in the output norm")
        elif strategy == "energy":
            eps = (1 - value) ** 0.5
            if lo["method"] == "lowrank":
                r = lo["rank"]
                c.check(e[r] <= eps + 1e-12, f"{what}: output energy kept")
                c.check(r == 1 or e[r - 1] > eps, f"{what}: the smallest such rank")
            else:
                first = next((r for r in range(1, len(e)) if e[r] <= eps), len(e) - 1)
                c.check(first * (m + n) >= m * n, f"{what}: dense only where the rank "
                        "does not pay")
        elif strategy == "lc-rankselect":
            def objective(r):
                return value * m * n if r is None else value * r * (m + n) + e[r] ** 2
            best = min([None] + [r for r in range(1, len(e) - 1) if r * (m + n) < m * n],
                       key=lambda r: (objective(r), r is not None))
            got = lo["rank"] if lo["method"] == "lowrank" else None
            c.check(objective(got) <= objective(best) + 1e-15,
                    f"{what}: rank {got} minimises alpha cost + output energy (best {best})")
    c.check(changed > 0, f"{strategy}: some layer compressed in the output norm")


def check_gram(c, model, calib):
    _, xs = layer_inputs(model)
    st = SafeTensors(calib)
    for name, x in xs.items():
        prefix = name[:-len(".weight")]
        g = x.T @ x
        if prefix + ".gram" in st.entries:
            got = st.array(prefix + ".gram").astype(np.float64)
            c.check(got.shape == g.shape, f"{prefix}.gram shape {got.shape} vs {g.shape}")
            if got.shape == g.shape:
                c.close(np.abs(got - g).max() / np.abs(g).max(), 0, 1e-5, f"{prefix}.gram = X^T X")
        else:
            got = st.array(prefix + ".diag").astype(np.float64)
            c.close(np.abs(got - np.diag(g)).max() / np.diag(g).max(), 0, 1e-5,
                    f"{prefix}.diag = diag(X^T X)")
        c.check(int(st.array(prefix + ".count")) == x.shape[0],
                f"{prefix}.count {int(st.array(prefix + '.count'))} vs {x.shape[0]}")


def check_spectra(c, model, spectra):
    w, xs = layer_inputs(model)
    doc = json.load(open(spectra))
    seen = 0
    for layer in doc["layers"]:
        name, cal = layer["name"], layer.get("calibration")
        if name not in xs:
            continue
        c.check(cal is not None, f"{name}: calibration figures present")
        if cal is None:
            continue
        seen += 1
        wm, x = matrix(w[name]), xs[name]
        wx = np.linalg.norm(wm @ x.T)
        u, s, vt = np.linalg.svd(wm, full_matrices=False)
        best = np.linalg.svd(wm @ x.T, compute_uv=False)
        k = len(s)
        c.check(len(cal["out_err"]) == k + 1, f"{name}: out_err has k + 1 values")
        for r in ranks(k):
            wr = (u[:, :r] * s[:r]) @ vt[:r]
            c.close(cal["out_err"][r], out_err(wm - wr, x, wx), 1e-7,
                    f"{name}: plain truncation's output error at rank {r}")
            opt = np.sqrt(max(np.sum(best[r:] ** 2), 0)) / wx
            got = cal["whitened_out_err"][r]
            c.check(got >= opt - 1e-9, f"{name}: whitened at rank {r} beats the optimum "
                    f"{got:.12g} < {opt:.12g}")
            c.close(got, opt, 1e-6, f"{name}: whitened at rank {r} is the optimum")
            c.check(got <= cal["out_err"][r] + 1e-12,
                    f"{name}: whitened worse than plain at rank {r}")
    c.check(seen == len(xs), f"calibration figures for {seen} of {len(xs)} layers")


def check_applied(c, model, plan_path, applied):
    w, xs = layer_inputs(model)
    plan = json.load(open(plan_path))
    st = SafeTensors(applied)
    done = 0
    for layer in plan["layers"]:
        name = layer["name"]
        if layer["method"] != "lowrank" or name not in xs:
            continue
        pred = layer["predicted"].get("out_err")
        c.check(pred is not None, f"{name}: the plan predicts out_err")
        wm, x = matrix(w[name]), xs[name]
        a = st.array(name + ".lowrank.A").astype(np.float64)
        b = st.array(name + ".lowrank.B").astype(np.float64)
        got = out_err(wm - b @ a, x, np.linalg.norm(wm @ x.T))
        if pred is not None:
            c.close(got, pred, 1e-5, f"{name}: applied output error vs predicted")
        done += 1
    c.check(done > 0, "some low-rank layer to measure")


def check_rebuilt(c, model, plan_path, applied):
    samples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples")
    sys.path.insert(0, samples)
    import apply_plan  # noqa: E402  (torch)
    w, xs = layer_inputs(model)
    plan = json.load(open(plan_path))
    st = SafeTensors(applied)
    tensors = apply_plan.from_numpy({n: st.values(n) for n in st.entries})
    state = apply_plan.rebuild(tensors, plan, {n: v.shape for n, v in w.items()})
    done = 0
    for layer in plan["layers"]:
        name, pred = layer["name"], layer["predicted"].get("out_err")
        if layer["method"] == "dense" or name not in xs:
            continue
        c.check(pred is not None, f"{name} ({layer['method']}): the plan predicts out_err")
        wm, x = matrix(w[name]), xs[name]
        wr = matrix(state[name].double().numpy())
        got = out_err(wm - wr, x, np.linalg.norm(wm @ x.T))
        if pred is not None:
            c.close(got, pred, 1e-5, f"{name} ({layer['method']}): rebuilt output error vs "
                    "predicted")
        done += 1
    c.check(done > 0, "some compressed layer to measure")


def check_info(c, model, info_path, spectra):
    w, xs = layer_inputs(model)
    info = json.load(open(info_path))
    curves = {l["name"]: l["calibration"] for l in json.load(open(spectra))["layers"]}
    for layer in info["layers"]:
        name, cal = layer["name"], layer.get("calibration")
        if name not in xs or cal is None:
            c.check(name not in xs, f"{name}: info has calibration figures")
            continue
        wo = curves[name]["whitened_out_err"]
        for key, energy in (("out_rank_90", 0.90), ("out_rank_99", 0.99),
                            ("out_rank_999", 0.999)):
            r = cal[key]
            c.check(wo[r] ** 2 <= 1 - energy + 1e-12 and (r == 0 or wo[r - 1] ** 2 > 1 - energy),
                    f"{name}: {key} = {r} is the smallest rank keeping {energy} output energy")
        wm, x = matrix(w[name]), xs[name]
        u, s, vt = np.linalg.svd(wm, full_matrices=False)
        r = layer["rank_99"]
        wr = (u[:, :r] * s[:r]) @ vt[:r]
        c.close(cal["out_err_at_rank_99"], out_err(wm - wr, x, np.linalg.norm(wm @ x.T)), 1e-7,
                f"{name}: output error at rank_99")


def main():
    c = Checker("calibcheck")
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "write":
        write_calib(*args)
        return
    if cmd == "hostile":
        write_hostile(*args)
        return
    if cmd == "gram":
        check_gram(c, *args)
    elif cmd == "spectra":
        check_spectra(c, *args)
    elif cmd == "applied":
        check_applied(c, *args)
    elif cmd == "rule":
        check_rule(c, *args)
    elif cmd == "greedy":
        check_greedy(c, *args)
    elif cmd == "diagspectra":
        check_diag_spectra(c, *args)
    elif cmd == "rebuilt":
        check_rebuilt(c, *args)
    elif cmd == "info":
        check_info(c, *args)
    else:
        sys.exit(f"calibcheck.py: unknown command {cmd}")
    sys.exit(c.done())


if __name__ == "__main__":
    main()
