"""What the independent checkers (plancheck.py, familycheck.py) and the
fixture writers (make-*.py, gguf-check.py, layercheck.py) share: a check
counter, a safetensors reader and writer, written from the safetensors
format (an 8-byte little-endian header length, UTF-8 JSON, the data), not
from rankscope's code.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {  # name -> (numpy dtype, bits)
    "F64": ("<f8", 64), "F32": ("<f4", 32), "F16": ("<f2", 16), "BF16": ("bf16", 16),
    "U8": ("<u1", 8), "I8": ("<i1", 8), "U16": ("<u2", 16), "I16": ("<i2", 16),
    "U32": ("<u4", 32), "I32": ("<i4", 32), "U64": ("<u8", 64), "I64": ("<i8", 64),
    "BOOL": ("<u1", 8),
}
FLOATS = ("F64", "F32", "F16", "BF16")


class Checker:
    """Counts checks; a failed one prints "FAIL: ..." on stderr."""

    def __init__(self, name):
        self.name = name
        self.checks = 0
        self.failures = 0

    def check(self, ok, what):
        self.checks += 1
        if not ok:
            self.failures += 1
            print(f"FAIL: {what}", file=sys.stderr)
        return ok

    def close(self, got, want, tol, what):
        ok = (isinstance(got, (int, float)) and not isinstance(got, bool)
              and abs(got - want) <= tol * max(1.0, abs(want)))
        return self.check(ok, f"{what}: got {got!r}, expected {want!r}")

    def done(self):
        print(f"{self.name}: {self.checks} checks, {self.failures} failed")
        return 1 if self.failures else 0


def safetensors_dtype(a):
    """The safetensors dtype name of a numpy array's dtype (BF16 has none in
    numpy: pass such tensors as (name, "BF16", uint16 bits) instead)."""
    if a.dtype == np.bool_:
        return "BOOL"
    for name, (kind, _) in DTYPES.items():
        if kind != "bf16" and np.dtype(kind) == a.dtype:
            return name
    raise ValueError(f"no safetensors dtype for numpy {a.dtype}")


def write_safetensors(path, tensors, metadata=None):
    """A safetensors file from the format's definition: tensors is a list of
    (name, dtype name, numpy array already in that dtype), in file order, or
    a dict name -> numpy array (dtype from the array, safetensors_dtype)."""
    if isinstance(tensors, dict):
        tensors = [(k, safetensors_dtype(a), a) for k, a in tensors.items()]
    header, offset, blobs = {"__metadata__": metadata or {}}, 0, []
    for name, dtype, a in tensors:
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def natural_cmp(a, b):
    """rankscope's order of tensor names (model.h): runs of digits compare
    by value (leading zeros ignored, then the shorter run first), all else
    by byte; "layers.9" before "layers.10"."""
    a, b = a.encode(), b.encode()
    i = j = 0
    digit = lambda c: 48 <= c <= 57
    while i < len(a) and j < len(b):
        if digit(a[i]) and digit(b[j]):
            i0, j0 = i, j
            while i < len(a) and digit(a[i]):
                i += 1
            while j < len(b) and digit(b[j]):
                j += 1
            x, y = a[i0:i].lstrip(b"0"), b[j0:j].lstrip(b"0")
            if (len(x), x) != (len(y), y):
                return -1 if (len(x), x) < (len(y), y) else 1
            continue
        if a[i] != b[j]:
            return -1 if a[i] < b[j] else 1
        i += 1
        j += 1
    return (len(a) - i > 0) - (len(b) - j > 0)


def natural_order(names):
    """Names in rankscope's order for files without a network order."""
    import functools
    return sorted(names, key=functools.cmp_to_key(
        lambda x, y: natural_cmp(x, y) or (x > y) - (x < y)))


class SafeTensors:
    """A safetensors file: header entries in file order, metadata, bytes."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.blob = f.read()
        (n,) = struct.unpack_from("<Q", self.blob, 0)
        self.header_len = n
        self.header_bytes = self.blob[8:8 + n]

        # object_pairs_hook keeps the order and refuses duplicate names
        def pairs(items):
            keys = [k for k, _ in items]
            if len(keys) != len(set(keys)):
                raise ValueError(f"{path}: duplicate key in the header")
            return dict(items)
        header = json.loads(self.header_bytes.decode("utf-8"), object_pairs_hook=pairs)
        self.metadata = header.pop("__metadata__", {})
        self.entries = header            # name -> {dtype, shape, data_offsets}
        # the order rankscope gives them: safetensors has no network order
        self.order = natural_order(header)
        self.data = self.blob[8 + n:]

    def raw(self, name):
        b, e = self.entries[name]["data_offsets"]
        return self.data[b:e]

    def values(self, name):
        """The tensor in its own dtype (floats as float64), stored shape."""
        info = self.entries[name]
        kind = DTYPES[info["dtype"]][0]
        raw = self.raw(name)
        if kind == "bf16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=kind)
        if info["dtype"] in FLOATS:
            a = a.astype(np.float64)
        return a.reshape(info["shape"])

    def array(self, name):
        """The tensor as float64, in its stored shape."""
        return self.values(name).astype(np.float64)

    def is_layer(self, name):
        info = self.entries[name]
        return (info["dtype"] in FLOATS and len(info["shape"]) in (2, 4)
                and int(np.prod(info["shape"])) > 0)
