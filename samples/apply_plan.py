"""Test accuracy of a sample network compressed by `rankscope apply`.

    python3 samples/apply_plan.py [--original ORIGINAL.safetensors] APPLIED.safetensors

APPLIED is the output of `rankscope apply PLAN MODEL -o APPLIED` for one of
the sample models (digits-mlp, digits-cnn, digits-lorita).  Its metadata
names the model class ("model") and holds the plan ("rankscope_plan").
Each factorised layer NAME is stored as NAME.lowrank.A (r x cols) and
NAME.lowrank.B (rows x r); its weight is rebuilt as B @ A and, for a
convolution kernel, unfolded by the fold scheme the plan records (see
rankscope-plan(5)).  The model is then evaluated on the fixed 360-image
test split of digits_models.py.  With --original, the uncompressed model is
evaluated too, for comparison.

Needs Debian's python3-torch, python3-sklearn and python3-numpy, like the
rest of samples/.  Prints one line per figure; exits 1 if the file does
not fit the model.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True   # leave no __pycache__ in samples/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digits_models as dm  # noqa: E402


def unfold(m, shape, fold):
    """The (f, c, kh, kw) kernel whose folded matrix under `fold` is m.

    Folds (rankscope-plan(5)): 0: f x (c kh kw), 1: (f kh) x (c kw),
    2: (f kw) x (c kh), 3: (f kh kw) x c, first-named index slowest.
    """
    f, c, kh, kw = shape
    if fold == 0:
        return m.reshape(f, c, kh, kw)
    if fold == 1:
        return m.reshape(f, kh, c, kw).permute(0, 2, 1, 3)
    if fold == 2:
        return m.reshape(f, kw, c, kh).permute(0, 2, 3, 1)
    if fold == 3:
        return m.reshape(f, kh, kw, c).permute(0, 3, 1, 2)
    raise ValueError(f"unknown fold scheme {fold!r}")


def rebuild(tensors, plan):
    """State dict with every factorised layer's weight rebuilt from B @ A."""
    state = dict(tensors)
    for layer in plan["layers"]:
        if layer["method"] != "lowrank":
            continue
        name, r = layer["name"], layer["rank"]
        rows, cols = layer["matrix"]
        a = state.pop(name + ".lowrank.A")
        b = state.pop(name + ".lowrank.B")
        if list(a.shape) != [r, cols] or list(b.shape) != [rows, r]:
            raise ValueError(f"{name}: factors {list(b.shape)} x {list(a.shape)} do not "
                             f"make the plan's {rows} x {cols} at rank {r}")
        m = b.double() @ a.double()
        if layer["fold"] is not None:
            m = unfold(m, layer["shape"], layer["fold"])
        state[name] = m.float().contiguous()
    return state


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("applied", help="output of rankscope apply")
    parser.add_argument("--original", help="the uncompressed model, to compare with")
    args = parser.parse_args()

    tensors, metadata = dm.read_safetensors(args.applied)
    if "rankscope_plan" not in metadata or metadata.get("model") not in dm.MODELS:
        print(f"{args.applied}: not a rankscope apply output of a sample model "
              "(needs the metadata entries model and rankscope_plan)", file=sys.stderr)
        return 1
    plan = json.loads(metadata["rankscope_plan"])
    try:
        state = rebuild(tensors, plan)
        model = dm.MODELS[metadata["model"]]()
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError) as e:
        print(f"{args.applied}: {e}", file=sys.stderr)
        return 1
    _, x_test, _, y_test = dm.load_split()

    by = plan["created_by"]
    params = " ".join(f"{k}={v}" for k, v in by["params"].items())
    totals = plan["totals"]
    factorised = sum(1 for l in plan["layers"] if l["method"] == "lowrank")
    print(f"model     {metadata['model']}")
    print(f"plan      {by['strategy'] or '(by hand)'} {params}".rstrip())
    print(f"layers    {factorised} of {len(plan['layers'])} factorised")
    print(f"params    {totals['params_before']} -> {totals['params_after']} "
          f"({totals['ratio']:.2f}x)")
    print(f"err_2     {totals['max_rel_spec']:.4f} worst layer")
    print(f"accuracy  {dm.accuracy(model, x_test, y_test):.4f}")
    if args.original:
        original, _ = dm.load_model(args.original)
        print(f"original  {dm.accuracy(original, x_test, y_test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
