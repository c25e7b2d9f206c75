"""Calibration statistics for rankscope: each layer's input Gram matrix.

    python3 samples/calibrate.py --digits mlp|cnn [--diag] OUT.safetensors

writes the statistics of one of the sample networks over its training
images.  For your own network, import this file and call

    calibrate(model, batches, "calib.safetensors")

with any torch.nn.Module and any iterable of its inputs (a DataLoader's
batches, or the first element of each (input, label) pair).  Forward hooks
on every nn.Linear, nn.Conv1d and nn.Conv2d (groups = 1) add up

    G = X^T X   (float64)

where the rows of X are the vectors the layer multiplies: a Linear's
inputs (every leading dimension flattened), a convolution's unfolded input
patches (torch.nn.functional.unfold's order, channel slowest: the columns
of the kernel reshaped to out x (in * kh * kw), rankscope's fold 0).  The
file holds, for the module named NAME (as in named_modules(), so its weight
is NAME.weight in the state_dict):

    NAME.gram   (n, n)  float32 or float64 (--dtype), or with diagonal=True
    NAME.diag   (n)     only G's diagonal (sum of x_j^2)
    NAME.count  ()      int64, how many vectors were summed

`rankscope --calibration OUT ...` then reports every layer's error in its
output, ||(W - W') X^T||_F / ||W X^T||_F, and can truncate optimally in
that norm (rankscope(1), CALIBRATION).  Needs only torch and numpy.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.dont_write_bytecode = True   # leave no __pycache__ in samples/


def _patches(module, x):
    """The rows of X a convolution multiplies its folded kernel with."""
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(-1)
        kernel = (module.kernel_size[0], 1)
        dilation = (module.dilation[0], 1)
        stride = (module.stride[0], 1)
        padding = module.padding
        padding = (padding[0], 0) if not isinstance(padding, str) else padding
    else:
        kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
        padding = module.padding
    if isinstance(padding, str):
        raise ValueError(f"padding='{padding}' is not supported: give it as numbers")
    if module.padding_mode != "zeros":
        raise ValueError(f"padding_mode '{module.padding_mode}' is not supported")
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


class _Accumulator:
    def __init__(self, n, diagonal):
        self.diagonal = diagonal
        self.sum = torch.zeros(n if diagonal else (n, n), dtype=torch.float64)
        self.count = 0

    def add(self, rows):
        rows = rows.detach().to(torch.float64)
        if self.diagonal:
            self.sum += (rows * rows).sum(0)
        else:
            self.sum += rows.T @ rows
        self.count += rows.shape[0]


def _layers(model):
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            yield name, module, module.in_features
        elif isinstance(module, (nn.Conv1d, nn.Conv2d)):
            if module.groups != 1:
                print(f"calibrate: {name}: a grouped convolution (groups "
                      f"{module.groups}) is skipped", file=sys.stderr)
                continue
            yield name, module, module.weight[0].numel()


def statistics(model, batches, diagonal=False):
    """{NAME: (sum, count)} of every layer over the batches, in eval mode."""
    acc, hooks = {}, []
    for name, module, n in _layers(model):
        acc[name] = _Accumulator(n, diagonal)

        def hook(mod, args, _out, name=name):
            x = args[0]
            if isinstance(mod, nn.Linear):
                acc[name].add(x.reshape(-1, x.shape[-1]))
            else:
                acc[name].add(_patches(mod, x))
        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                if isinstance(batch, (list, tuple)):
                    batch = batch[0]
                model(batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: (a.sum, a.count) for name, a in acc.items() if a.count > 0}


def write_safetensors(path, arrays):
    """A safetensors file of numpy arrays (name -> array), written whole."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
             np.dtype(np.int64): "I64"}
    header, blobs, offset = {}, [], 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        blob = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def calibrate(model, batches, path, diagonal=False, dtype=np.float32):
    """Writes the statistics of every layer of model over batches to path."""
    arrays = {}
    for name, (total, count) in statistics(model, batches, diagonal).items():
        g = total.numpy()
        if not diagonal:
            g = (g + g.T) / 2   # exactly symmetric whatever the summation order
        arrays[f"{name}.{'diag' if diagonal else 'gram'}"] = g.astype(dtype)
        arrays[f"{name}.count"] = np.array(count, dtype=np.int64)
    write_safetensors(path, arrays)
    return arrays


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digits", choices=["mlp", "cnn"], required=True,
                    help="a sample network, over its 1437 training images")
    ap.add_argument("--diag", action="store_true", help="only G's diagonal")
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    ap.add_argument("--model", help="weights to load (default: the sample's)")
    ap.add_argument("out")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import digits_models as dm
    path = args.model or os.path.join(here, f"digits-{args.digits}.safetensors")
    model, _ = dm.load_model(path)
    x_train = dm.load_split()[0]
    batches = [x_train[i:i + 256] for i in range(0, len(x_train), 256)]
    arrays = calibrate(model, batches, args.out, args.diag,
                       np.float64 if args.dtype == "f64" else np.float32)
    print(f"{args.out}: {len(arrays) // 2} layers, {len(x_train)} images")


if __name__ == "__main__":
    main()
