#!/usr/bin/python3
"""make-torch.py DIR — fixtures for tests/cli-torch.sh, written by torch.save.

    make-torch.py DIR          the checkpoints below, in DIR
    make-torch.py --seeds DIR  small seeds for the fuzz corpus (fuzz-torch.c)

In DIR, all from one small network (Conv2d, BatchNorm2d, Embedding, Linear,
LayerNorm) whose state_dict also holds a float16 and a bfloat16 matrix, a
transposed view saved as itself (not contiguous), an expanded view (stride
0), a slice with a storage offset, two slices of one storage and a second
name for one tensor (tied weights):

  model.pt     torch.save(state_dict)
  model-p4.pt  the same with pickle_protocol=4 (FRAME, MEMOIZE, STACK_GLOBAL)
  ckpt.pt      {"epoch": 3, "model": state_dict, "optimizer": Adam's
               state_dict after one step}
  wrapped.pt   {"state_dict": state_dict}
  deflated.pt  model.pt zipped again with ZIP_DEFLATED
  module.pt    torch.save(the module itself)
  legacy.pt    torch.save(..., _use_new_zipfile_serialization=False)
  twin.safetensors  the same tensors (C order) by checklib.py's safetensors
               writer (our own), bfloat16 through a uint16 view
  order.txt    the state_dict's keys in its order, one a line

and under DIR/hostile/ broken checkpoints: pickles made by Python's own
pickler the way torch.save makes them (same opcodes, same persistent ids),
with one thing wrong each, in a zip laid out as torch.save lays it out.
hostile/expected.txt lists each file and a piece of the message it must
give.
"""
import collections
import copy
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import write_safetensors  # noqa: E402

ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
            torch.float64: "F64", torch.int64: "I64"}


def network():
    torch.manual_seed(11)
    return torch.nn.Sequential(collections.OrderedDict([
        ("conv", torch.nn.Conv2d(3, 8, 3)),
        ("bn", torch.nn.BatchNorm2d(8)),
        ("emb", torch.nn.Embedding(20, 12)),
        ("fc", torch.nn.Linear(12, 10)),
        ("norm", torch.nn.LayerNorm(10)),
    ]))


def state_dict(net):
    sd = net.state_dict()
    g = torch.Generator().manual_seed(5)
    sd["half"] = torch.randn(6, 5, generator=g).half()
    sd["brain"] = torch.randn(5, 7, generator=g).bfloat16()
    sd["transposed"] = torch.randn(6, 9, generator=g).t()            # stride (1, 9)
    sd["expanded"] = torch.randn(1, 5, generator=g).expand(4, 5)     # stride (0, 1)
    sd["slice"] = torch.randn(10, 8, generator=g)[3:7]                # offset 24
    shared = torch.randn(12, 6, generator=g)
    sd["tied_a"] = shared[:6]
    sd["tied_b"] = shared[6:]                                         # one storage
    sd["head.weight"] = sd["emb.weight"]                              # one tensor
    assert not sd["transposed"].is_contiguous()
    assert sd["slice"].storage_offset() == 24
    assert sd["tied_a"].storage().data_ptr() == sd["tied_b"].storage().data_ptr()
    return sd


def safetensors_twin(path, tensors):
    """tensors (a state_dict) through checklib's writer, C order; bfloat16,
    which numpy lacks, as its uint16 bit patterns."""
    def bits(t):
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        return t.numpy()
    write_safetensors(path, [(name, ST_DTYPE[t.dtype], bits(t)) for name, t in tensors.items()])


def rezip(src, dst, method):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", method) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


def optimizer_state(net):
    twin = copy.deepcopy(net)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    for p in twin.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return opt.state_dict()


# ---- hand-made pickles, pickled the way torch.save pickles -------------------

class Storage:
    """A storage reference: pickled as torch's persistent id."""

    def __init__(self, key, numel, cls=None):
        self.key, self.numel = key, numel
        self.cls = cls if cls is not None else torch.FloatStorage


class View:
    """A tensor: pickled as a _rebuild_tensor_v2 call."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False,
                     collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def pickled(obj, protocol=2):
    buf = io.BytesIO()
    Pickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def torch_zip(path, pkl, storages, archive="archive", extra=None):
    """An archive laid out as torch.save writes it (stored entries)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(archive + "/data.pkl", pkl)
        for key, raw in storages.items():
            z.writestr(archive + "/data/" + key, raw)
        z.writestr(archive + "/version", "3\n")
        for name, raw in (extra or {}).items():
            z.writestr(archive + "/" + name, raw)


def floats(n):
    return struct.pack("<%df" % n, *[(i % 7) - 3.0 for i in range(n)])


def deep_lists(depth):
    top = cur = []
    for _ in range(depth):
        nxt = []
        cur.append(nxt)
        cur = nxt
    return top


def hostile(d, model_pt):
    os.makedirs(d, exist_ok=True)
    expected = []

    def case(name, want):
        expected.append("%s\t%s" % (name, want))
        return os.path.join(d, name)

    raw = open(model_pt, "rb").read()
    with zipfile.ZipFile(model_pt) as z:
        names = z.namelist()
        pkl_name = [n for n in names if n.endswith("/data.pkl")][0]
        pkl = z.read(pkl_name)
        entries = {n: z.read(n) for n in names}

    # data.pkl's entry cut in half (a well-formed zip around it)
    with zipfile.ZipFile(case("cut-pickle.pt", "data.pkl"), "w") as z:
        for n, b in entries.items():
            z.writestr(n, b[:len(b) // 2] if n == pkl_name else b)
    # the file itself cut short
    open(case("cut-file.pt", "cut-file.pt: "), "wb").write(raw[:len(raw) * 2 // 3])
    # one storage entry missing
    with zipfile.ZipFile(case("no-storage.pt", "has no entry"), "w") as z:
        for n, b in entries.items():
            if not n.endswith("/data/0"):
                z.writestr(n, b)

    one = {"0": floats(12)}
    torch_zip(case("numel.pt", "declares 100 elements of F32 (400 bytes)"),
              pickled({"w": View(Storage("0", 100), 0, (3, 4), (4, 1))}), one)
    torch_zip(case("past.pt", "reaches element 16 of storage '0', which holds 12"),
              pickled({"w": View(Storage("0", 12), 0, (4, 4), (4, 1))}), one)
    torch_zip(case("offset.pt", "reaches element 13"),
              pickled({"w": View(Storage("0", 12), 1, (3, 4), (4, 1))}), one)
    torch_zip(case("stride.pt", "reaches element 18"),
              pickled({"w": View(Storage("0", 12), 0, (3, 4), (7, 1))}), one)
    torch_zip(case("retyped.pt", "storage '0' is declared again"),
              pickled({"a": View(Storage("0", 12), 0, (3, 4), (4, 1)),
                       "b": View(Storage("0", 6, torch.DoubleStorage), 0, (6,), (1,))}), one)
    # INST (protocol 0) and a global that runs a command
    torch_zip(case("inst.pt", "opcode INST ('i') at byte 3"),
              b"\x80\x02(i__main__\nNet\n}b.", one)
    torch_zip(case("system.pt", "data.pkl refers to os.system"),
              b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.", one)
    torch_zip(case("stack-global.pt", "data.pkl refers to builtins.eval"),
              b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.", one)
    torch_zip(case("numpy.pt", "data.pkl refers to numpy.core.multiarray._reconstruct"),
              pickled({"w": np.zeros(3)}), one)
    # nesting: the stack, the marks, the tree
    torch_zip(case("deep-stack.pt", "values on the pickle stack"),
              b"\x80\x02" + b"]" * 70000 + b".", one)
    torch_zip(case("deep-marks.pt", "open MARKs"), b"\x80\x02" + b"(" * 2000 + b".", one)
    torch_zip(case("deep-tree.pt", "nested more than 64 deep"),
              pickled({"w": View(Storage("0", 12), 0, (3, 4), (4, 1)),
                       "cfg": deep_lists(100)}), one)
    cycle = []
    cycle.append(cycle)
    torch_zip(case("cycle.pt", "one that holds itself"),
              pickled({"w": View(Storage("0", 12), 0, (3, 4), (4, 1)), "c": cycle}), one)
    # one dict of 1000 tensors 1000 times over: a million names from 60 KB
    shared = {str(i): View(Storage("0", 12), 0, (3, 4), (4, 1)) for i in range(1000)}
    torch_zip(case("shared.pt", "more tensor names than its"), pickled([shared] * 1000), one)
    torch_zip(case("memo.pt", "memo index 2147483647 is out of range"),
              b"\x80\x02}r\xff\xff\xff\x7f.", one)
    torch_zip(case("memo-get.pt", "reads memo entry 9"), b"\x80\x02}h\x09.", one)
    torch_zip(case("huge-string.pt", "declares 4294967295 bytes"),
              b"\x80\x02X\xff\xff\xff\xff", one)
    torch_zip(case("no-stop.pt", "without a STOP"), pickled({"a": 1})[:-1], one)
    torch_zip(case("trailing.pt", "bytes after the STOP"), pickled({"a": 1}) + b"xyz", one)
    torch_zip(case("protocol.pt", "pickle protocol 1"), b"\x80\x01}.", one)
    torch_zip(case("empty.pt", "holds no tensors"), pickled({"epoch": 3}), one)
    torch_zip(case("big-endian.pt", "big-endian"),
              pickled({"w": View(Storage("0", 12), 0, (3, 4), (4, 1))}), one,
              extra={"byteorder": "big"})
    torch_zip(case("script.pt", "TorchScript"), pkl, {}, extra={"constants.pkl": b"",
                                                               "code/m.py": b""})
    with zipfile.ZipFile(case("two.pt", "two checkpoints in one archive"), "w") as z:
        for a in ("a", "b"):
            z.writestr(a + "/data.pkl", pickled({"x": 1}))
    with open(os.path.join(d, "expected.txt"), "w") as f:
        f.write("\n".join(expected) + "\n")


def seeds(d):
    """Small real torch.save outputs and hand-made variants."""
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    small = collections.OrderedDict([
        ("fc.weight", torch.randn(3, 4, generator=g)),
        ("fc.bias", torch.randn(3, generator=g)),
        ("steps", torch.tensor(7)),
    ])
    views = {"t": torch.randn(3, 2, generator=g).t(), "e": torch.randn(1, 3, generator=g).expand(2, 3),
             "h": torch.randn(2, 2, generator=g).half(), "b": torch.randn(2, 3, generator=g).bfloat16()}
    for name, obj, proto in [("state", small, 2), ("state-p4", small, 4), ("state-p5", small, 5),
                             ("views", views, 2),
                             ("ckpt", {"epoch": 3, "lr": 0.5, "model": small,
                                       "optimizer": {"state": {0: {"step": torch.tensor(1.0)}},
                                                     "param_groups": [{"lr": 0.1, "params": [0]}]}},
                                      2),
                             ("nested", {"a": [small["fc.bias"], (small["steps"],)],
                                         "b": {"c": small["fc.weight"]}, "n": None}, 2),
                             ("param", {"p": torch.nn.Parameter(torch.randn(2, 2, generator=g))}, 2)]:
        path = os.path.join(d, "seed-" + name)
        torch.save(obj, path, pickle_protocol=proto)
    rezip(os.path.join(d, "seed-state"), os.path.join(d, "seed-deflated"), zipfile.ZIP_DEFLATED)
    # torch 2.x's _rebuild_tensor_v3 of an UntypedStorage (this torch cannot
    # write it; the opcodes are those its pickler emits)
    v3 = (b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v3\n((X\x07\x00\x00"
          b"\x00storagectorch\nUntypedStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK0tQK\x00"
          b"K\x03K\x04\x86K\x04K\x01\x86\x89ccollections\nOrderedDict\n)Rctorch\nfloat8_e4m3fn\n"
          b"tRs.")
    torch_zip(os.path.join(d, "seed-v3"), v3, {"0": floats(12)})
    # data.pkl alone: fuzz-torch.c puts what is not a zip in an archive
    for name in ("state", "state-p4", "views", "ckpt", "nested", "param"):
        with zipfile.ZipFile(os.path.join(d, "seed-" + name)) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
            open(os.path.join(d, "seed-pkl-" + name), "wb").write(z.read(pkl))
    open(os.path.join(d, "seed-pkl-v3"), "wb").write(v3)
    hostile(os.path.join(d, "tmp-hostile"), os.path.join(d, "seed-state"))
    for name in sorted(os.listdir(os.path.join(d, "tmp-hostile"))):
        src = os.path.join(d, "tmp-hostile", name)
        if name.endswith(".pt") and os.path.getsize(src) <= 16384:
            os.replace(src, os.path.join(d, "seed-hostile-" + name[:-3]))
    for name in os.listdir(os.path.join(d, "tmp-hostile")):
        os.remove(os.path.join(d, "tmp-hostile", name))
    os.rmdir(os.path.join(d, "tmp-hostile"))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        seeds(sys.argv[2])
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    net = network()
    sd = state_dict(net)
    torch.save(sd, os.path.join(out, "model.pt"))
    torch.save(sd, os.path.join(out, "model-p4.pt"), pickle_protocol=4)
    torch.save({"epoch": 3, "model": sd, "optimizer": optimizer_state(net)},
               os.path.join(out, "ckpt.pt"))
    torch.save({"state_dict": sd}, os.path.join(out, "wrapped.pt"))
    rezip(os.path.join(out, "model.pt"), os.path.join(out, "deflated.pt"), zipfile.ZIP_DEFLATED)
    torch.save(net, os.path.join(out, "module.pt"))
    torch.save(sd, os.path.join(out, "legacy.pt"), _use_new_zipfile_serialization=False)
    safetensors_twin(os.path.join(out, "twin.safetensors"), sd)
    with open(os.path.join(out, "order.txt"), "w") as f:
        f.write("\n".join(sd.keys()) + "\n")
    with zipfile.ZipFile(os.path.join(out, "deflated.pt")) as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    hostile(os.path.join(out, "hostile"), os.path.join(out, "model.pt"))


if __name__ == "__main__":
    main()
