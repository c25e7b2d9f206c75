"""Test accuracy of a sample network compressed by `rankscope apply`.

    python3 samples/apply_plan.py [--original ORIGINAL.safetensors] APPLIED.safetensors

APPLIED is the output of `rankscope apply PLAN MODEL -o APPLIED` for one of
the sample models (digits-mlp, digits-cnn, digits-lorita).  Its metadata
names the model class ("model") and holds the plan ("rankscope_plan").
Written with --dense ("rankscope_dense") it is loaded as it is: every
layer is already a whole tensor.  Otherwise the compressed layers run as
their parts, through the modules src/python/rankscope_torch.py builds for
them (two linears for low rank, three convolutions for Tucker-2, ...); a
composed layer (LoRITa) has no module of its own, so there the weights are
rebuilt from the parts and the product goes back into its factors.  The
model is then evaluated on the fixed 360-image test split of
digits_models.py.  With --original, the uncompressed model is evaluated
too, for comparison.

Needs Debian's python3-torch, python3-sklearn and python3-numpy, like the
rest of samples/.  Prints one line per figure; exits 1 if the file does
not fit the model.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True   # leave no __pycache__ in samples/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "src", "python"))
import digits_models as dm  # noqa: E402
import rankscope_torch as rt  # noqa: E402
import torch  # noqa: E402


def from_numpy(arrays):
    """{name: numpy array} as torch tensors; torch has no uint16 or uint32,
    so CSR's indices are widened to int64."""
    def one(a):
        if a.dtype.kind == "u" and a.dtype.itemsize > 1:
            a = a.astype("int64")
        return torch.from_numpy(a.copy())
    return {n: one(a) for n, a in arrays.items()}


def rebuild(tensors, plan, shapes):
    """State dict with every compressed layer's weight rebuilt from its parts
    (rankscope_torch.rebuild); a composed layer's product goes back into its
    factors (place_product).  shapes are the network's own tensors'."""
    state = rt.rebuild(tensors, plan)
    for layer in plan["layers"]:
        if "factors" in layer and layer["method"] != "dense":
            parts = rt.layer_parts(tensors, layer)
            w = rt.layer_weight(parts, layer)
            for k in parts:
                state.pop(k, None)
            place_product(state, layer, w, shapes)
    return state


def place_product(state, layer, w, shapes):
    """A composed layer's rebuilt product W = F_(N-1) ... F_0, put back into
    the network that expects its factors: W goes into the last factor of
    W's shape and the others (square) become identities, so that their
    product is W again."""
    factors = layer["factors"]
    fitting = [f for f in factors if list(shapes[f]) == list(w.shape)]
    if not fitting:
        raise ValueError(f"{layer['name']}: no factor of the product's shape {list(w.shape)}")
    for f in factors:
        if f == fitting[-1]:
            state[f] = w.float().contiguous()
        elif shapes[f][0] == shapes[f][1]:
            state[f] = torch.eye(shapes[f][0])
        else:
            raise ValueError(f"{layer['name']}: factor {f} {list(shapes[f])} is not square")


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
        model = dm.MODELS[metadata["model"]]()
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        how = "the dense file's weights"
        if metadata.get("rankscope_dense") == "true":
            model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
        elif any("factors" in l and l["method"] != "dense" for l in plan["layers"]):
            # composed layers have no module: their product, rebuilt
            model.load_state_dict(rebuild(tensors, plan, shapes), strict=True)
            how = "weights rebuilt from the parts"
        else:
            done = rt.load(model, args.applied)
            ran = sum(r.structured for r in done)
            how = (f"the parts' modules (rankscope_torch): {ran} of {len(done)} layers "
                   "structured, the others rebuilt per call")
        model.eval()
    except (KeyError, ValueError, RuntimeError) as e:
        print(f"{args.applied}: {e}", file=sys.stderr)
        return 1
    _, x_test, _, y_test = dm.load_split()

    by = plan["created_by"]
    params = " ".join(f"{k}={v}" for k, v in by["params"].items())
    totals = plan["totals"]
    factorised = sum(1 for l in plan["layers"] if l["method"] != "dense")
    print(f"model     {metadata['model']}")
    print(f"plan      {by['strategy'] or '(by hand)'} {params}".rstrip())
    print(f"layers    {factorised} of {len(plan['layers'])} compressed")
    print(f"params    {totals['params_before']} -> {totals['params_after']} "
          f"({totals['ratio']:.2f}x)")
    print(f"err_2     {totals['max_rel_spec']:.4f} worst layer")
    print(f"run as    {how}")
    print(f"accuracy  {dm.accuracy(model, x_test, y_test):.4f}")
    if args.original:
        original, _ = dm.load_model(args.original)
        print(f"original  {dm.accuracy(original, x_test, y_test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
