"""`as_source`: whatever data a user brings, turned into batches at a batch size the library chooses.

Four kinds of data, in every entry point (`lr_find`, `Trainer`, `tune`, the CLI):

===============  ===================================================================  ==========
kind             what the user passes                                                 resume
===============  ===================================================================  ==========
``arrays``       `ArrayData` or an ``(inputs, targets)`` pair of tensors: the fast     exact
                 path, device-resident (`ArrayLoader`)
``dataset``      any map-style ``torch.utils.data.Dataset``: the library builds the    exact
                 ``DataLoader`` (workers, pinned memory, persistent workers) with a
                 sampler seeded by ``(seed, epoch)``; nothing is read into memory
``factory``      ``make_loader(batch_size) -> iterable of batches``, the user's own    epoch
                 pipeline (samplers, collate functions, streaming)
``stream``       a ``torch.utils.data.IterableDataset`` or an endless iterable of      epoch
                 batches, with a declared `steps_per_epoch`
``loader``       a sized iterable of batches with its own batch size (a                epoch
                 ``DataLoader`` the user built); the batch size is not ours to choose
===============  ===================================================================  ==========

Every loader built here has one interface (`Loader`): ``len()`` batches per epoch, iteration
that continues from the current position, ``epoch``/``batch_index``, ``state_dict()`` and
``peek()``, the first batch of the next iteration, which iteration then yields itself: the
first-batch checks never consume the user's data.

Resume: for ``arrays`` and ``dataset`` the order is a function of ``(seed, epoch)``, so a run
resumed mid-epoch skips the batches already seen without reading them and sees exactly the
batches an uninterrupted run sees (random transforms inside a ``Dataset`` draw from the worker
RNGs and are reproducible per run, not per position). A ``factory`` resumed mid-epoch starts a
fresh pass and reads past the batches already seen (exact when the user's loader is seeded per
pass); a ``stream`` continues from a fresh iterator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from superconverge.batches import BatchFn, check_batch_fn, count, split_batch
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import ArrayLoader, Augment

KINDS = ("arrays", "dataset", "factory", "stream", "loader")
_MIX = 0x9E3779B1  # the same seed spreading as ArrayLoader: the same order for the same seed


class Loader(Protocol):
    """What the range test, the loop and the recipe iterate (`ArrayLoader` is one)."""

    epoch: int
    batch_index: int

    @property
    def batch_size(self) -> int: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def state_dict(self) -> dict[str, int]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _check_count(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def epoch_order(
    count: int, seed: int, epoch: int, *, shuffle: bool = True, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """This rank's sample indices for `epoch`: a permutation seeded by ``(seed, epoch)``, the
    same as `ArrayLoader`'s, so a ``Dataset`` and the same data as `ArrayData` batch alike."""
    if shuffle:
        key = (int(seed) * _MIX + epoch + 1) % (2**63)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(key))
    else:
        order = torch.arange(count)
    if world_size > 1:
        per_rank = -(-count // world_size)
        total = per_rank * world_size
        if total > count:  # wrap around so every rank gets as many samples
            order = torch.cat([order, order[: total - count]])
        order = order[rank:total:world_size]
    return order


class _PositionBatches(Sampler[list[int]]):
    """The batch sampler of a `DatasetLoader`: the batches of its current epoch from its
    current position, read when the ``DataLoader`` starts an iteration (also with persistent
    workers, which re-read their batch sampler at each new iteration)."""

    def __init__(self, owner: DatasetLoader) -> None:
        self.owner = owner

    def __len__(self) -> int:
        return len(self.owner) - self.owner.batch_index

    def __iter__(self) -> Iterator[list[int]]:
        owner = self.owner
        order = epoch_order(
            len(owner.dataset),
            owner.seed,
            owner.epoch,
            shuffle=owner.shuffle,
            rank=owner.rank,
            world_size=owner.world_size,
        )
        size = owner.batch_size
        for batch in range(owner.batch_index, len(owner)):
            yield order[batch * size : (batch + 1) * size].tolist()


class _PositionLoader:
    """Shared by the loaders here: the position, ``peek`` and the batch-size rule."""

    name: str
    epoch: int
    batch_index: int
    _batch_size: int

    def __init__(self, name: str, batch_size: int, seed: int) -> None:
        self.name = name
        self.seed = int(seed)
        self.epoch = 0
        self.batch_index = 0
        self._batch_size = _check_count("batch_size", batch_size)
        self._peeked: tuple[Any, Iterator[Any]] | None = None  # (first batch, the rest)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        _check_count("batch_size", value)
        if self.batch_index != 0:
            raise RuntimeError(
                f"batch_size can change between epochs only; epoch {self.epoch} is at batch "
                f"{self.batch_index}"
            )
        if value != self._batch_size:
            self._peeked = None
            self._batch_size = value
            self._resize()

    def _resize(self) -> None:
        """React to a new batch size (rebuild what depends on it)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def _batches(self) -> Iterator[Any]:
        """The batches of the current epoch from the current position."""
        raise NotImplementedError

    def _first(self, batches: Iterator[Any]) -> Any:
        try:
            return next(batches)
        except StopIteration:
            raise ValueError(f"{self.name} yielded no batches: it is empty") from None

    def peek(self) -> Any:
        """The batch the next iteration yields first; iterating yields it (it is not lost)."""
        if self._peeked is None:
            batches = self._batches()
            self._peeked = (self._first(batches), batches)
        return self._peeked[0]

    def __iter__(self) -> Iterator[Any]:
        if self._peeked is not None:
            first, rest = self._peeked
            self._peeked = None
            batches: Iterator[Any] = itertools.chain([first], rest)
        else:
            batches = self._batches()
        total = len(self)
        while self.batch_index < total:
            try:
                batch = next(batches)
            except StopIteration:
                break
            self.batch_index += 1
            yield batch
        self._end_epoch()

    def _end_epoch(self) -> None:
        self.epoch += 1
        self.batch_index = 0

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
            _check_count(f"state[{key!r}]", state[key], minimum=0)
        self._peeked = None
        self.batch_index = 0
        self.batch_size = state["batch_size"]
        self.epoch, self.seed, self.batch_index = (
            state["epoch"],
            state["seed"],
            state["batch_index"],
        )


class DatasetLoader(_PositionLoader):
    """Batches of a map-style ``Dataset`` through one ``DataLoader`` built here.

    Each epoch's order is `epoch_order` ``(seed, epoch)``; a position ``(epoch, batch)`` starts
    the ``DataLoader`` at that batch, so resuming reads no sample twice. Persistent workers stay
    alive across epochs and batch sizes (the batch sampler is re-read at each iteration).

    Args:
        dataset: a map-style ``Dataset`` with ``len()``.
        batch_size: samples per batch; may change between epochs.
        shuffle, drop_last, seed, rank, world_size: as for `ArrayLoader`.
        num_workers, pin_memory, persistent_workers, collate_fn, prefetch_factor: passed to
            the ``DataLoader`` (persistent workers default to on when there are workers).
        name: the argument the data came from, for messages.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        prefetch_factor: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        name: str = "train_data",
    ) -> None:
        super().__init__(name, batch_size, seed)
        if not isinstance(dataset, Sized) or len(dataset) == 0:
            raise ValueError(f"{name} must not be empty, got a Dataset of 0 samples")
        _check_count("num_workers", num_workers, minimum=0)
        _check_count("world_size", world_size)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")
        self.dataset = dataset
        self.shuffle, self.drop_last = shuffle, drop_last
        self.rank, self.world_size = rank, world_size
        self.num_workers = num_workers
        persistent = num_workers > 0 if persistent_workers is None else persistent_workers
        extra: dict[str, Any] = {}
        if num_workers > 0:
            extra["persistent_workers"] = bool(persistent)
            if prefetch_factor is not None:
                extra["prefetch_factor"] = prefetch_factor
            # the workers' RNG (random transforms) derives from this: the same on every run
            extra["generator"] = torch.Generator().manual_seed(self.seed)
        self.loader = DataLoader(
            dataset,
            batch_sampler=_PositionBatches(self),
            num_workers=num_workers,
            pin_memory=pin_memory,
            collate_fn=collate_fn,
            **extra,
        )

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch."""
        return -(-len(self.dataset) // self.world_size)

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self._batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def _batches(self) -> Iterator[Any]:
        return iter(self.loader)

    def _first(self, batches: Iterator[Any]) -> Any:
        try:
            return super()._first(batches)
        except ValueError:
            raise
        except Exception as error:
            item = _describe_item(self.dataset)
            raise TypeError(
                f"{self.name}: the DataLoader could not make a batch of the Dataset's items "
                f"(item 0 is {item}): {type(error).__name__}: {error}. Items must be "
                "(inputs, targets) pairs or dicts of tensors (or pass collate_fn=)"
            ) from error


def _describe_item(dataset: Any) -> str:
    try:
        item = dataset[0]
    except Exception as error:  # the message is about the batch; this is only a hint
        return f"unreadable ({type(error).__name__}: {error})"
    if isinstance(item, tuple | list):
        parts = ", ".join(type(part).__name__ for part in item)
        return f"a {type(item).__name__} of ({parts})"
    return f"a {type(item).__name__}"


class FactoryLoader(_PositionLoader):
    """Batches from the user's own pipeline, ``make_loader(batch_size)``, rebuilt when the batch
    size changes.

    Without `steps_per_epoch` an epoch is one pass over ``make_loader(batch_size)`` (which must
    have ``len()``). With it an epoch is `steps_per_epoch` batches of one continuing stream,
    restarted (``iter()`` again) when it runs out.

    Args:
        make_loader: ``batch_size -> iterable of batches``.
        batch_size: samples per batch asked of `make_loader`.
        steps_per_epoch: batches per epoch for streams; None: ``len(make_loader(batch_size))``.
        batch_fn: the batch hook (`superconverge.batches.split_batch`), for the batch-size check.
        check_batch_size: the first batch must hold `batch_size` samples (or be the only one).
        name: the argument the data came from, for messages.
    """

    def __init__(
        self,
        make_loader: Callable[[int], Iterable[Any]],
        batch_size: int,
        *,
        steps_per_epoch: int | None = None,
        batch_fn: BatchFn | None = None,
        check_batch_size: bool = True,
        name: str = "train_data",
    ) -> None:
        super().__init__(name, batch_size, seed=0)
        if steps_per_epoch is not None:
            _check_count("steps_per_epoch", steps_per_epoch)
        self.make_loader = make_loader
        self.steps_per_epoch = steps_per_epoch
        self.batch_fn = batch_fn
        self.check_batch_size = check_batch_size
        self._iterable: Iterable[Any] | None = None
        self._stream: Iterator[Any] | None = None  # continues across epochs (steps_per_epoch)
        self._checked: int | None = None  # the batch size whose first batch was checked

    def _resize(self) -> None:
        self._iterable = None
        self._stream = None

    @property
    def iterable(self) -> Iterable[Any]:
        """What ``make_loader(batch_size)`` returned (built once per batch size)."""
        if self._iterable is None:
            try:
                built = self.make_loader(self._batch_size)
            except Exception as error:
                raise ValueError(
                    f"{self.name}: make_loader({self._batch_size}) raised "
                    f"{type(error).__name__}: {error}"
                ) from error
            if not isinstance(built, Iterable):
                raise TypeError(
                    f"{self.name}: make_loader({self._batch_size}) must return an iterable of "
                    f"batches, got {type(built).__name__}"
                )
            self._iterable = built
        return self._iterable

    def __len__(self) -> int:
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        iterable = self.iterable
        if not isinstance(iterable, Sized):
            raise ValueError(
                f"{self.name}: make_loader({self._batch_size}) returned a "
                f"{type(iterable).__name__} without len(); pass steps_per_epoch= "
                "(the batches of one epoch)"
            )
        size = len(iterable)
        if size == 0:
            raise ValueError(f"{self.name}: make_loader({self._batch_size}) yielded no batches")
        return size

    def _batches(self) -> Iterator[Any]:
        if self.steps_per_epoch is None:
            batches = iter(self.iterable)
            for _ in range(self.batch_index):  # a fresh pass: read past the batches already seen
                next(batches, None)
            return batches
        return self._continuing()

    def _continuing(self) -> Iterator[Any]:
        restarted = False
        while True:
            if self._stream is None:
                self._stream = iter(self.iterable)
            try:
                batch = next(self._stream)
            except StopIteration:
                self._stream = None
                self._iterable = None  # a new pass: make_loader again (a generator is read once)
                if restarted:  # a fresh iterator that yields nothing: the stream is over
                    raise ValueError(
                        f"{self.name} ran out of batches: the stream ended (a generator can be "
                        "read once; pass make_loader or an iterable that restarts)"
                    ) from None
                restarted = True
                continue
            restarted = False
            yield batch

    def _first(self, batches: Iterator[Any]) -> Any:
        batch = super()._first(batches)
        if self.check_batch_size and self._checked != self._batch_size:
            self._check_size(batch)
            self._checked = self._batch_size
        return batch

    def _check_size(self, batch: Any) -> None:
        found = count(split_batch(batch, self.batch_fn, self.name)[1])
        only = self.steps_per_epoch is None and isinstance(self.iterable, Sized)
        if found > self._batch_size or (
            found < self._batch_size and not (only and len(self.iterable) == 1)  # type: ignore[arg-type]
        ):
            raise ValueError(
                f"{self.name}: make_loader({self._batch_size}) yielded a first batch of {found} "
                f"samples; the loader must use the batch size it is given (the recipe chooses it)"
            )

    def __iter__(self) -> Iterator[Any]:
        if self._peeked is None and self.check_batch_size and self._checked != self._batch_size:
            self.peek()  # check the batch size on the batch the epoch starts with
        return super().__iter__()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._stream = None


@dataclass(frozen=True)
class LoaderOptions:
    """How a ``DataLoader`` is built for a ``Dataset`` (and an ``IterableDataset``).

    `pin_memory` None: on when batches go to CUDA. `persistent_workers` None: on when
    `num_workers` > 0 (workers start once, not every epoch).
    """

    num_workers: int = 0
    pin_memory: bool | None = None
    persistent_workers: bool | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    prefetch_factor: int | None = None

    def __post_init__(self) -> None:
        _check_count("num_workers", self.num_workers, minimum=0)
        if self.collate_fn is not None and not callable(self.collate_fn):
            raise TypeError(f"collate_fn must be callable or None, got {self.collate_fn!r}")


@dataclass(frozen=True)
class DataSource:
    """What the user brought, and how to make a `Loader` of it at a given batch size.

    Build it with `as_source`. ``fixed_batch_size`` is set for ``loader`` (the user's loader
    has its own batch size); ``num_samples`` is None where it is unknown (factories, streams).
    """

    kind: str
    data: Any
    name: str = "train_data"
    steps_per_epoch: int | None = None
    batch_fn: BatchFn | None = None
    options: LoaderOptions = LoaderOptions()

    @property
    def fixed_batch_size(self) -> int | None:
        if self.kind != "loader":
            return None
        size = getattr(self.data, "batch_size", None)
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    @property
    def num_samples(self) -> int | None:
        """Samples per epoch where known without reading the data."""
        if self.kind == "arrays":
            return len(self.data)
        if self.kind == "dataset":
            return len(self.data)
        if self.kind == "loader" and isinstance(self.data, ArrayLoader):
            return self.data.num_samples
        dataset = getattr(self.data, "dataset", None)  # a DataLoader over a map-style Dataset
        if (
            self.kind == "loader"
            and isinstance(dataset, Sized)
            and not isinstance(dataset, IterableDataset)
        ):
            return len(dataset)
        return None

    def describe(self) -> str:
        what = {
            "arrays": f"in-memory tensors ({self.num_samples} samples)",
            "dataset": f"a Dataset ({self.num_samples} samples, {self.options.num_workers} workers)",
            "factory": "a loader factory make_loader(batch_size)",
            "stream": f"a stream ({self.steps_per_epoch} steps per epoch)",
            "loader": f"a loader of its own (batch size {self.fixed_batch_size})",
        }
        return what[self.kind]

    def loader(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        device: torch.device | str | None = None,
        augment: Augment | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> Any:
        """A `Loader` of this data at `batch_size` (a ``loader`` source keeps its own size).

        Raises:
            ValueError: `augment` for data that is not in-memory tensors (a ``Dataset`` does
                its own transforms).
        """
        _check_count("batch_size", batch_size)
        if augment is not None and self.kind != "arrays":
            raise ValueError(
                f"augment applies to in-memory tensors (ArrayData); {self.name} is "
                f"{self.describe()}: put the transforms in the Dataset or the loader"
            )
        target = torch.device(device) if device is not None else None
        if self.kind == "arrays":
            return ArrayLoader(
                self.data,
                batch_size,
                shuffle=shuffle,
                drop_last=drop_last,
                seed=seed,
                device=target,
                augment=augment,
                rank=rank,
                world_size=world_size,
            )
        options = self.options
        pin = options.pin_memory
        if pin is None:
            pin = target is not None and target.type == "cuda"
        if self.kind == "dataset":
            return DatasetLoader(
                self.data,
                batch_size,
                shuffle=shuffle,
                drop_last=drop_last,
                seed=seed,
                num_workers=options.num_workers,
                pin_memory=pin,
                persistent_workers=options.persistent_workers,
                collate_fn=options.collate_fn,
                prefetch_factor=options.prefetch_factor,
                rank=rank,
                world_size=world_size,
                name=self.name,
            )
        if self.kind == "factory":
            return FactoryLoader(
                self.data,
                batch_size,
                steps_per_epoch=self.steps_per_epoch,
                batch_fn=self.batch_fn,
                name=self.name,
            )
        if self.kind == "stream":
            if isinstance(self.data, IterableDataset):
                dataset = self.data

                def make_loader(size: int) -> Iterable[Any]:
                    extra: dict[str, Any] = {}
                    if options.num_workers > 0:
                        extra["persistent_workers"] = options.persistent_workers is not False
                    return DataLoader(
                        dataset,
                        batch_size=size,
                        num_workers=options.num_workers,
                        pin_memory=pin,
                        collate_fn=options.collate_fn,
                        **extra,
                    )

                return FactoryLoader(
                    make_loader,
                    batch_size,
                    steps_per_epoch=self.steps_per_epoch,
                    batch_fn=self.batch_fn,
                    check_batch_size=False,
                    name=self.name,
                )
            stream = self.data
            return FactoryLoader(
                lambda _size: stream,
                batch_size,
                steps_per_epoch=self.steps_per_epoch,
                batch_fn=self.batch_fn,
                check_batch_size=False,
                name=self.name,
            )
        # "loader": the user's own, used as it is (an ArrayLoader or a loader built here too)
        if has_position(self.data):
            return self.data
        own = self.data
        return FactoryLoader(
            lambda _size: own,
            self.fixed_batch_size or batch_size,
            steps_per_epoch=self.steps_per_epoch,
            batch_fn=self.batch_fn,
            check_batch_size=False,
            name=self.name,
        )


def as_source(
    data: Any,
    name: str = "train_data",
    *,
    steps_per_epoch: int | None = None,
    batch_fn: BatchFn | None = None,
    options: LoaderOptions | None = None,
) -> DataSource:
    """Recognise what the user brought (see the module's table) and return its `DataSource`.

    Args:
        data: `ArrayData`, an ``(inputs, targets)`` pair of tensors, a map-style ``Dataset``,
            a loader factory ``make_loader(batch_size)``, an ``IterableDataset`` or endless
            iterable (with `steps_per_epoch`), a sized iterable of batches, or a `DataSource`.
        name: the argument it came from (``train_data``, ``val_data``, ...), for messages.
        steps_per_epoch: batches per epoch; required for streams, optional for factories.
        batch_fn: the batch hook, ``batch -> (inputs, targets)``.
        options: how ``DataLoader`` s are built for a ``Dataset``.

    Raises:
        ValueError: a stream without `steps_per_epoch`, empty data.
        TypeError: none of the kinds above; the message names `name` and what was found.

    Example:
        >>> as_source((torch.zeros(4, 2), torch.zeros(4))).kind
        'arrays'
        >>> as_source(lambda batch_size: [], steps_per_epoch=3).kind
        'factory'
    """
    check_batch_fn(batch_fn)
    if steps_per_epoch is not None:
        _check_count("steps_per_epoch", steps_per_epoch)
    options = options if options is not None else LoaderOptions()
    if isinstance(data, DataSource):
        return data
    common: dict[str, Any] = {
        "name": name,
        "steps_per_epoch": steps_per_epoch,
        "batch_fn": batch_fn,
        "options": options,
    }
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        data = ArrayData(*data)
    if isinstance(data, ArrayData):
        if len(data) == 0:
            raise ValueError(f"{name} must not be empty, got 0 samples")
        return DataSource("arrays", data, **common)
    if isinstance(data, IterableDataset) or (
        isinstance(data, Iterable) and not isinstance(data, Dataset) and not _has_len(data)
    ):
        if steps_per_epoch is None:
            raise ValueError(
                f"steps_per_epoch must be given for {name}: it is a "
                f"{type(data).__name__} without len() (a stream); say how many batches make "
                "an epoch"
            )
        return DataSource("stream", data, **common)
    if isinstance(data, Dataset):
        if not isinstance(data, Sized):
            raise TypeError(f"{name} is a map-style Dataset without len(); define __len__")
        if len(data) == 0:
            raise ValueError(f"{name} must not be empty, got a Dataset of 0 samples")
        return DataSource("dataset", data, **common)
    if isinstance(data, Iterable):  # sized: a loader the user built, with its own batch size
        if isinstance(data, Sized) and len(data) == 0:
            raise ValueError(f"{name} must not be empty, got 0 batches")
        return DataSource("loader", data, **common)
    if callable(data) and not isinstance(data, torch.nn.Module | type):
        return DataSource("factory", data, **common)
    raise TypeError(
        f"{name} must be ArrayData, an (inputs, targets) pair of tensors, a Dataset, a loader "
        f"factory make_loader(batch_size), an IterableDataset with steps_per_epoch, or an "
        f"iterable of batches; got {type(data).__name__}"
    )


def has_position(loader: object) -> TypeGuard[ArrayLoader | _PositionLoader]:
    """The loader keeps a position (``state_dict``/``load_state_dict``): an `ArrayLoader` or a
    loader built here. Checkpoints and the range test's snapshot save and restore it."""
    return isinstance(loader, ArrayLoader | _PositionLoader)


def _has_len(data: object) -> bool:
    """``len(data)`` works (a ``DataLoader`` over an ``IterableDataset`` is Sized but raises)."""
    try:
        len(data)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def peek(loader: Any) -> Any:
    """The first batch the next iteration of `loader` yields, without losing it.

    An `ArrayLoader` gives two samples of its data (no iteration: nothing moves); the loaders
    of this module keep the batch and yield it first; any other iterable is iterated once
    afresh (``iter()`` again; a one-shot generator would lose that batch: wrap it with
    `as_source`).
    """
    if isinstance(loader, ArrayLoader):
        return loader.inputs[:2], loader.targets[:2]
    if isinstance(loader, _PositionLoader):
        return loader.peek()
    batches = iter(loader)
    try:
        return next(batches)
    except StopIteration:
        raise ValueError("the data yielded no batches: it is empty") from None


def first_batch(
    loader: Any, batch_fn: BatchFn | None = None, name: str = "train_data"
) -> tuple[Any, Any]:
    """``(inputs, targets)`` of `peek` (the batch hook applied), for the first-batch checks."""
    return split_batch(peek(loader), batch_fn, name)
