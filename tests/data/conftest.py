"""Tiny files in the real formats (IDX gzip, CIFAR python pickles, csv), written per test."""

import gzip
import pickle
import struct
import tarfile

import numpy as np
import pytest


def write_idx(path, array, compress=True):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", size) for size in array.shape
    )
    payload = header + array.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def make_mnist(root, train=30, test=10, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(train) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(test) % 10,
    }
    for name, array in arrays.items():
        write_idx(root / name, array)
    return arrays


def cifar_batch(count, seed, offset=0):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"testing batch",
        b"labels": [(i + offset) % 10 for i in range(count)],
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(count)],
    }


def make_cifar_folder(root, batches=(1, 2), per_batch=20, test=10):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for index in batches:
        made[f"data_batch_{index}"] = cifar_batch(per_batch, seed=index, offset=index)
    if test:
        made["test_batch"] = cifar_batch(test, seed=99)
    for name, batch in made.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}))
    return folder, made


def make_cifar_archive(root, name="cifar-10-python.tar.gz", **kwargs):
    folder, made = make_cifar_folder(root / "build", **kwargs)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / name
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive, made


@pytest.fixture
def mnist_dir(tmp_path):
    root = tmp_path / "mnist"
    make_mnist(root)
    return root
