"""Models, data split and safetensors I/O for rankscope's sample networks.

make_samples.py trains and writes the sample files with this module; any
later script that loads (possibly compressed) weights back into these
networks imports it too, so that the architecture, the test split and the
evaluation are exactly the ones the recorded accuracies were measured with.

Needs Debian's python3-torch, python3-sklearn and python3-numpy only: the
safetensors reader and writer are written here so that no extra package is
required.
"""

import json
import struct

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

DATASET_DESCRIPTION = (
    "sklearn digits, 1797 images 8x8, stratified 80/20 split, random_state=0"
)


def load_split():
    """Return (x_train, x_test, y_train, y_test) as torch tensors.

    Inputs are flat float32 rows of 64 pixels scaled from 0..16 to [0, 1];
    labels are int64.  The split is fixed (stratified, random_state=0) so
    every script sees the same 360 test images.
    """
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    return (
        torch.from_numpy(x_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_train),
        torch.from_numpy(y_test),
    )


class DigitsMLP(nn.Module):
    """64 -> 512 -> 512 -> 10 with ReLU."""

    architecture = "MLP 64-512-512-10, ReLU"

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class DigitsCNN(nn.Module):
    """Small CNN on 1x8x8 images; accepts flat 64-pixel rows as well."""

    architecture = (
        "CNN 1x8x8: conv3x3 1-16, ReLU; conv3x3 16-32, ReLU, maxpool2; "
        "conv3x3 32-64, ReLU; flatten 1024; fc 1024-128, ReLU; fc 128-10"
    )

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        # The shared data split is flat; the image shape is restored here so
        # all three models take the same inputs.
        x = x.reshape(-1, 1, 8, 8)
        x = torch.relu(self.conv1(x))
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.conv3(x))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class LoRITaLinear(nn.Module):
    """Linear layer whose weight is the product of three factors.

    W = W3 @ W2 @ W1 with W1 (d x in), W2 (d x d), W3 (out x d) and
    d = min(out, in), so the product can still have full rank; trained with
    weight decay, the composition pushes its spectrum towards low rank
    (LoRITa, low-rank induced training).  factors[0] holds W1 and is applied
    to the input first.
    """

    def __init__(self, in_features, out_features):
        super().__init__()
        d = min(in_features, out_features)
        self.factors = nn.ModuleList(
            [
                nn.Linear(in_features, d, bias=False),
                nn.Linear(d, d, bias=False),
                nn.Linear(d, out_features, bias=False),
            ]
        )
        self.bias = nn.Parameter(torch.zeros(out_features))

    def product(self):
        """The effective weight W3 @ W2 @ W1 (out x in)."""
        w1, w2, w3 = (f.weight for f in self.factors)
        return w3 @ w2 @ w1

    def forward(self, x):
        for factor in self.factors:
            x = factor(x)
        return x + self.bias


class DigitsLoRITa(nn.Module):
    """DigitsMLP's shape with every linear layer a LoRITaLinear."""

    architecture = (
        "MLP 64-512-512-10, ReLU; each weight trained as W3 W2 W1 "
        "(LoRITa, d = min(out, in)), factors stored, no product"
    )

    def __init__(self):
        super().__init__()
        self.fc1 = LoRITaLinear(64, 512)
        self.fc2 = LoRITaLinear(512, 512)
        self.fc3 = LoRITaLinear(512, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


# The "model" metadata value of a sample file names its class here.
MODELS = {
    "digits-mlp": DigitsMLP,
    "digits-cnn": DigitsCNN,
    "digits-lorita": DigitsLoRITa,
}


def accuracy(model, x, y):
    """Fraction of rows of x that model classifies as y (eval mode)."""
    model.eval()
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    return (predicted == y).sum().item() / len(y)


def write_safetensors(path, tensors, metadata):
    """Write float32 tensors (name -> tensor, in order) to a safetensors file.

    Layout: 8-byte little-endian header length N, N bytes of JSON header
    padded with spaces so that the data starts at a multiple of 8, then the
    raw little-endian float32 data of each tensor, contiguous and in header
    order.  The JSON keeps insertion order and compact separators so that
    the same tensors always give the same bytes.
    """
    header = {"__metadata__": dict(metadata)}
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        array = tensor.detach().cpu().contiguous().numpy().astype("<f4")
        blob = array.tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    raw = text.encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


# The dtypes the sample files and rankscope apply's outputs use.
_DTYPES = {"F32": "<f4", "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4"}


def read_safetensors(path):
    """Read a safetensors file; return (tensors, metadata).

    tensors is an ordered dict name -> torch.Tensor in header order.
    F32 weights, and the U8/U16/U32 bitmap, index and code tensors that
    rankscope apply writes for pruned and quantised layers, are accepted.
    """
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: {name} has dtype {info['dtype']}, not one of "
                             f"{', '.join(_DTYPES)}")
        begin, end = info["data_offsets"]
        dt = np.dtype(_DTYPES[info["dtype"]])
        array = np.frombuffer(data, dtype=dt, count=(end - begin) // dt.itemsize,
                              offset=base + begin)
        # torch has no uint16 or uint32: indices are widened to int64
        if dt.kind == "u" and dt.itemsize > 1:
            array = array.astype(np.int64)
        tensors[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return tensors, metadata


def load_model(path):
    """Build the model named by a sample file's metadata and load its weights.

    Returns (model, metadata).  Loading is strict: every tensor the model
    expects must be present with the right shape, and no other.
    """
    tensors, metadata = read_safetensors(path)
    model = MODELS[metadata["model"]]()
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, metadata
