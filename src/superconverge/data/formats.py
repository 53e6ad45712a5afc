"""Readers for the original file formats: IDX (MNIST, Fashion-MNIST) and CIFAR-10 pickles.

Files are read exactly: a truncated, corrupt or wrong-magic file raises `DataFormatError`
naming the file; nothing is padded or cut. Files with an official name are checked against the
published md5 and a mismatch only warns (users keep re-compressed copies).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

# md5 of the official distribution files (the MNIST and CIFAR-10 pages; torchvision lists the same)
KNOWN_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
}

IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CIFAR_IMAGE_BYTES = 3 * 32 * 32
CIFAR_MEMBER_DIR = "cifar-10-batches-py"


class DataFormatError(ValueError):
    """A data file is missing, truncated, corrupt or not in the expected format."""


def check_md5(path: Path, dataset: str) -> bool | None:
    """Compare an officially named file with its published md5; warn on mismatch.

    Returns True (match), False (mismatch, warned) or None (not an official name).
    """
    expected = KNOWN_MD5.get(dataset, {}).get(path.name)
    if expected is None:
        return None
    digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    if digest != expected:
        warnings.warn(
            f"{path}: md5 {digest} differs from the official {expected}; "
            "reading it anyway (re-compressed copies differ, but so do damaged ones)",
            stacklevel=3,
        )
        return False
    return True


IDX_CHUNK_BYTES = 1 << 20  # read payloads in 1 MiB pieces, never more than the header declares


def _read_exactly(stream: io.BufferedIOBase, count: int) -> bytes:
    """Up to `count` bytes, in chunks, stopping early only at the end of the stream."""
    parts = []
    left = count
    while left > 0:
        part = stream.read(min(left, IDX_CHUNK_BYTES))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into an array of its declared shape.

    The header is two zero bytes, a type code (0x08 = unsigned byte), the number of
    dimensions, then each dimension as a big-endian uint32 (LeCun et al., the MNIST page).
    The header is checked while reading: nothing past the declared payload is inflated
    (one byte tells that there is more), so a gzip "bomb" costs no more memory than the
    size its header declares.

    Raises:
        DataFormatError: wrong magic, unknown type, or a payload shorter or longer than declared.
    """
    path = Path(path)
    with path.open("rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        stream = gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle
        try:
            shape, dtype, payload = _read_idx_stream(path, stream)
        except (OSError, EOFError, zlib.error) as error:
            raise DataFormatError(f"{path}: corrupt or truncated gzip file ({error})") from error
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    native: np.ndarray = array.astype(dtype.newbyteorder("="))  # a writable, native-order copy
    return native


def _read_idx_stream(
    path: Path, stream: io.BufferedIOBase
) -> tuple[tuple[int, ...], np.dtype[Any], bytes]:
    magic = _read_exactly(stream, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataFormatError(f"{path}: not an IDX file (magic {magic[:4].hex() or 'empty'})")
    dtype = IDX_DTYPES.get(magic[2])
    if dtype is None:
        raise DataFormatError(f"{path}: unknown IDX type code 0x{magic[2]:02x}")
    ndim = magic[3]
    dims = _read_exactly(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataFormatError(f"{path}: truncated IDX header ({4 + len(dims)} bytes)")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = _read_exactly(stream, expected)
    if len(payload) < expected:
        raise DataFormatError(
            f"{path}: truncated: header declares shape {shape} ({expected} bytes), "
            f"found {len(payload)} bytes"
        )
    if stream.read(1):
        raise DataFormatError(
            f"{path}: has trailing bytes: header declares shape {shape} ({expected} bytes) "
            "and the file holds more; refusing to read past the declared size"
        )
    return shape, dtype, payload


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batch dicts and nothing else: only numpy's array builders may load."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how Python 3 writes bytes into protocol-2 pickles
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


@dataclass(frozen=True)
class CifarBatch:
    images: np.ndarray  # (N, 3, 32, 32) uint8
    labels: np.ndarray  # (N,) int64


def parse_cifar_batch(raw: bytes, source: str) -> CifarBatch:
    """Parse one CIFAR-10 python batch (a pickled dict with bytes keys)."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:  # any unpickling failure means the file is not a CIFAR batch
        raise DataFormatError(f"{source}: not a readable CIFAR-10 batch ({error})") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataFormatError(f"{source}: a CIFAR-10 batch is a dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_IMAGE_BYTES:
        raise DataFormatError(
            f"{source}: b'data' must be uint8 of shape (N, {CIFAR_IMAGE_BYTES}), "
            f"got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise DataFormatError(f"{source}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFormatError(f"{source}: labels must be 0-9, found {labels.min()}-{labels.max()}")
    return CifarBatch(data.reshape(-1, 3, 32, 32), labels)


def read_cifar_members(source: Path, names: list[str]) -> dict[str, bytes]:
    """The raw bytes of the named batch files, from a folder or a ``.tar.gz`` archive.

    Names that are not there are left out of the result.
    """
    found: dict[str, bytes] = {}
    if source.is_dir():
        for name in names:
            member = source / name
            if member.is_file():
                check_md5(member, "cifar10")
                found[name] = member.read_bytes()
        return found
    check_md5(source, "cifar10")
    try:
        with tarfile.open(source, "r:*") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            for name in names:
                if name in members:
                    handle = archive.extractfile(members[name])
                    if handle is not None:
                        found[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataFormatError(f"{source}: corrupt or truncated archive ({error})") from error
    return found
