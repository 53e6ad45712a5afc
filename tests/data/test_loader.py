import io

import pytest
import torch

from superconverge.data import ArrayData, ArrayLoader, Augment, default_augment


def _data(count=10):
    return ArrayData(torch.arange(count, dtype=torch.float32)[:, None], torch.arange(count))


def _epoch(loader):
    return [targets.tolist() for _, targets in loader]


def test_batches_cover_every_sample_once_per_epoch():
    loader = ArrayLoader(_data(10), batch_size=3, seed=1)
    assert len(loader) == 4
    batches = _epoch(loader)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert sorted([t for b in batches for t in b]) == list(range(10))
    second = _epoch(loader)
    assert (
        sorted([t for b in second for t in b]) == list(range(10)) and second != batches
    )  # a new permutation


def test_drop_last_and_len():
    loader = ArrayLoader(_data(10), batch_size=3, drop_last=True)
    assert len(loader) == 3 and [len(b) for b in _epoch(loader)] == [3, 3, 3]
    assert len(ArrayLoader(_data(9), batch_size=3)) == 3


def test_same_seed_same_batches_different_seed_different_batches():
    assert _epoch(ArrayLoader(_data(50), 8, seed=3)) == _epoch(ArrayLoader(_data(50), 8, seed=3))
    assert _epoch(ArrayLoader(_data(50), 8, seed=3)) != _epoch(ArrayLoader(_data(50), 8, seed=4))


def test_batch_size_changes_between_epochs_only():
    loader = ArrayLoader(_data(12), batch_size=4)
    assert len(_epoch(loader)) == 3
    loader.batch_size = 6
    assert len(loader) == 2 and len(_epoch(loader)) == 2
    iterator = iter(loader)
    next(iterator)
    with pytest.raises(RuntimeError, match="between epochs only"):
        loader.batch_size = 3
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        ArrayLoader(_data(12), batch_size=0)


def test_saved_position_resumes_with_the_same_batches_and_augmentation():
    images = torch.randn(40, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    data = ArrayData(images, torch.arange(40))

    def make():
        return ArrayLoader(data, 6, seed=7, augment=Augment(crop_padding=2))

    reference = make()
    full = [(x.clone(), y.clone()) for _ in range(2) for x, y in reference]

    first = make()
    seen = list(first)  # one epoch of 7 batches ...
    iterator = iter(first)
    seen += [next(iterator), next(iterator)]  # ... and 2 batches of the next
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = make()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.state_dict() == {"epoch": 1, "batch_index": 2, "batch_size": 6, "seed": 7}
    seen += list(resumed)  # the rest of epoch 1
    assert len(seen) == len(full) == 14
    for (x, y), (fx, fy) in zip(seen, full, strict=True):
        assert torch.equal(y, fy) and torch.equal(x, fx)


def test_augmentation_crops_and_flips_within_the_padded_image():
    image = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = Augment(crop_padding=1, padding_mode="constant")(image, torch.Generator().manual_seed(0))
    assert out.shape == image.shape
    flipped = image.flip(3)
    # some sample is untouched (no shift, no flip) and some is flipped only
    assert any(torch.equal(o, image[0]) for o in out)
    assert any(torch.equal(o, flipped[0]) for o in out)
    # every window is a shifted copy: each output row is a row of the padded or flipped image
    assert not torch.equal(out, image)


def test_flip_only_preserves_each_image_or_mirrors_it():
    images = torch.randn(32, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    out = Augment(crop_padding=0)(images, torch.Generator().manual_seed(2))
    for original, result in zip(images, out, strict=True):
        assert torch.equal(result, original) or torch.equal(result, original.flip(2))


def test_ranks_split_each_epoch_without_overlap_and_with_equal_counts():
    data = _data(11)
    shards = [_epoch(ArrayLoader(data, 2, seed=5, rank=r, world_size=3)) for r in range(3)]
    flat = [sorted(t for batch in s for t in batch) for s in shards]
    assert all(len(f) == 4 for f in flat)  # ceil(11 / 3), padded by wrapping
    assert {t for f in flat for t in f} == set(range(11))
    assert len({len(s) for s in shards}) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"data": ArrayData(torch.zeros(0, 1), torch.zeros(0))}, ValueError, "empty data set"),
        ({"rank": 2, "world_size": 2}, ValueError, r"rank must be in \[0, 2\), got 2"),
        ({"augment": "crop"}, TypeError, "augment must be an Augment"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    args = {"data": _data(4), "batch_size": 2, **kwargs}
    with pytest.raises(error, match=message):
        ArrayLoader(**args)


def test_bad_state_is_rejected():
    loader = ArrayLoader(_data(4), 2)
    with pytest.raises(ValueError, match="state must have the keys"):
        loader.load_state_dict({"epoch": 1})


@pytest.mark.parametrize("padding_mode", ["reflect", "constant"])
def test_batched_crop_and_flip_equal_a_per_sample_reference(padding_mode):
    images = torch.randn(16, 3, 6, 5, generator=torch.Generator().manual_seed(3))
    augment = Augment(crop_padding=2, padding_mode=padding_mode)
    out = augment(images, torch.Generator().manual_seed(11))
    # the same draws, in the same order, applied one sample at a time
    generator = torch.Generator().manual_seed(11)
    shifts = torch.randint(0, 5, (2, 16), generator=generator)
    flips = torch.rand(16, generator=generator) < 0.5
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode=padding_mode)
    for i in range(16):
        dy, dx = shifts[0, i].item(), shifts[1, i].item()
        expected = padded[i, :, dy : dy + 6, dx : dx + 5]
        if flips[i]:
            expected = expected.flip(2)
        assert torch.equal(out[i], expected)


def test_default_augment_crops_and_flips_cifar10_only():
    assert default_augment("cifar10") == Augment(crop_padding=4, flip=True)
    assert default_augment("mnist") is None
    assert default_augment("digits") is None
