"""Test accuracy of a sample network compressed by `rankscope apply`.

    python3 samples/apply_plan.py [--original ORIGINAL.safetensors] APPLIED.safetensors

APPLIED is the output of `rankscope apply PLAN MODEL -o APPLIED` for one of
the sample models (digits-mlp, digits-cnn, digits-lorita).  Its metadata
names the model class ("model") and holds the plan ("rankscope_plan").
Written with --dense ("rankscope_dense") it is loaded as it is: every
layer is already a whole tensor.  Otherwise each compressed layer is rebuilt from its parts as rankscope-plan(5)
describes: B @ A for low rank (unfolded by the plan's fold scheme for a
convolution kernel), scattered sparse values, kept channels, codes looked up
in their codebook, low rank plus sparse, and the decompositions: a grouped
SVD's blocks side by side, Tucker-2's and CP's convolutions (or matrices)
multiplied out, a TT-matrix's cores contracted; a composed layer's product
goes back into its factors.  The model is then evaluated on the fixed 360-image
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
import torch  # noqa: E402


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


def folded(layer, m):
    """A folded matrix back to the tensor's shape."""
    if layer["fold"] is not None:
        return unfold(m, layer["shape"], layer["fold"])
    return m


def scatter(layer, values, indices):
    """A dense tensor with values at flat (row-major) positions."""
    n = 1
    for d in layer["shape"]:
        n *= d
    w = torch.zeros(n, dtype=torch.float64)
    w[indices.long()] = values.double()
    return w.reshape(layer["shape"])


def part(state, name, shape):
    """Part `name` of a compressed layer, popped from the state dict, as
    float64; its shape must be the one rankscope-plan(5) gives."""
    t = state.pop(name)
    if list(t.shape) != list(shape):
        raise ValueError(f"{name}: shape {list(t.shape)}, expected {list(shape)}")
    return t.double()


def decomposition(state, layer):
    """The weight of a grouped, tucker2, cp or tt layer (rankscope-plan(5),
    COMPRESSED MODELS > Decompositions), in the tensor's own shape."""
    method, name = layer["method"], layer["name"]
    rows, cols = layer["matrix"]
    conv = len(layer["shape"]) == 4
    f, c, kh, kw = layer["shape"] if conv else (rows, cols, 1, 1)
    if method == "grouped":
        # block i of the matrix (of the entry's own fold) is B[i] @ A[i]
        g, r = layer["groups"], layer["rank"]
        a = part(state, name + ".grouped.A", [g, r, cols // g])
        b = part(state, name + ".grouped.B", [g, rows, r])
        return folded(layer, torch.cat([b[i] @ a[i] for i in range(g)], dim=1))
    if method == "tucker2":
        r_out, r_in = layer["ranks"]
        tail = [1, 1] if conv else []
        first = part(state, name + ".tucker.first", [r_in, c] + tail).reshape(r_in, c)
        core = part(state, name + ".tucker.core", [r_out, r_in] + ([kh, kw] if conv else []))
        last = part(state, name + ".tucker.last", [f, r_out] + tail).reshape(f, r_out)
        if not conv:
            return last @ core @ first
        return torch.einsum("oj,jlyx,li->oiyx", last, core, first)
    if method == "cp":
        r = layer["rank"]
        if not conv:
            first = part(state, name + ".cp.first", [r, cols])
            return part(state, name + ".cp.last", [rows, r]) @ first
        first = part(state, name + ".cp.first", [r, c, 1, 1])[:, :, 0, 0]
        vertical = part(state, name + ".cp.vertical", [r, 1, kh, 1])[:, 0, :, 0]
        horizontal = part(state, name + ".cp.horizontal", [r, 1, 1, kw])[:, 0, 0, :]
        last = part(state, name + ".cp.last", [f, r, 1, 1])[:, :, 0, 0]
        return torch.einsum("or,ri,ry,rx->oiyx", last, first, vertical, horizontal)
    # tt: W(i, j) = core_0[:, i_1, j_1, :] @ ... @ core_(d-1)[:, i_d, j_d, :],
    # row and column indices mixed-radix with the first mode most significant
    tt = layer["tt"]
    ranks, m_modes, n_modes = tt["ranks"], tt["rows"], tt["cols"]
    x = torch.ones(1, 1, 1, dtype=torch.float64)      # (rows so far, cols so far, rank)
    for k in range(len(m_modes)):
        core = part(state, f"{name}.tt.{k}",
                    [ranks[k], m_modes[k], n_modes[k], ranks[k + 1]])
        a, b, _ = x.shape
        x = torch.einsum("abr,rijs->aibjs", x, core).reshape(
            a * m_modes[k], b * n_modes[k], ranks[k + 1])
    if list(x.shape) != [rows, cols, 1]:
        raise ValueError(f"{name}: TT modes make {list(x.shape[:2])}, not {[rows, cols]}")
    return folded(layer, x[:, :, 0])


def unpack_codes(packed, count, width):
    """count codes of `width` bits from their packing: code k is bits
    k*width .. k*width + width - 1 of the bytes read as one little-endian
    bit stream (bit b of byte y is stream bit 8 y + b)."""
    bits = (packed.to(torch.int64).reshape(-1, 1) >> torch.arange(8)) & 1
    bits = bits.reshape(-1)[: count * width].reshape(count, width)
    return (bits << torch.arange(width)).sum(dim=1)


def quantised(state, layer):
    """A quantised part: its codes (packed at the plan's bits) looked up in
    its codebook (one per row of the folded matrix for uniform-channel), in
    the tensor's shape."""
    name, (rows, cols) = layer["name"], layer["matrix"]
    codes = unpack_codes(state.pop(name + ".quant.codes"), rows * cols, layer["bits"])
    book = state.pop(name + ".quant.codebook").double()
    if book.dim() == 2:
        # with fold 0 (and for linear layers) the rows are the tensor's
        # leading index
        if layer["fold"] not in (None, 0):
            raise ValueError(f"{name}: per-channel codes are read here for fold 0 only")
        return torch.gather(book, 1, codes.reshape(rows, cols)).reshape(layer["shape"])
    return book[codes].reshape(layer["shape"])


# methods whose weight is a sum of parts: low rank B @ A, sparse values,
# a quantised part (rankscope-plan(5))
ADDITIVE = ("lowrank", "lowrank+sparse", "quant", "quant+sparse", "lowrank+sparse+quant")


def additive(state, layer):
    """The sum of a layer's parts, each popped from the state."""
    method, name = layer["method"], layer["name"]
    rows, cols = layer["matrix"]
    w = 0
    if method.startswith("lowrank"):
        r = layer["rank"]
        a = state.pop(name + ".lowrank.A")
        b = state.pop(name + ".lowrank.B")
        if list(a.shape) != [r, cols] or list(b.shape) != [rows, r]:
            raise ValueError(f"{name}: factors {list(b.shape)} x {list(a.shape)} do not "
                             f"make the plan's {rows} x {cols} at rank {r}")
        w = folded(layer, b.double() @ a.double())
    if "sparse" in method:
        w = w + scatter(layer, state.pop(name + ".sparse.values"),
                        state.pop(name + ".sparse.indices"))
    if "quant" in method:
        w = w + quantised(state, layer)
    return w


def rebuild(tensors, plan, shapes):
    """State dict with every compressed layer's weight rebuilt from its parts
    (layouts in rankscope-plan(5)); shapes are the network's own tensors'."""
    state = dict(tensors)
    for layer in plan["layers"]:
        method, name = layer["method"], layer["name"]
        rows, cols = layer["matrix"]
        if method == "dense":
            continue
        if method in ADDITIVE:
            w = additive(state, layer)
        elif method == "prune":
            w = scatter(layer, state.pop(name + ".sparse.values"),
                        state.pop(name + ".sparse.indices"))
        elif method in ("prune-rows", "prune-cols"):
            values = state.pop(name + ".channels.values").double()
            index = state.pop(name + ".channels.index").long()
            m = torch.zeros(rows, cols, dtype=torch.float64)
            if method == "prune-rows":
                m[index, :] = values
            else:
                m[:, index] = values
            w = folded(layer, m)
        elif method in ("grouped", "tucker2", "cp", "tt"):
            w = decomposition(state, layer)
        else:
            raise ValueError(f"{name}: unknown method {method!r}")
        if "factors" in layer:
            place_product(state, layer, w, shapes)
        else:
            state[name] = w.float().contiguous()
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
        if metadata.get("rankscope_dense") == "true":
            state = {k: v.float() for k, v in tensors.items()}
        else:
            state = rebuild(tensors, plan, shapes)
        model.load_state_dict(state, strict=True)
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
    print(f"accuracy  {dm.accuracy(model, x_test, y_test):.4f}")
    if args.original:
        original, _ = dm.load_model(args.original)
        print(f"original  {dm.accuracy(original, x_test, y_test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
