import gzip
import pickle
import warnings

import numpy as np
import pytest

from superconverge.data import DataFormatError, read_idx
from superconverge.data.formats import check_md5, parse_cifar_batch

from .conftest import cifar_batch, write_idx


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips_images_and_labels(tmp_path, compress):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    path = write_idx(tmp_path / "images.idx", images, compress=compress)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    assert np.array_equal(out, images)
    assert out.flags.writeable
    labels = read_idx(write_idx(tmp_path / "labels.idx", [3, 1, 4, 1, 5]))
    assert labels.tolist() == [3, 1, 4, 1, 5]


def test_truncated_idx_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    payload = gzip.decompress(write_idx(path, np.zeros((4, 28, 28))).read_bytes())
    path.write_bytes(gzip.compress(payload[:-10]))
    with pytest.raises(
        DataFormatError, match=r"train-images-idx3-ubyte.gz: truncated.*\(4, 28, 28\)"
    ):
        read_idx(path)


def test_trailing_bytes_are_not_silently_cut(tmp_path):
    path = tmp_path / "x.idx"
    payload = gzip.decompress(write_idx(path, np.zeros((2, 2))).read_bytes())
    path.write_bytes(gzip.compress(payload + b"\x00\x01"))
    with pytest.raises(DataFormatError, match="has trailing bytes"):
        read_idx(path)


def test_wrong_magic_and_corrupt_gzip(tmp_path):
    wrong = tmp_path / "wrong.idx"
    wrong.write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    with pytest.raises(DataFormatError, match=r"wrong.idx: not an IDX file \(magic 504b0304\)"):
        read_idx(wrong)
    corrupt = tmp_path / "corrupt.gz"
    random_payload = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    corrupt.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + random_payload)[:300])
    with pytest.raises(DataFormatError, match=r"corrupt\.gz: corrupt or truncated gzip"):
        read_idx(corrupt)
    unknown = tmp_path / "unknown.idx"
    unknown.write_bytes(b"\x00\x00\x42\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DataFormatError, match="unknown IDX type code 0x42"):
        read_idx(unknown)


def test_md5_mismatch_on_an_official_name_warns_and_a_match_does_not(tmp_path):
    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", [1, 2, 3])
    with pytest.warns(UserWarning, match="md5 .* differs from the official d53e105e"):
        assert check_md5(path, "mnist") is False
    other = write_idx(tmp_path / "my-labels.gz", [1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_md5(other, "mnist") is None


def test_cifar_batch_parses_to_channel_first_images():
    batch = cifar_batch(5, seed=0)
    parsed = parse_cifar_batch(pickle.dumps(batch, protocol=2), "b")
    assert parsed.images.shape == (5, 3, 32, 32)
    # first 1024 bytes are the red plane, row-major
    assert np.array_equal(parsed.images[0, 0].reshape(-1), batch[b"data"][0, :1024])
    assert np.array_equal(parsed.images[0, 2].reshape(-1), batch[b"data"][0, 2048:])
    assert parsed.labels.tolist() == batch[b"labels"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update({b"labels": b[b"labels"][:-1]}), "5 images but 4 labels"),
        (lambda b: b.update({b"data": b[b"data"][:, :100]}), r"uint8 of shape \(N, 3072\)"),
        (lambda b: b.update({b"labels": [12] * 5}), "labels must be 0-9"),
        (lambda b: b.pop(b"data"), "dict with b'data' and b'labels'"),
    ],
)
def test_bad_cifar_batches_are_named(mutate, message):
    batch = cifar_batch(5, seed=0)
    mutate(batch)
    with pytest.raises(DataFormatError, match=message):
        parse_cifar_batch(pickle.dumps(batch), "cifar/data_batch_1")


def test_cifar_unpickler_refuses_arbitrary_objects():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(DataFormatError, match=r"refusing to load builtins\.print"):
        parse_cifar_batch(pickle.dumps({b"data": Evil()}), "evil")
    with pytest.raises(DataFormatError, match="not a readable CIFAR-10 batch"):
        parse_cifar_batch(b"garbage", "garbage")


def test_a_gzip_bomb_is_refused_after_the_declared_size(tmp_path, monkeypatch):
    import superconverge.data.formats as formats

    # 16 MiB of zeros behind a header that declares 2x2 bytes: about 16 KiB compressed
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(
        gzip.compress(b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") * 2 + bytes(1 << 24))
    )
    reads = []
    real = formats._read_exactly
    monkeypatch.setattr(formats, "_read_exactly", lambda s, n: reads.append(n) or real(s, n))
    with pytest.raises(
        DataFormatError, match=r"train-labels-idx1-ubyte.gz: has trailing bytes.*\(2, 2\)"
    ):
        read_idx(path)
    assert sum(reads) == 4 + 8 + 4  # header, dimensions, payload: nothing past the declared size


def test_a_header_declaring_more_than_the_file_holds_is_truncated(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x00\x00\x08\x01" + (1 << 30).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(DataFormatError, match=r"x.idx: truncated.*1073741824 bytes\), found 2"):
        read_idx(path)
