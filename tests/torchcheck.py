"""Checks of src/python/rankscope_torch.py, the package that runs a model
compressed by `rankscope apply` in PyTorch (cli-torchrun.sh).

    torchcheck.py make OUT.pt
        a network of every kind of layer the package replaces (strided,
        padded, dilated, non-square, grouped Conv2d; Conv1d; Linear in
        nested containers and a ModuleDict), seeded, saved by torch.save
    torchcheck.py compare PARTS DENSE [EXPECT]
        the network with PARTS loaded by rankscope_torch.load against the
        same network with DENSE (`apply --dense`) as its state_dict: equal
        outputs on a seeded input (float32 rounding apart); each
        factorised layer run structured, its parameters the plan's params
        (so the modules are the parts' own, not a dense weight); EXPECT,
        "NAME=structured|rebuilt,...", pins how given layers ran
    torchcheck.py samples PARTS DENSE
        a sample network (digits_models): its test accuracy and outputs
        through the package equal those through the dense file
    torchcheck.py hostile PARTS DIR
        damaged copies of PARTS (truncated, a header that is not JSON, a
        part of the wrong shape, a part missing) refused by load() with a
        CompressedError naming the file or tensor and the problem

The reference is the dense file rankscope's C code writes, loaded as a
plain state_dict by torch: two implementations, one check.
"""
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "src", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "samples"))
import torch  # noqa: E402
from torch import nn  # noqa: E402

import rankscope_torch as rt  # noqa: E402
from checklib import Checker  # noqa: E402


class Zoo(nn.Module):
    """Every layer kind rankscope_torch replaces, with the geometry that
    makes a factorisation's split of stride and padding matter."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, (3, 5), stride=(1, 2), padding=(1, 2)), nn.ReLU())
        self.blocks = nn.ModuleDict({
            "a": nn.Conv2d(16, 24, 3, stride=2, padding=1),
            "b": nn.Conv2d(24, 24, 3, padding=2, dilation=2, groups=2),
        })
        self.c1d = nn.Conv1d(24, 32, 5, stride=2, padding=2)
        self.head = nn.Sequential(nn.Linear(512, 64), nn.Tanh(), nn.Linear(64, 10))

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.blocks["a"](x))
        x = torch.relu(self.blocks["b"](x))
        x = torch.relu(self.c1d(x.flatten(2)))
        return self.head(x.flatten(1))


def zoo_input():
    g = torch.Generator().manual_seed(7)
    return torch.randn(4, 3, 16, 16, generator=g)


def cmd_make(out):
    torch.manual_seed(1)
    net = Zoo()
    # weights of a trained network's spread, with structure to compress
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)
    torch.save(net.state_dict(), out)
    return 0


def read_dense(path):
    tensors, metadata = rt.read_safetensors(path)
    if metadata.get("rankscope_dense") != "true":
        raise SystemExit(f"{path}: not written by apply --dense")
    return {k: v.float() for k, v in tensors.items()}


FACTORED = ("lowrank", "grouped", "tucker2", "cp", "tt")


def compare(c, net_dense, net_parts, x, done, plan, tensors, expect):
    with torch.no_grad():
        want, got = net_dense(x), net_parts(x)
    scale = float(want.abs().max())
    diff = float((want - got).abs().max())
    c.check(diff <= 2e-5 * max(scale, 1.0),
            f"outputs through the parts = through --dense: max |diff| {diff:.3g} "
            f"(outputs up to {scale:.3g})")
    layers = {l["name"]: l for l in plan["layers"]}
    compressed = [l for l in plan["layers"] if l["method"] != "dense"]
    c.check(len(done) >= 1 and len(done) <= len(compressed),
            f"{len(done)} replacements for {len(compressed)} compressed layers")
    for r in done:
        layer = layers.get(r.name + ".weight")
        if layer is None:
            continue          # a split tensor's views
        if r.name in expect:
            c.check(r.structured == (expect[r.name] == "structured"),
                    f"{r.name} ({r.method}): ran {'structured' if r.structured else 'rebuilt'} "
                    f"({r.why or 'its parts'}), expected {expect[r.name]}")
        if layer["method"] in FACTORED and r.structured:
            params = sum(p.numel() for p in r.module.parameters())
            bias = layer["shape"][0] if (r.name + ".bias") in tensors else 0
            want_params = layer["predicted"]["params"] + bias
            c.check(params == want_params,
                    f"{r.name} ({layer['method']}): {params} parameters in its modules, the "
                    f"plan's {layer['predicted']['params']} + {bias} of bias")


def cmd_compare(parts, dense, expect=""):
    c = Checker("torchcheck")
    tensors, metadata = rt.read_safetensors(parts)
    plan = json.loads(metadata["rankscope_plan"])
    net_dense, net_parts = Zoo(), Zoo()
    net_dense.load_state_dict(read_dense(dense), strict=True)
    done = rt.load(net_parts, parts)
    net_dense.eval()
    net_parts.eval()
    pins = dict(e.split("=") for e in expect.split(",") if e)
    compare(c, net_dense, net_parts, zoo_input(), done, plan, tensors, pins)
    for name in pins:
        compressed = any(l["name"] == name + ".weight" and l["method"] != "dense"
                         for l in plan["layers"])
        c.check(any(r.name == name for r in done) == compressed,
                f"{name}: replaced iff the plan compresses it")
    return c.done()


def cmd_samples(parts, dense):
    import digits_models as dm
    c = Checker("torchcheck")
    tensors, metadata = rt.read_safetensors(parts)
    plan = json.loads(metadata["rankscope_plan"])
    kind = metadata["model"]
    net_dense, net_parts = dm.MODELS[kind](), dm.MODELS[kind]()
    net_dense.load_state_dict(read_dense(dense), strict=True)
    done = rt.load(net_parts, parts)
    net_dense.eval()
    net_parts.eval()
    _, x_test, _, y_test = dm.load_split()
    compare(c, net_dense, net_parts, x_test, done, plan, tensors, {})
    a_dense = dm.accuracy(net_dense, x_test, y_test)
    a_parts = dm.accuracy(net_parts, x_test, y_test)
    c.check(a_dense == a_parts, f"{kind}: accuracy {a_parts:.4f} through the parts, "
            f"{a_dense:.4f} through --dense")
    print(f"accuracy {kind} {a_parts:.4f}")
    return c.done()


def damaged(parts, out_dir):
    """Copies of PARTS broken one way each: {name: (path, what the error
    must say)}; header edits keep the data section as it is."""
    import struct
    blob = open(parts, "rb").read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header, data = json.loads(blob[8:8 + n]), blob[8 + n:]
    cases = {}

    def put(name, raw):
        path = os.path.join(out_dir, name + ".safetensors")
        with open(path, "wb") as f:
            f.write(raw)
        return path

    def with_header(name, h):
        text = json.dumps(h).encode()
        text += b" " * (-(8 + len(text)) % 8)
        return put(name, struct.pack("<Q", len(text)) + text + data)

    cases["truncated"] = (put("truncated", blob[: len(blob) // 2]), "beyond the file's end")
    cases["header"] = (put("header", blob[:8] + b"{not json" + blob[17:]), "header is not JSON")
    a = next(k for k in header if k.endswith(".lowrank.A"))
    h = json.loads(json.dumps(header))
    h[a]["shape"] = h[a]["shape"][::-1]          # the same bytes, transposed
    cases["shape"] = (with_header("shape", h), a + ": shape")
    b = next(k for k in header if k.endswith(".lowrank.B"))
    h = {(k[:-1] + "X" if k == b else k): v for k, v in header.items()}
    cases["missing"] = (with_header("missing", h), b + ": missing")
    return cases


def cmd_hostile(parts, out_dir):
    """Damaged copies of a parts file: load() refuses each with a
    CompressedError naming the file, or the tensor, and the problem."""
    c = Checker("torchcheck")
    for name, (path, says) in damaged(parts, out_dir).items():
        try:
            rt.load(Zoo(), path)
            c.check(False, f"{name}: loaded")
        except rt.CompressedError as e:
            msg = str(e)
            c.check(says in msg, f"{name}: '{says}' in '{msg}'")
            c.check(msg.startswith(path + ": "), f"{name}: names the file: {msg}")
        except Exception as e:     # anything else is a crash, not a refusal
            c.check(False, f"{name}: {type(e).__name__}: {e}")
    return c.done()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"make": cmd_make, "compare": cmd_compare, "samples": cmd_samples,
          "hostile": cmd_hostile}.get(cmd)
    if fn is None:
        sys.exit(f"torchcheck.py: unknown command {cmd}")
    return fn(*args)


if __name__ == "__main__":
    sys.exit(main())
