"""Loaders that keep a position, and `ArrayLoader`: batches by slicing tensors that live on the
training device.

A per-sample Python loader (``DataLoader(TensorDataset(...))``) indexes, collates and copies
every sample; here one epoch is one permutation of indices and each batch one gather, and
augmentation runs on the whole batch on the device.

Every loader built by the library (this `ArrayLoader`, and `data.pipelines`' loaders over a
``Dataset`` or a loader factory) is a `PositionLoader`: an epoch, the next batch in it, a batch
size that may change between epochs and a seed, saved by ``state_dict()``. The sample order of
an epoch is `epoch_order` ``(seed, epoch)`` for all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from superconverge.data.datasets import ArrayData

_MIX = 0x9E3779B1  # spreads (seed, epoch, batch) over the generator's seed space


def check_integer(name: str, value: object, minimum: int = 1) -> int:
    """An integer >= `minimum` (a bool is not one), else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def shut_down_workers(loader: Any) -> None:
    """Stop the worker processes of a ``DataLoader`` (its persistent iterator) or of one of its
    iterators now, as torch does when the iterator is deleted, without waiting for the garbage
    collector to find it; a ``DataLoader`` starts new workers at its next iteration. Anything
    else is left alone."""
    iterator = getattr(loader, "_iterator", None) if isinstance(loader, DataLoader) else loader
    stop = getattr(iterator, "_shutdown_workers", None)
    if callable(stop):
        stop()
    if isinstance(loader, DataLoader):
        loader._iterator = None  # noqa: SLF001 (torch's own shutdown, see DataLoader.__del__)


def has_len(data: object) -> bool:
    """``len(data)`` works (a ``DataLoader`` over an ``IterableDataset`` is Sized but raises)."""
    try:
        len(data)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def describe_item(dataset: Any) -> str:
    """What item 0 of `dataset` is, for a message about batches that could not be made."""
    try:
        item = dataset[0]
    except Exception as error:  # the message is about the batch; this is only a hint
        return f"unreadable ({type(error).__name__}: {error})"
    if isinstance(item, tuple | list):
        parts = ", ".join(type(part).__name__ for part in item)
        return f"a {type(item).__name__} of ({parts})"
    return f"a {type(item).__name__}"


def check_world(rank: int, world_size: int) -> None:
    """`world_size` >= 1 processes and this process's `rank` among them."""
    check_integer("world_size", world_size)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")


def mixed_seed(seed: int, *keys: int) -> int:
    for key in keys:
        seed = (seed * _MIX + key + 1) % (2**63)
    return seed


def epoch_order(
    count: int,
    seed: int,
    epoch: int,
    *,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
    pad: bool = True,
) -> torch.Tensor:
    """This rank's sample indices for `epoch`: a permutation seeded by ``(seed, epoch)``, drawn
    on the CPU (the same order on every device), so a ``Dataset`` and the same data as
    `ArrayData` batch alike. Under DDP each rank takes every `world_size`-th index, padded by
    wrapping around (as ``DistributedSampler``) so that every rank gets as many samples;
    without `pad` (an evaluation, whose sums are reduced once) each sample is read once."""
    if shuffle:
        generator = torch.Generator().manual_seed(mixed_seed(int(seed), epoch))
        order = torch.randperm(count, generator=generator)
    else:
        order = torch.arange(count)
    if world_size > 1 and not pad:
        return order[rank::world_size]
    if world_size > 1:
        total = samples_per_rank(count, world_size) * world_size
        if total > count:  # wrap around so every rank gets as many samples
            order = torch.cat([order, order[: total - count]])
        order = order[rank:total:world_size]
    return order


def samples_per_rank(count: int, world_size: int) -> int:
    """Samples each of `world_size` ranks sees per epoch (the last ones wrap around)."""
    return -(-count // world_size)


class PositionLoader:
    """The position every loader built here keeps: ``epoch``, ``batch_index`` (the next batch
    of the epoch), the batch size (which may change between epochs only) and the seed.
    ``state_dict()`` saves them; checkpoints and the range test's snapshot restore them."""

    epoch: int
    batch_index: int
    seed: int
    _batch_size: int

    def __init__(self, batch_size: int, seed: int) -> None:
        self.seed = int(seed)
        self.epoch = 0
        self.batch_index = 0  # the next batch of the current epoch
        self._batch_size = check_integer("batch_size", batch_size)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        check_integer("batch_size", value)
        if self.batch_index != 0:
            raise RuntimeError(
                f"batch_size can change between epochs only; epoch {self.epoch} is at batch "
                f"{self.batch_index}"
            )
        if value != self._batch_size:
            self._batch_size = value
            self._resize()

    def _resize(self) -> None:
        """React to a new batch size (rebuild what depends on it)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def state_dict(self) -> dict[str, int]:
        """The position: the epoch, the next batch in it, the batch size and the seed."""
        return {
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "batch_size": self._batch_size,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"epoch", "batch_index", "batch_size", "seed"}
        if not isinstance(state, dict) or set(state) != expected:
            raise ValueError(f"state must have the keys {sorted(expected)}, got {state!r}")
        for key in expected:
            check_integer(f"state[{key!r}]", state[key], minimum=0)
        self.batch_index = 0
        self.batch_size = state["batch_size"]
        self.epoch, self.seed, self.batch_index = (
            state["epoch"],
            state["seed"],
            state["batch_index"],
        )


class SampleOrder:
    """What the loaders that draw samples by index share (`ArrayLoader`, and `DatasetLoader`
    over a ``Dataset``): each epoch's order (`epoch_order`), samples per rank, batches per
    epoch. A mix-in beside `PositionLoader`, which holds the position it reads."""

    seed: int
    epoch: int
    shuffle: bool
    drop_last: bool
    rank: int
    world_size: int
    _batch_size: int
    # ranks padded to equal sample counts (training: every rank steps alike); an evaluation
    # loader reads each sample once (a padded one counted a duplicate: 343/360 for 342/359)
    pad: bool = True

    def _sample_count(self) -> int:
        """How many samples the data holds (all ranks together)."""
        raise NotImplementedError

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch."""
        if not self.pad:
            return len(range(self.rank, self._sample_count(), self.world_size))
        return samples_per_rank(self._sample_count(), self.world_size)

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self._batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def epoch_indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, on the CPU."""
        return epoch_order(
            self._sample_count(),
            self.seed,
            self.epoch,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
            pad=self.pad,
        )


def has_position(loader: object) -> TypeGuard[PositionLoader]:
    """The loader keeps a position (``state_dict``/``load_state_dict``): an `ArrayLoader` or a
    loader built here. Checkpoints and the range test's snapshot save and restore it."""
    return isinstance(loader, PositionLoader)


@dataclass(frozen=True)
class Augment:
    """Tensor-level augmentation of image batches ``(B, C, H, W)``.

    The standard CIFAR-10 recipe (He et al. 2016): pad by `crop_padding` pixels (reflect),
    take a random crop of the original size, and flip horizontally with probability 1/2.
    """

    crop_padding: int = 4
    flip: bool = True
    padding_mode: str = "reflect"

    def __post_init__(self) -> None:
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int):
            raise TypeError(f"crop_padding must be an integer, got {self.crop_padding!r}")
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding!r}")
        if self.padding_mode not in ("reflect", "constant", "replicate"):
            raise ValueError(
                f"padding_mode must be one of 'reflect', 'constant', 'replicate', "
                f"got {self.padding_mode!r}"
            )

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.ndim != 4:
            shape = tuple(images.shape)
            raise ValueError(f"augmentation needs image batches (B, C, H, W), got {shape}")
        count, channels, height, width = images.shape
        device = images.device
        pad = self.crop_padding
        if pad == 0 and not self.flip:
            return images
        padded = F.pad(images, (pad, pad, pad, pad), mode=self.padding_mode) if pad else images
        padded_width = width + 2 * pad
        # One gather does crop and flip: each output pixel's flat index in its padded image.
        # (4x faster on CPU than advanced indexing of (batch, row, column), measured at B=512.)
        rows = torch.arange(height, device=device)[:, None] * padded_width
        cols = torch.arange(width, device=device)[None, :]
        window = (rows + cols).reshape(-1)
        if pad:
            shifts = torch.randint(
                0, 2 * pad + 1, (2, count), generator=generator, device=generator.device
            ).to(device, non_blocking=True)
            start = shifts[0] * padded_width + shifts[1]
        else:
            start = torch.zeros(count, dtype=torch.long, device=device)
        index = start[:, None] + window[None, :]
        if self.flip:
            mirrored = (rows + (width - 1 - cols)).reshape(-1)
            flips = (torch.rand(count, generator=generator, device=generator.device) < 0.5).to(
                device, non_blocking=True
            )
            index = torch.where(flips[:, None], start[:, None] + mirrored[None, :], index)
        flat = padded.reshape(count, channels, -1)
        out = flat.gather(2, index[:, None, :].expand(count, channels, height * width))
        return out.reshape(count, channels, height, width)


# data sets trained with the standard crop-and-flip augmentation (He et al. 2016; the
# super-convergence runs, arXiv:1708.07120); digits and MNIST-style digits are not flipped
AUGMENTED_DATASETS = ("cifar10",)


def default_augment(name: str) -> Augment | None:
    """The augmentation a data set is trained with by default: `Augment()` for CIFAR-10, else None.

    Example:
        >>> default_augment("cifar10")
        Augment(crop_padding=4, flip=True, padding_mode='reflect')
        >>> default_augment("mnist") is None
        True
    """
    return Augment() if name in AUGMENTED_DATASETS else None


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; CUDA asked for without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be available, got {device!r} (CUDA is not available)")
    count = torch.cuda.device_count() if resolved.type == "cuda" else 0
    if resolved.index is not None and resolved.type == "cuda" and resolved.index >= count:
        # torch's own error came at the first tensor moved there: "invalid device ordinal"
        raise ValueError(
            f"device must be available, got {device!r} (CUDA devices here: "
            f"{', '.join(f'cuda:{i}' for i in range(count))})"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():  # torch's own error
        raise ValueError(f"device must be available, got {device!r} (MPS is not available)")
    return resolved


class ArrayLoader(SampleOrder, PositionLoader):
    """Batches of ``(inputs, targets)`` sliced from tensors held on `device`.

    Each epoch draws a permutation from a generator seeded with ``(seed, epoch)``, so the order
    is the same on every run and every rank. Augmentation randomness is seeded with
    ``(seed, epoch, batch)``, so a run resumed at a saved position sees the same batches. Both
    are drawn on the CPU (a few bytes per sample, then copied): the order and the crops are the
    same on the CPU and on a GPU.
    Iterating continues from the current position: an epoch interrupted after k batches resumes
    at batch k (which is what resuming a checkpoint needs); a finished epoch starts the next.

    Args:
        data: an `ArrayData` (or a ``(inputs, targets)`` pair of tensors).
        batch_size: samples per batch on this rank; may change between epochs.
        shuffle: permute each epoch (False: the stored order).
        drop_last: drop the last incomplete batch.
        seed: seeds the permutations and augmentation.
        device: where the tensors live and batches come out; default: where `data` is.
        augment: an `Augment` for image batches, or None.
        rank, world_size: under DDP, each rank takes every `world_size`-th sample of the
            permutation, padded by wrapping around (as ``DistributedSampler``) so that every
            rank gets the same number of batches.

    Example:
        >>> data = (torch.arange(10.0), torch.arange(10))
        >>> [targets.tolist() for _, targets in ArrayLoader(data, batch_size=4, shuffle=False)]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """

    def __init__(
        self,
        data: ArrayData | tuple[torch.Tensor, torch.Tensor],
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        augment: Augment | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if isinstance(data, tuple):
            data = ArrayData(*data)
        if not isinstance(data, ArrayData):
            raise TypeError(f"data must be ArrayData or an (inputs, targets) pair, got {data!r}")
        if len(data) == 0:
            raise ValueError("data must hold at least one sample, got an empty data set")
        check_world(rank, world_size)
        if augment is not None and not isinstance(augment, Augment):
            raise TypeError(f"augment must be an Augment or None, got {augment!r}")
        target_device = resolve_device(device) if device is not None else data.inputs.device
        self.inputs = data.inputs.to(target_device)
        self.targets = data.targets.to(target_device)
        self.device = target_device
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.rank = rank
        self.world_size = world_size
        super().__init__(batch_size, seed)

    def _sample_count(self) -> int:
        return len(self.inputs)

    def _generator(self, *keys: int) -> torch.Generator:
        # always a CPU generator: the same draws on every device (a CUDA generator would give
        # another order, and torch.randperm refuses one without an explicit device)
        return torch.Generator().manual_seed(mixed_seed(self.seed, *keys))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.epoch_indices().to(self.device)
        batches = len(self)
        while self.batch_index < batches:
            start = self.batch_index * self._batch_size
            index = order[start : start + self._batch_size]
            inputs = self.inputs[index]
            if self.augment is not None:
                inputs = self.augment(inputs, self._generator(self.epoch, self.batch_index))
            self.batch_index += 1
            yield inputs, self.targets[index]
        self.epoch += 1
        self.batch_index = 0
