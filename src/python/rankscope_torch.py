"""rankscope_torch — run a model compressed by `rankscope apply` in PyTorch.

    import rankscope_torch

    net = MyNet()                     # the uncompressed architecture, any nn.Module
    done = rankscope_torch.load(net, "net.compressed.safetensors")
    net.eval()
    y = net(x)                        # runs the compressed layers as they are stored

`rankscope apply PLAN MODEL -o OUT` writes each compressed layer as the
parts of its method and the plan itself in the file's metadata
(rankscope-plan(5), COMPRESSED MODELS).  load() reads both, replaces each
compressed nn.Linear, nn.Conv1d and nn.Conv2d of `net` by the modules its
method needs, fills them from the parts, and loads every other tensor
(biases, layers kept dense, buffers) as a state_dict:

  lowrank         two linears, or two convolutions split by the plan's fold
                  (the first k x k, 1 x k or k x 1, the second 1 x 1, k x 1 ...)
  grouped (ALDS)  a grouped convolution (a grouped 1x1 convolution for a
                  linear layer) followed by a 1x1 convolution
  tucker2         three convolutions (three linears): 1x1, the core, 1x1
  cp              1x1, a depthwise vertical and a depthwise horizontal
                  convolution, 1x1 (two linears for a linear layer)
  tt              a chain of core contractions (linear layers)
  prune           a sparse matrix product (linear layers)
  prune-rows      a smaller layer whose outputs are scattered into place
  prune-cols      the kept inputs gathered, then a smaller layer
  quant           the codes and their levels, dequantised at each call
  combinations    the sum of their parts' branches, one bias

Where a method's structure does not fit the module (a grouped or 'same'
padded convolution, a non-zero padding mode, channel groups that straddle
channels, a TT or column-pruned kernel), the layer is run as its weight
rebuilt from the parts at each call: the same numbers, without the
savings in compute.  load() returns one Replacement per layer saying which
it did, so nothing is silent.

The values are those of the file (F16 and BF16 parts are exact in the
module's dtype, F32 by default); the outputs equal those of the model
loaded from `rankscope apply --dense` up to the rounding of the
float arithmetic.  Composed layers (--compose) have no module of their
own and are refused; load the --dense file of another plan, or plan them
dense.

rebuild(tensors, plan) gives the state_dict with every compressed weight
rebuilt instead, for code that wants plain weights; read_safetensors()
reads any safetensors file without the safetensors package.

Needs torch and numpy (Debian: python3-torch, python3-numpy).
"""

import json
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["load", "rebuild", "layer_weight", "read_safetensors", "Replacement",
           "CompressedError"]


class CompressedError(ValueError):
    """A file, a plan or a module that does not fit: the message names it."""


# ---- the file ----------------------------------------------------------------------

_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8",
          "BOOL": "?"}


def _to_torch(array, dtype):
    """A numpy array as a torch tensor; BF16 (no numpy type) from its bits,
    and the unsigned integers torch lacks widened to int64."""
    if dtype == "BF16":
        bits = array.astype(np.int32) << 16
        return torch.from_numpy(bits.view(np.float32).copy()).to(torch.bfloat16)
    if array.dtype.kind == "u" and array.dtype.itemsize > 1:
        array = array.astype(np.int64)
    return torch.from_numpy(array.copy())


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file: tensors a dict in header
    order, metadata the __metadata__ strings."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise CompressedError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack_from("<Q", data, 0)
    if 8 + n > len(data):
        raise CompressedError(f"{path}: header of {n} bytes beyond the file's end")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompressedError(f"{path}: header is not JSON: {e}") from None
    metadata = header.pop("__metadata__", {}) or {}
    base, tensors = 8 + n, {}
    for name, info in header.items():
        dtype, shape = info["dtype"], info["shape"]
        begin, end = info["data_offsets"]
        if base + end > len(data) or begin > end:
            raise CompressedError(f"{path}: tensor '{name}': data beyond the file's end")
        if dtype not in _NUMPY and dtype != "BF16":
            raise CompressedError(f"{path}: tensor '{name}': dtype {dtype} not read here")
        dt = np.dtype("<u2" if dtype == "BF16" else _NUMPY[dtype])
        count = int(np.prod(shape)) if shape else 1
        if count * dt.itemsize != end - begin:
            raise CompressedError(f"{path}: tensor '{name}': {end - begin} bytes for "
                                  f"{dtype} {shape}")
        array = np.frombuffer(data, dtype=dt, count=count, offset=base + begin)
        tensors[name] = _to_torch(array.reshape(shape), dtype)
    return tensors, metadata


def plan_of(metadata, path="the file"):
    """The plan apply stored in the metadata."""
    if "rankscope_plan" not in metadata:
        raise CompressedError(f"{path}: no rankscope_plan in its metadata: not written by "
                              "rankscope apply")
    return json.loads(metadata["rankscope_plan"])


# ---- layouts (rankscope-plan(5)) ----------------------------------------------------

def quant_width(layer):
    """Bits per code: binary 1, ternary 2, the others the plan's bits."""
    return {"binary": 1, "ternary": 2}.get(layer["quantizer"], layer["bits"])


def kernel4(layer):
    """(f, c, kh, kw) of a kernel (a Conv1d's (f, c, k) is (f, c, k, 1)),
    None for a linear layer."""
    shape = layer["shape"]
    if len(shape) == 4:
        return tuple(shape)
    if len(shape) == 3:
        return tuple(shape) + (1,)
    return None


def unfold(m, layer, fold=None):
    """The kernel (in the tensor's shape) whose folded matrix under `fold`
    (the plan's by default) is m; a linear layer's matrix is its weight.
    Folds: 0: f x (c kh kw), 1: (f kh) x (c kw), 2: (f kw) x (c kh),
    3: (f kh kw) x c, first-named index slowest."""
    k = kernel4(layer)
    if k is None:
        return m
    f, c, kh, kw = k
    fold = layer["fold"] if fold is None else fold
    if fold == 0:
        w = m.reshape(f, c, kh, kw)
    elif fold == 1:
        w = m.reshape(f, kh, c, kw).permute(0, 2, 1, 3)
    elif fold == 2:
        w = m.reshape(f, kw, c, kh).permute(0, 2, 3, 1)
    elif fold == 3:
        w = m.reshape(f, kh, kw, c).permute(0, 3, 1, 2)
    else:
        raise CompressedError(f"{layer['name']}: unknown fold {fold!r}")
    return w.reshape(layer["shape"])


def _bits(packed, count):
    """The first count bits of a little-endian bit stream (bit t of byte y
    is bit 8 y + t), as int64 0/1."""
    b = (packed.to(torch.int64).reshape(-1, 1) >> torch.arange(8)) & 1
    b = b.reshape(-1)
    if b.numel() < count:
        raise CompressedError(f"{count} bits needed, {b.numel()} stored")
    return b[:count]


def _part(parts, name, shape=None):
    """A part as float64, its shape checked when given."""
    if name not in parts:
        raise CompressedError(f"{name}: missing from the file")
    t = parts[name]
    if shape is not None and list(t.shape) != list(shape):
        raise CompressedError(f"{name}: shape {list(t.shape)}, expected {list(shape)}")
    return t.double()


def sparse_matrix(parts, layer):
    """A sparse part as its dense matrix (rows x cols): a bitmap of the
    tensor's positions, or CSR over the matrix."""
    name, (rows, cols) = layer["name"], layer["matrix"]
    values = _part(parts, name + ".sparse.values")
    if name + ".sparse.bitmap" in parts:
        mask = _bits(parts[name + ".sparse.bitmap"], rows * cols).bool()
        if int(mask.sum()) != values.numel():
            raise CompressedError(f"{name}: the bitmap marks {int(mask.sum())} positions for "
                                  f"{values.numel()} values")
        w = torch.zeros(rows * cols, dtype=torch.float64)
        w[mask] = values
        return _fold_tensor(w.reshape(layer["shape"]), layer)
    ptr = parts[name + ".sparse.row_ptr"].to(torch.int64)
    col = parts[name + ".sparse.col"].to(torch.int64)
    if ptr.numel() != rows + 1 or int(ptr[-1]) != values.numel() or col.numel() != values.numel():
        raise CompressedError(f"{name}: CSR of {ptr.numel()} row pointers and "
                              f"{col.numel()} columns for {values.numel()} values")
    row = torch.repeat_interleave(torch.arange(rows), ptr[1:] - ptr[:-1])
    m = torch.zeros(rows, cols, dtype=torch.float64)
    m[row, col] = values
    return m


def _fold_tensor(t, layer):
    """The layer's matrix of a tensor in its own shape (the inverse of unfold)."""
    k = kernel4(layer)
    rows, cols = layer["matrix"]
    if k is None:
        return t.reshape(rows, cols)
    f, c, kh, kw = k
    t = t.reshape(f, c, kh, kw)
    fold = layer["fold"]
    perm = {0: (0, 1, 2, 3), 1: (0, 2, 1, 3), 2: (0, 3, 1, 2), 3: (0, 2, 3, 1)}[fold]
    return t.permute(*perm).reshape(rows, cols)


def quant_levels(parts, layer):
    """A quantised part's levels: spelt out (k-means, refined), or from the
    F32 grid (offset + k step, in float64; a row per matrix row for
    uniform-channel) or scale (binary -a, a; ternary -a, 0, a)."""
    name, q = layer["name"], layer["quantizer"]
    n = 2 ** quant_width(layer)
    if name + ".quant.codebook" in parts:
        return _part(parts, name + ".quant.codebook")
    if name + ".quant.grid" in parts:
        g = _part(parts, name + ".quant.grid").reshape(-1, 2)
        book = g[:, :1] + torch.arange(n, dtype=torch.float64) * g[:, 1:]
        return book if q == "uniform-channel" else book[0]
    a = float(_part(parts, name + ".quant.scale", [1])[0])
    return torch.tensor([-a, a] if q == "binary" else [-a, 0.0, a, 0.0], dtype=torch.float64)


def quant_matrix(parts, layer):
    """A quantised part as its matrix: each code's level."""
    name, (rows, cols) = layer["name"], layer["matrix"]
    width = quant_width(layer)
    b = _bits(parts[name + ".quant.codes"], rows * cols * width).reshape(-1, width)
    codes = (b << torch.arange(width)).sum(dim=1).reshape(layer["shape"])
    codes = _fold_tensor(codes, layer).long()
    book = quant_levels(parts, layer)
    if book.dim() == 2:
        return torch.gather(book, 1, codes)
    return book[codes]


def lowrank_factors(parts, layer):
    """(B, A) of a low-rank part: B A is the layer's matrix."""
    name, (rows, cols), r = layer["name"], layer["matrix"], layer["rank"]
    return (_part(parts, name + ".lowrank.B", [rows, r]),
            _part(parts, name + ".lowrank.A", [r, cols]))


def tt_matrix(parts, layer):
    """W(i, j) = core_0[:, i_1, j_1, :] ... core_(d-1)[:, i_d, j_d, :], row and
    column indices mixed-radix with the first mode most significant."""
    name, tt = layer["name"], layer["tt"]
    ranks, mm, nn_ = tt["ranks"], tt["rows"], tt["cols"]
    x = torch.ones(1, 1, 1, dtype=torch.float64)
    for k in range(len(mm)):
        core = _part(parts, f"{name}.tt.{k}", [ranks[k], mm[k], nn_[k], ranks[k + 1]])
        a, b, _ = x.shape
        x = torch.einsum("abr,rijs->aibjs", x, core).reshape(a * mm[k], b * nn_[k],
                                                              ranks[k + 1])
    return x[:, :, 0]


def layer_weight(parts, layer):
    """The weight of one compressed layer rebuilt from its parts, in its
    tensor's shape, float64."""
    method, name = layer["method"], layer["name"]
    rows, cols = layer["matrix"]
    k = kernel4(layer)
    if method == "tucker2":
        r_out, r_in = layer["ranks"]
        f, c, kh, kw = k if k else (rows, cols, 1, 1)
        tail = [1, 1] if k else []
        first = _part(parts, name + ".tucker.first", [r_in, c] + tail).reshape(r_in, c)
        core = _part(parts, name + ".tucker.core", [r_out, r_in] + ([kh, kw] if k else []))
        last = _part(parts, name + ".tucker.last", [f, r_out] + tail).reshape(f, r_out)
        if not k:
            return last @ core @ first
        return torch.einsum("oj,jlyx,li->oiyx", last, core, first).reshape(layer["shape"])
    if method == "cp" and k:
        f, c, kh, kw = k
        r = layer["rank"]
        first = _part(parts, name + ".cp.first", [r, c, 1, 1])[:, :, 0, 0]
        vertical = _part(parts, name + ".cp.vertical", [r, 1, kh, 1])[:, 0, :, 0]
        horizontal = _part(parts, name + ".cp.horizontal", [r, 1, 1, kw])[:, 0, 0, :]
        last = _part(parts, name + ".cp.last", [f, r, 1, 1])[:, :, 0, 0]
        return torch.einsum("or,ri,ry,rx->oiyx", last, first, vertical,
                            horizontal).reshape(layer["shape"])
    if method == "cp":
        r = layer["rank"]
        return _part(parts, name + ".cp.last", [rows, r]) @ _part(parts, name + ".cp.first",
                                                                  [r, cols])
    if method == "grouped":
        g, r = layer["groups"], layer["rank"]
        a = _part(parts, name + ".grouped.A", [g, r, cols // g])
        b = _part(parts, name + ".grouped.B", [g, rows, r])
        return unfold(torch.cat([b[i] @ a[i] for i in range(g)], dim=1), layer)
    if method == "tt":
        return unfold(tt_matrix(parts, layer), layer)
    if method in ("prune-rows", "prune-cols"):
        m = torch.zeros(rows, cols, dtype=torch.float64)
        values = _part(parts, name + ".channels.values")
        side = rows if method == "prune-rows" else cols
        index = _bits(parts[name + ".channels.bitmap"], side).nonzero().reshape(-1)
        if method == "prune-rows":
            m[index, :] = values
        else:
            m[:, index] = values
        return unfold(m, layer)
    m = None
    if method.startswith("lowrank"):
        b, a = lowrank_factors(parts, layer)
        m = b @ a
    if "sparse" in method or method == "prune":
        s = sparse_matrix(parts, layer)
        m = s if m is None else m + s
    if "quant" in method:
        q = quant_matrix(parts, layer)
        m = q if m is None else m + q
    if m is None:
        raise CompressedError(f"{name}: unknown method {method!r}")
    return unfold(m, layer)


def layer_parts(tensors, layer):
    """The tensors of one compressed layer (NAME.something)."""
    prefix = layer["name"] + "."
    return {k: v for k, v in tensors.items() if k.startswith(prefix)}


def rebuild(tensors, plan):
    """The state_dict with each compressed layer's weight rebuilt from its
    parts (float32, the tensor's shape, its own name) and the parts gone.
    Composed layers are left as their parts (they have no tensor)."""
    state = dict(tensors)
    for layer in plan["layers"]:
        if layer["method"] == "dense" or "factors" in layer:
            continue
        parts = layer_parts(tensors, layer)
        w = layer_weight(parts, layer)
        for k in parts:
            state.pop(k, None)
        state[layer["name"]] = w.float().contiguous()
    return state


# ---- modules -------------------------------------------------------------------------

class Sum(nn.Module):
    """The sum of branches (no bias of their own), plus one bias on the
    channel dimension: the combinations, W = B A + S + Q."""

    def __init__(self, branches, bias, channel_dim):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.channel_dim = channel_dim

    def forward(self, x):
        y = sum(b(x) for b in self.branches)
        return _add_bias(y, self.bias, self.channel_dim)


def _add_bias(y, bias, channel_dim):
    """y + bias along the channel dimension (1 for a convolution, -1 for a
    linear layer)."""
    if bias is None:
        return y
    if channel_dim == -1:
        return y + bias.to(y.dtype)
    return y + bias.to(y.dtype).reshape([1, -1] + [1] * (y.dim() - 2))


def _channel_dim(module):
    return -1 if isinstance(module, nn.Linear) else 1


class Rebuilt(nn.Module):
    """A layer whose weight is rebuilt from its parts at each call (the
    parts are buffers; quantised codes are dequantised here), then run as
    the original module would run it (its stride, padding, groups, padding
    mode).  `method` says what the parts are."""

    def __init__(self, original, layer, parts, dtype, bias):
        super().__init__()
        self.method = layer["method"]
        self._layer = {k: layer[k] for k in layer if k != "predicted"}
        self._names = []
        for i, (k, v) in enumerate(sorted(parts.items())):
            self.register_buffer(f"part{i}", v.clone())
            self._names.append(k)
        self._dtype = dtype
        # the original's hyperparameters, without its weight
        self._conv = (_without_weight(original)
                      if isinstance(original, (nn.Conv1d, nn.Conv2d)) else None)
        self.bias = None if bias is None else nn.Parameter(bias.clone())

    def weight(self):
        parts = {k: getattr(self, f"part{i}") for i, k in enumerate(self._names)}
        return layer_weight(parts, self._layer).to(self._dtype)

    def forward(self, x):
        w = self.weight().to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        if self._conv is None:
            return F.linear(x, w, b)
        return self._conv._conv_forward(x, w, b)


def _without_weight(conv):
    """A copy of conv's hyperparameters only (its weight and bias dropped),
    kept for _conv_forward; not a submodule, so it adds no parameters."""
    clone = conv.__class__.__new__(conv.__class__)
    clone.__dict__ = {k: v for k, v in conv.__dict__.items()
                      if k not in ("_parameters", "_buffers", "_modules")}
    clone.__dict__["_parameters"], clone.__dict__["_buffers"] = {}, {}
    clone.__dict__["_modules"] = {}
    return _Hidden(clone)


class _Hidden:
    """Holds an object out of nn.Module's sight (no registration)."""

    def __init__(self, obj):
        self.obj = obj

    def _conv_forward(self, x, w, b):
        return self.obj._conv_forward(x, w, b)


class SparseLinear(nn.Module):
    """y = W x with W sparse (COO), for a pruned linear layer (or a
    combination's sparse branch)."""

    def __init__(self, matrix, bias):
        super().__init__()
        idx = matrix.nonzero().t()
        self.register_buffer("indices", idx.contiguous())
        self.register_buffer("values", matrix[idx[0], idx[1]].float())
        self.shape = tuple(matrix.shape)
        self.bias = None if bias is None else nn.Parameter(bias)

    def forward(self, x):
        w = torch.sparse_coo_tensor(self.indices, self.values.to(x.dtype), self.shape)
        flat = x.reshape(-1, x.shape[-1])
        y = torch.sparse.mm(w, flat.t()).t().reshape(*x.shape[:-1], self.shape[0])
        return y if self.bias is None else y + self.bias.to(x.dtype)


class RowScatter(nn.Module):
    """prune-rows: the kept outputs computed by `inner`, the dropped ones 0,
    plus the layer's bias on every output."""

    def __init__(self, inner, index, outputs, bias, channel_dim):
        super().__init__()
        self.inner = inner
        self.register_buffer("index", index)
        self.outputs = outputs
        self.bias = None if bias is None else nn.Parameter(bias)
        self.channel_dim = channel_dim

    def forward(self, x):
        y = self.inner(x)
        dim = self.channel_dim % y.dim()
        shape = list(y.shape)
        shape[dim] = self.outputs
        out = y.new_zeros(shape).index_copy(dim, self.index, y)
        return _add_bias(out, self.bias, self.channel_dim)


class ColumnGather(nn.Module):
    """prune-cols: the kept inputs (features, or channels of a kernel of
    fold 3) gathered, then `inner`."""

    def __init__(self, index, inner, channel_dim):
        super().__init__()
        self.register_buffer("index", index)
        self.inner = inner
        self.channel_dim = channel_dim

    def forward(self, x):
        return self.inner(x.index_select(self.channel_dim % x.dim(), self.index))


class TTLinear(nn.Module):
    """y = W x with W a TT-matrix: the cores contracted with x one at a
    time, never forming W."""

    def __init__(self, cores, rows, cols, bias):
        super().__init__()
        self.cores = nn.ParameterList([nn.Parameter(c) for c in cores])
        self.rows, self.cols = list(rows), list(cols)
        self.bias = None if bias is None else nn.Parameter(bias)

    def forward(self, x):
        lead = x.shape[:-1]
        batch = int(np.prod(lead)) if lead else 1
        # state (batch, rows so far, rank, remaining columns)
        t = x.reshape(batch, 1, 1, -1)
        for k, core in enumerate(self.cores):
            b, i, r, rest = t.shape
            t = t.reshape(b, i, r, self.cols[k], rest // self.cols[k])
            t = torch.einsum("birnR,rmns->bimsR", t, core.to(x.dtype))
            t = t.reshape(b, i * self.rows[k], core.shape[3], rest // self.cols[k])
        y = t.reshape(*lead, -1)
        return y if self.bias is None else y + self.bias.to(x.dtype)


# ---- building a layer's module --------------------------------------------------------

@dataclass
class Replacement:
    """What load() did with one compressed layer."""
    name: str            # the module's path in the network
    method: str          # the plan's method
    structured: bool     # run as its parts' modules (else rebuilt per call)
    module: nn.Module
    why: str = ""        # why it was rebuilt, when it was


class _Unfit(Exception):
    """This structure does not fit the module: rebuild instead."""


def _filled(m, weight, bias):
    """Layer m with the given weight and bias (None: it has none)."""
    with torch.no_grad():
        m.weight.copy_(weight)
        if bias is not None:
            m.bias.copy_(bias)
    return m


def _linear(weight, bias=None):
    return _filled(nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None),
                   weight, bias)


def _conv_geometry(conv):
    """(stride, padding, dilation) as (h, w) pairs; a Conv1d's are (k, 1)."""
    if isinstance(conv.padding, str):
        raise _Unfit(f"padding '{conv.padding}'")
    if conv.padding_mode != "zeros":
        raise _Unfit(f"padding mode '{conv.padding_mode}'")
    if conv.groups != 1:
        raise _Unfit(f"a convolution of {conv.groups} groups")
    if isinstance(conv, nn.Conv1d):
        return ((conv.stride[0], 1), (conv.padding[0], 0), (conv.dilation[0], 1))
    return tuple(conv.stride), tuple(conv.padding), tuple(conv.dilation)


def _conv(weight4, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=None,
          one_d=False):
    """A convolution of the (o, i, kh, kw) kernel; as a Conv1d when the
    layer is one (kw, stride, padding and dilation along w all trivial)."""
    o, i, kh, kw = weight4.shape
    if one_d:
        if kw != 1 or stride[1] != 1 or padding[1] != 0:
            raise _Unfit("a horizontal step of a Conv1d")
        m = nn.Conv1d(i * groups, o, kh, stride=stride[0], padding=padding[0],
                      dilation=dilation[0], groups=groups, bias=bias is not None)
        w = weight4[..., 0]
    else:
        m = nn.Conv2d(i * groups, o, (kh, kw), stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=bias is not None)
        w = weight4
    return _filled(m, w, bias)


def _vertical(g):
    """The vertical half of a geometry ((s, p, d) along h only)."""
    s, p, d = g
    return (s[0], 1), (p[0], 0), (d[0], 1)


def _horizontal(g):
    s, p, d = g
    return (1, s[1]), (0, p[1]), (1, d[1])


_NO_GEOMETRY = ((1, 1), (0, 0), (1, 1))


def _lowrank_module(b, a, layer, module, bias):
    """Two layers running B A: linears, or two convolutions split by the fold
    (rankscope-plan(5), Kernels)."""
    if isinstance(module, nn.Linear):
        return nn.Sequential(_linear(a), _linear(b, bias))
    geo = _conv_geometry(module)
    f, c, kh, kw = kernel4(layer)
    r = a.shape[0]
    one_d = isinstance(module, nn.Conv1d)
    fold = layer["fold"]
    if fold == 0:
        first = (a.reshape(r, c, kh, kw), geo)
        second = (b.reshape(f, r, 1, 1), _NO_GEOMETRY)
    elif fold == 1:
        first = (a.reshape(r, c, 1, kw), _horizontal(geo))
        second = (b.reshape(f, kh, r, 1).permute(0, 2, 1, 3), _vertical(geo))
    elif fold == 2:
        first = (a.reshape(r, c, kh, 1), _vertical(geo))
        second = (b.reshape(f, kw, r, 1).permute(0, 2, 3, 1), _horizontal(geo))
    else:
        first = (a.reshape(r, c, 1, 1), _NO_GEOMETRY)
        second = (b.reshape(f, kh, kw, r).permute(0, 3, 1, 2), geo)
    return nn.Sequential(_conv(first[0], *first[1], one_d=one_d),
                         _conv(second[0], *second[1], bias=bias, one_d=one_d))


def _grouped_module(parts, layer, module, bias):
    """ALDS: block i of the matrix is B_i A_i over its n/g columns, so a
    grouped layer makes the g r intermediate channels and a 1x1 mixes them."""
    name, (rows, cols) = layer["name"], layer["matrix"]
    g, r = layer["groups"], layer["rank"]
    a = _part(parts, name + ".grouped.A", [g, r, cols // g])
    b = _part(parts, name + ".grouped.B", [g, rows, r])
    mix = torch.cat([b[i] for i in range(g)], dim=1)          # rows x g r
    if isinstance(module, nn.Linear):
        first = nn.Conv1d(cols, g * r, 1, groups=g, bias=False)
        with torch.no_grad():
            first.weight.copy_(a.reshape(g * r, cols // g, 1))
        return nn.Sequential(_Features(first), _linear(mix, bias))
    geo = _conv_geometry(module)
    f, c, kh, kw = kernel4(layer)
    if c % g:
        raise _Unfit(f"{g} groups of {cols // g} columns straddle the {c} channels")
    one_d, cg, fold = isinstance(module, nn.Conv1d), c // g, layer["fold"]
    # each group's A_i as a kernel over its channels, then B as the second
    # convolution of the same fold (as for low rank)
    if fold == 0:
        a4, g1 = a.reshape(g * r, cg, kh, kw), geo
        b4, g2 = mix.reshape(f, g * r, 1, 1), _NO_GEOMETRY
    elif fold == 1:
        a4, g1 = a.reshape(g * r, cg, 1, kw), _horizontal(geo)
        b4, g2 = mix.reshape(f, kh, g * r, 1).permute(0, 2, 1, 3), _vertical(geo)
    elif fold == 2:
        a4, g1 = a.reshape(g * r, cg, kh, 1), _vertical(geo)
        b4, g2 = mix.reshape(f, kw, g * r, 1).permute(0, 2, 3, 1), _horizontal(geo)
    else:
        a4, g1 = a.reshape(g * r, cg, 1, 1), _NO_GEOMETRY
        b4, g2 = mix.reshape(f, kh, kw, g * r).permute(0, 3, 1, 2), geo
    return nn.Sequential(_conv(a4, *g1, groups=g, one_d=one_d),
                         _conv(b4, *g2, bias=bias, one_d=one_d))


class _Features(nn.Module):
    """Runs a Conv1d over a linear layer's features (as channels of length 1)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        lead = x.shape[:-1]
        y = self.conv(x.reshape(-1, x.shape[-1], 1))
        return y.reshape(*lead, -1)


def _tucker_module(parts, layer, module, bias):
    name = layer["name"]
    r_out, r_in = layer["ranks"]
    if isinstance(module, nn.Linear):
        rows, cols = layer["matrix"]
        first = _part(parts, name + ".tucker.first", [r_in, cols])
        core = _part(parts, name + ".tucker.core", [r_out, r_in])
        last = _part(parts, name + ".tucker.last", [rows, r_out])
        return nn.Sequential(_linear(first), _linear(core), _linear(last, bias))
    geo = _conv_geometry(module)
    f, c, kh, kw = kernel4(layer)
    one_d = isinstance(module, nn.Conv1d)
    first = _part(parts, name + ".tucker.first", [r_in, c, 1, 1])
    core = _part(parts, name + ".tucker.core", [r_out, r_in, kh, kw])
    last = _part(parts, name + ".tucker.last", [f, r_out, 1, 1])
    return nn.Sequential(_conv(first, one_d=one_d), _conv(core, *geo, one_d=one_d),
                         _conv(last, bias=bias, one_d=one_d))


def _cp_module(parts, layer, module, bias):
    name, r = layer["name"], layer["rank"]
    if isinstance(module, nn.Linear):
        rows, cols = layer["matrix"]
        return nn.Sequential(_linear(_part(parts, name + ".cp.first", [r, cols])),
                             _linear(_part(parts, name + ".cp.last", [rows, r]), bias))
    geo = _conv_geometry(module)
    f, c, kh, kw = kernel4(layer)
    one_d = isinstance(module, nn.Conv1d)
    first = _part(parts, name + ".cp.first", [r, c, 1, 1])
    vertical = _part(parts, name + ".cp.vertical", [r, 1, kh, 1])
    horizontal = _part(parts, name + ".cp.horizontal", [r, 1, 1, kw])
    last = _part(parts, name + ".cp.last", [f, r, 1, 1])
    chain = [_conv(first, one_d=one_d), _conv(vertical, *_vertical(geo), groups=r, one_d=one_d)]
    if not one_d:
        chain.append(_conv(horizontal, *_horizontal(geo), groups=r))
    else:
        # a Conv1d's horizontal factor is 1 x 1 (kw = 1): a scale per
        # component, kept as its own depthwise layer
        chain.append(_conv(horizontal, groups=r, one_d=True))
    chain.append(_conv(last, bias=bias, one_d=one_d))
    return nn.Sequential(*chain)


def _channel_index(parts, layer, side):
    name = layer["name"]
    return _bits(parts[name + ".channels.bitmap"], side).nonzero().reshape(-1)


def _channels_module(parts, layer, module, bias):
    """prune-rows: a smaller layer of the kept outputs, scattered; prune-cols:
    the kept inputs gathered (features, or channels for fold 3)."""
    name, (rows, cols) = layer["name"], layer["matrix"]
    values = _part(parts, name + ".channels.values")
    if layer["method"] == "prune-rows":
        index = _channel_index(parts, layer, rows)
        if isinstance(module, nn.Linear):
            return RowScatter(_linear(values), index, rows, bias, -1)
        if layer["fold"] != 0:
            raise _Unfit("rows of a kernel's fold other than 0 are not filters")
        geo = _conv_geometry(module)
        f, c, kh, kw = kernel4(layer)
        inner = _conv(values.reshape(-1, c, kh, kw), *geo, one_d=isinstance(module, nn.Conv1d))
        return RowScatter(inner, index, rows, bias, 1)
    index = _channel_index(parts, layer, cols)
    if isinstance(module, nn.Linear):
        return ColumnGather(index, _linear(values, bias), -1)
    if layer["fold"] != 3:
        raise _Unfit("columns of a kernel's fold other than 3 are not channels")
    geo = _conv_geometry(module)
    f, c, kh, kw = kernel4(layer)
    kept = index.numel()
    # fold 3's columns are input channels: M (f kh kw) x c' is the kernel
    kernel = values.reshape(f, kh, kw, kept).permute(0, 3, 1, 2)
    return ColumnGather(index, _conv(kernel, *geo, bias=bias,
                                     one_d=isinstance(module, nn.Conv1d)), 1)


def _combination_module(parts, layer, module, bias, dtype):
    """Branches summed: B A as two layers, the sparse part as a sparse
    product (linear layers), the rest (a sparse kernel, the quantised
    part) rebuilt per call."""
    branches = []
    if layer["method"].startswith("lowrank"):
        b, a = lowrank_factors(parts, layer)
        branches.append(_lowrank_module(b, a, layer, module, None))
    rest = dict(layer, method=layer["method"].replace("lowrank+", ""))
    if rest["method"] == "sparse":
        rest["method"] = "prune"
    if isinstance(module, nn.Linear) and rest["method"] == "prune":
        branches.append(SparseLinear(sparse_matrix(parts, layer), None))
    else:
        keep = {k: v for k, v in parts.items() if ".lowrank." not in k}
        branches.append(Rebuilt(module, rest, keep, dtype, None))
    return Sum(branches, bias, _channel_dim(module))


def _build(layer, parts, module, dtype, bias):
    """The module running one compressed layer, or _Unfit."""
    method = layer["method"]
    name = layer["name"]
    if method == "lowrank":
        b, a = lowrank_factors(parts, layer)
        return _lowrank_module(b, a, layer, module, bias)
    if method == "grouped":
        return _grouped_module(parts, layer, module, bias)
    if method == "tucker2":
        return _tucker_module(parts, layer, module, bias)
    if method == "cp":
        return _cp_module(parts, layer, module, bias)
    if method == "tt":
        if not isinstance(module, nn.Linear):
            raise _Unfit("a TT-matrix of a kernel")
        tt = layer["tt"]
        cores = [_part(parts, f"{name}.tt.{k}",
                       [tt["ranks"][k], tt["rows"][k], tt["cols"][k], tt["ranks"][k + 1]])
                 for k in range(len(tt["rows"]))]
        return TTLinear(cores, tt["rows"], tt["cols"], bias)
    if method == "prune":
        if not isinstance(module, nn.Linear):
            raise _Unfit("a sparse kernel")
        return SparseLinear(sparse_matrix(parts, layer), bias)
    if method in ("prune-rows", "prune-cols"):
        return _channels_module(parts, layer, module, bias)
    if method in ("lowrank+sparse", "lowrank+sparse+quant", "quant+sparse"):
        return _combination_module(parts, layer, module, bias, dtype)
    raise _Unfit("dequantised per call")        # quant


def _cast(module, dtype):
    """Parameters in the network's dtype; index buffers stay integers."""
    for p in module.parameters(recurse=True):
        p.data = p.data.to(dtype)
    for mod in module.modules():
        for k, buf in list(mod._buffers.items()):
            if buf is not None and buf.is_floating_point():
                mod._buffers[k] = buf.to(dtype)
    return module


def _owner(net, tensor_name):
    """(path, module) owning parameter tensor_name ('a.b.weight' -> 'a.b')."""
    path, _, attr = tensor_name.rpartition(".")
    if attr != "weight":
        raise CompressedError(f"{tensor_name}: not a module's weight")
    try:
        module = net.get_submodule(path) if path else net
    except AttributeError:
        raise CompressedError(f"{tensor_name}: the network has no module '{path}'") from None
    return path, module


def _set_module(net, path, new):
    parent_path, _, child = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    setattr(parent, child, new)


def _split_views(plan):
    """{tensor: [view names in row order]} from the plan's split rules."""
    views = {}
    for rule in plan.get("split") or []:
        tensor, _, names = rule.partition("=")
        views[tensor] = [f"{tensor}.{v}" for v in names.split(",")]
    return views


class Concat(nn.Module):
    """Views of a weight split by rows (--split): their outputs side by side."""

    def __init__(self, views, channel_dim):
        super().__init__()
        self.views = nn.ModuleList(views)
        self.channel_dim = channel_dim

    def forward(self, x):
        ys = [v(x) for v in self.views]
        return torch.cat(ys, dim=self.channel_dim if ys[0].dim() > 2 else -1)


def _view_module(original, rows, bias):
    """A copy of `original` producing only its outputs `rows` (a slice)."""
    lo, hi = rows
    if isinstance(original, nn.Linear):
        m = nn.Linear(original.in_features, hi - lo, bias=bias)
    else:
        m = original.__class__(original.in_channels, hi - lo, original.kernel_size,
                               stride=original.stride, padding=original.padding,
                               dilation=original.dilation, groups=original.groups,
                               bias=bias, padding_mode=original.padding_mode)
    with torch.no_grad():
        m.weight.copy_(original.weight[lo:hi])
        if bias:
            m.bias.copy_(original.bias[lo:hi])
    return m


def load(net, path, structured=True):
    """Replaces net's compressed layers by the modules their parts make and
    loads every other tensor of the file; returns [Replacement].  With
    structured=False every compressed layer is rebuilt per call."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("rankscope_dense") == "true":
        # apply --dense: every layer is a whole tensor already
        _load_rest(net, tensors, set(), path)
        return []
    plan = plan_of(metadata, path)
    layers = {l["name"]: l for l in plan["layers"]}
    for l in plan["layers"]:
        if "factors" in l and l["method"] != "dense":
            raise CompressedError(f"{path}: layer '{l['name']}' is composed of "
                                  f"{len(l['factors'])} factors: no module of the network is "
                                  "it; use `rankscope apply --dense` or plan it dense")
    views = _split_views(plan)
    view_of = {v: t for t, vs in views.items() for v in vs}
    done, consumed, handled = [], set(), set()

    def file_bias(tensor_name, module, rows=None):
        """The layer's bias as the file has it (rows: a view's slice)."""
        if module.bias is None:
            return None
        bias_name = tensor_name[:-len("weight")] + "bias"
        if bias_name not in tensors:
            raise CompressedError(f"{path}: layer '{tensor_name}' has a bias in the network "
                                  f"but no '{bias_name}' in the file")
        consumed.add(bias_name)
        b = tensors[bias_name].detach().to(module.weight.dtype)
        return b if rows is None else b[rows[0]:rows[1]].clone()

    def replace(layer, module, bias):
        """The module for one layer (a whole tensor or a view), and how."""
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            raise CompressedError(f"{path}: layer '{layer['name']}' belongs to a "
                                  f"{type(module).__name__}; rankscope_torch replaces "
                                  "nn.Linear, nn.Conv1d and nn.Conv2d (load the --dense "
                                  "file instead)")
        if layer.get("layout") == "in,out":
            raise CompressedError(f"{path}: layer '{layer['name']}' is stored in,out, "
                                  f"which a {type(module).__name__} is not")
        parts = layer_parts(tensors, layer)
        if not parts:
            raise CompressedError(f"{path}: layer '{layer['name']}' ({layer['method']}): "
                                  "its parts are missing")
        consumed.update(parts)
        dtype = module.weight.dtype
        why = "structured=False"
        try:
            if structured:
                try:
                    return _cast(_build(layer, parts, module, dtype, bias), dtype), True, ""
                except _Unfit as e:
                    why = str(e)
            new = Rebuilt(module, layer, parts, dtype, bias)
            new.weight()    # the parts must make the weight: fail here, not at the first call
            return _cast(new, dtype), False, why
        except CompressedError as e:
            raise CompressedError(f"{path}: {e}") from None

    for tensor_name in list(views) + [n for n in layers if n not in view_of]:
        if tensor_name in views:
            members = [layers[v] for v in views[tensor_name]]
            if all(m["method"] == "dense" for m in members):
                continue
            mpath, module = _owner(net, tensor_name)
            row, mods, kinds = 0, [], []
            for m in members:
                rows = (row, row + m["shape"][0])
                row = rows[1]
                view = _view_module(module, rows, module.bias is not None)
                bias = file_bias(tensor_name, module, rows)
                if m["method"] == "dense":
                    with torch.no_grad():
                        view.weight.copy_(tensors[m["name"]].to(view.weight.dtype))
                        if bias is not None:
                            view.bias.copy_(bias)
                    consumed.add(m["name"])
                    mods.append(view)
                    kinds.append("dense")
                    continue
                new, s, why = replace(m, view, bias)
                mods.append(new)
                kinds.append(m["method"] + ("" if s else f" (rebuilt: {why})"))
            if row != module.weight.shape[0]:
                raise CompressedError(f"{path}: the views of '{tensor_name}' make {row} rows "
                                      f"of its {module.weight.shape[0]}")
            new = Concat(mods, _channel_dim(module))
            _set_module(net, mpath, new)
            handled.add(mpath)
            done.append(Replacement(mpath, "split: " + ", ".join(kinds), True, new))
            continue
        layer = layers[tensor_name]
        if layer["method"] == "dense" or "factors" in layer:
            continue
        mpath, module = _owner(net, tensor_name)
        new, s, why = replace(layer, module, file_bias(tensor_name, module))
        _set_module(net, mpath, new)
        handled.add(mpath)
        done.append(Replacement(mpath, layer["method"], s, new, why))
    _load_rest(net, {k: v for k, v in tensors.items() if k not in consumed}, handled, path)
    return done


def _load_rest(net, rest, handled, path):
    """The file's other tensors into the network, which must take exactly
    them besides the replaced modules' own."""
    own = net.state_dict()
    replaced = {k for k in own if any(k.startswith(p + ".") for p in handled)}
    missing = [k for k in own if k not in rest and k not in replaced]
    unexpected = [k for k in rest if k not in own or k in replaced]
    if missing or unexpected:
        raise CompressedError(f"{path}: does not fit the network: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    with torch.no_grad():
        for k, v in rest.items():
            if list(own[k].shape) != list(v.shape):
                raise CompressedError(f"{path}: '{k}' is {list(v.shape)}, the network's "
                                      f"{list(own[k].shape)}")
            own[k].copy_(v.to(own[k].dtype))
