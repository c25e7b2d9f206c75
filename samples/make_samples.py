#!/usr/bin/python3
"""Train rankscope's three sample networks and write them as safetensors.

    python3 samples/make_samples.py [--out DIR]

Trains, on scikit-learn's bundled digits data (no download):
  digits-mlp.safetensors     MLP 64-512-512-10
  digits-cnn.safetensors     small CNN on 1x8x8 images
  digits-lorita.safetensors  the MLP's shape, each weight trained as a
                             product of three factors (LoRITa)
then reloads every file to check that it reproduces the recorded test
accuracy, and prints how much faster the LoRITa products' singular values
decay than the plain MLP's.

The output is byte-for-byte reproducible on a given machine and software
stack: fixed seeds, one CPU thread, deterministic algorithms, a fixed data
split and a deterministic file writer.  rankscope itself never runs this;
it only makes the sample files committed beside it.
"""

import argparse
import os
import time

import numpy as np
import torch
from torch import nn

import digits_models as dm

SEED = 0
EPOCHS = 40
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
# Weight decay keeps the factors' norms small, and the cheapest way (in
# summed squared factor norms) to make a weight W from three factors costs
# a Schatten-2/3 quasi-norm of W, which favours few large singular values;
# that, with the factorisation itself, pushes the LoRITa products towards
# low rank.  The plain models get the same optimizer so that the spectra
# compare like with like.
WEIGHT_DECAY = 1e-3

# Singular values above these fractions of sigma_max are counted when
# comparing the plain MLP with the LoRITa products.
THRESHOLDS = (1e-1, 1e-2, 1e-3)


def make_deterministic():
    """Pin everything that could make two runs differ."""
    # Several threads may sum in different orders from run to run.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # scikit-learn falls back on numpy's global generator wherever no
    # random_state is passed; seeding it keeps any such use reproducible.
    np.random.seed(SEED)


def train(model, x, y):
    """Mini-batch AdamW on cross-entropy; returns the seconds it took."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
    )
    loss_fn = nn.CrossEntropyLoss()
    # A private generator keeps the batch order independent of how many
    # random numbers model initialisation happened to draw.
    shuffle = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x), generator=shuffle)
        for first in range(0, len(x), BATCH_SIZE):
            batch = order[first : first + BATCH_SIZE]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return time.perf_counter() - start


def make_sample(name, split, out_dir):
    """Train model `name`, write <out_dir>/<name>.safetensors, verify it.

    Returns the trained model.
    """
    x_train, x_test, y_train, y_test = split
    # Seeding per model makes each file independent of which were made
    # before it.
    torch.manual_seed(SEED)
    model = dm.MODELS[name]()
    seconds = train(model, x_train, y_train)
    train_acc = dm.accuracy(model, x_train, y_train)
    test_acc = dm.accuracy(model, x_test, y_test)

    metadata = {
        "model": name,
        "architecture": model.architecture,
        "dataset": dm.DATASET_DESCRIPTION,
        "test_accuracy": f"{test_acc:.4f}",
        "train_accuracy": f"{train_acc:.4f}",
        "epochs": str(EPOCHS),
        "seed": str(SEED),
        "optimizer": (
            f"AdamW lr={LEARNING_RATE:g} weight_decay={WEIGHT_DECAY:g} "
            f"batch={BATCH_SIZE}"
        ),
        "created_by": "samples/make_samples.py",
        "torch_version": torch.__version__,
    }
    path = os.path.join(out_dir, f"{name}.safetensors")
    state = model.state_dict()
    dm.write_safetensors(path, state, metadata)

    # Reload through the same path later scripts use, and insist on the
    # exact weights and the exact recorded accuracy.
    reloaded, read_metadata = dm.load_model(path)
    reloaded_acc = dm.accuracy(reloaded, x_test, y_test)
    assert read_metadata == metadata, f"{path}: metadata differs on reload"
    assert all(
        torch.equal(reloaded.state_dict()[k], v) for k, v in state.items()
    ), f"{path}: weights differ on reload"
    assert reloaded_acc == test_acc, (
        f"{path}: reloaded test accuracy {reloaded_acc} != {test_acc}"
    )

    print(
        f"{name}: trained in {seconds:.1f} s, train accuracy "
        f"{train_acc:.4f}, test accuracy {test_acc:.4f} "
        f"(reload verified), {os.path.getsize(path)} bytes -> {path}"
    )
    return model


def spectrum_counts(weight):
    """How many singular values of `weight` exceed each of THRESHOLDS."""
    # float64 so that the smallest singular values are not SVD round-off.
    sigma = torch.linalg.svdvals(weight.detach().double())
    return [int((sigma > t * sigma[0]).sum()) for t in THRESHOLDS]


def print_spectrum_comparison(mlp, lorita):
    """Per layer, count significant singular values: plain vs LoRITa."""
    heads = " ".join(f"{f'>{t:g}':>7}" for t in THRESHOLDS)
    print()
    print("singular values above a fraction of sigma_max")
    print(f"{'layer':<6} {'shape':>8}  {'model':<14} {heads}")
    for layer in ("fc1", "fc2", "fc3"):
        plain = getattr(mlp, layer).weight
        product = getattr(lorita, layer).product()
        shape = "x".join(str(n) for n in plain.shape)
        for label, weight in (("plain MLP", plain), ("LoRITa W3W2W1", product)):
            counts = " ".join(f"{c:>7}" for c in spectrum_counts(weight))
            print(f"{layer:<6} {shape:>8}  {label:<14} {counts}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        default=os.path.dirname(os.path.abspath(__file__)),
        help="folder for the .safetensors files (default: this script's)",
    )
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    make_deterministic()
    split = dm.load_split()
    models = {
        name: make_sample(name, split, args.out)
        for name in ("digits-mlp", "digits-cnn", "digits-lorita")
    }
    print_spectrum_comparison(models["digits-mlp"], models["digits-lorita"])


if __name__ == "__main__":
    main()
