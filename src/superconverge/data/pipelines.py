"""Loaders over what the user brings when it is not in-memory tensors: a map-style ``Dataset``
through one ``DataLoader`` built here (`DatasetLoader`), and the user's own pipeline, a loader
factory ``make_loader(batch_size)`` or a stream (`FactoryLoader`; for validation and test data
`EvaluationLoader`, which reads a stream to its end or a declared number of batches).

Both keep a position like `ArrayLoader` (`PositionLoader`) and can ``peek()``: the first batch
of the next iteration, which iteration then yields itself, so that the first-batch checks never
consume the user's data. `superconverge.data.sources` decides which loader a source gets.
"""

from __future__ import annotations

import itertools
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from superconverge._warnings import user_stacklevel
from superconverge.batches import BatchFn, count, split_batch
from superconverge.data.loader import (
    ArrayLoader,
    PositionLoader,
    SampleOrder,
    check_integer,
    check_world,
    describe_item,
    has_len,
    mixed_seed,
    shut_down_workers,
)


class _PositionBatches(Sampler[list[int]]):
    """The batch sampler of a `DatasetLoader`: the batches of its current epoch from its
    current position, read when the ``DataLoader`` starts an iteration (also with persistent
    workers, which re-read their batch sampler at each new iteration)."""

    def __init__(self, owner: DatasetLoader) -> None:
        # a weak reference: a cycle (owner -> DataLoader -> this -> owner) would keep the
        # persistent workers of a finished run alive until the garbage collector found it
        self._owner = weakref.ref(owner)

    @property
    def owner(self) -> DatasetLoader:
        owner = self._owner()
        if owner is None:
            raise RuntimeError("the DatasetLoader of this batch sampler was deleted")
        return owner

    def __len__(self) -> int:
        return len(self.owner) - self.owner.batch_index

    def __iter__(self) -> Iterator[list[Any]]:
        owner = self.owner
        order = owner.epoch_indices()
        size = owner.batch_size
        for batch in range(owner.batch_index, len(owner)):
            indices = order[batch * size : (batch + 1) * size].tolist()
            if owner.num_workers == 0:  # the main process's RNG: the checkpoint restores it
                yield indices
            else:  # each batch's RNG seed travels with its indices (`_SeededItems`)
                key = mixed_seed(owner.seed, owner.epoch, batch, owner.rank)
                yield [(key, index) for index in indices]


class _SeededItems(Dataset[Any]):
    """The user's Dataset as a `DatasetLoader` with workers reads it: each batch's items come
    with a seed of (seed, epoch, batch, rank), and the worker seeds torch's, Python's and
    NumPy's RNGs with it before the batch, so that random transforms give each batch the same
    values whichever worker reads it, in a run and in its resume (workers seeded once per run
    gave a resumed run other crops from the resume on: weights apart by up to 0.43)."""

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset
        self._seeded: int | None = None  # the batch seed this process's RNGs were last given

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _seed(self, seed: int) -> None:
        """Once per batch: items read one by one must not each restart the batch's RNG."""
        if seed != self._seeded:
            _seed_everything(seed)
            self._seeded = seed

    def __getitem__(self, key: tuple[int, int]) -> Any:
        self._seed(key[0])
        return self.dataset[key[1]]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        self._seed(keys[0][0])  # one batch: one seed
        indices = [index for _, index in keys]
        many = getattr(self.dataset, "__getitems__", None)
        return list(many(indices)) if callable(many) else [self.dataset[i] for i in indices]


def _seed_everything(seed: int) -> None:
    import random
    import sys

    torch.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")  # seeded where the Dataset uses it (it is then imported)
    if numpy is not None:
        numpy.random.seed(seed % 2**32)


class PeekingLoader(PositionLoader):
    """The loaders here: a `PositionLoader` that can ``peek`` without losing the batch, and
    iterates `_batches` (the batches of the current epoch from the current position)."""

    def __init__(self, name: str, batch_size: int, seed: int) -> None:
        super().__init__(batch_size, seed)
        self.name = name
        self._peeked: tuple[Any, Iterator[Any]] | None = None  # (first batch, the rest)

    def _resize(self) -> None:
        self._peeked = None

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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._peeked = None

    def close(self) -> None:
        """Stop the DataLoader workers this loader holds now (`tune` ends each run with it);
        the position is kept, a peeked batch is read again, the next iteration starts anew."""
        if self._peeked is not None:
            shut_down_workers(self._peeked[1])
            self._peeked = None


class DatasetLoader(SampleOrder, PeekingLoader):
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
        check_integer("num_workers", num_workers, minimum=0)
        check_world(rank, world_size)
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
            # the workers' first RNG state derives from this; each batch then reseeds them
            extra["generator"] = torch.Generator().manual_seed(self.seed)
        self.loader = DataLoader(
            _SeededItems(dataset) if num_workers > 0 else dataset,
            batch_sampler=_PositionBatches(self),
            num_workers=num_workers,
            pin_memory=pin_memory,
            collate_fn=collate_fn,
            **extra,
        )

    def _sample_count(self) -> int:
        return len(self.dataset)

    def close(self) -> None:
        super().close()
        shut_down_workers(self.loader)  # persistent workers

    def _batches(self) -> Iterator[Any]:
        return iter(self.loader)

    def _first(self, batches: Iterator[Any]) -> Any:
        try:
            return super()._first(batches)
        except (ValueError, OSError, MemoryError):  # a read error is not the items' fault
            raise
        except Exception as error:
            raise collate_error(self.name, self.dataset, error) from error


COLLATE_FN_ADVICE = "(or pass collate_fn=)"  # the CLI names its flag instead


class CollateError(TypeError):
    """A Dataset whose items the DataLoader's collate function cannot batch."""


def collate_error(name: str, dataset: Any, error: Exception) -> CollateError:
    """The error for a Dataset whose items the DataLoader's collate function cannot batch."""
    return CollateError(
        f"{name}: the DataLoader could not make a batch of the Dataset's items (item 0 is "
        f"{describe_item(dataset)}): {type(error).__name__}: {error}. Items must be "
        f"(inputs, targets) pairs or dicts of tensors {COLLATE_FN_ADVICE}"
    )


class FactoryLoader(PeekingLoader):
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
        ranks: (rank, world size) of a training loader under torchrun: what `make_loader`
            returns is checked for sharding (`warn_if_unsharded`) the first time.
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
        ranks: tuple[int, int] = (0, 1),
    ) -> None:
        super().__init__(name, batch_size, seed=0)
        self.ranks = ranks
        if steps_per_epoch is not None:
            check_integer("steps_per_epoch", steps_per_epoch)
        self.make_loader = make_loader
        self.steps_per_epoch = steps_per_epoch
        self.batch_fn = batch_fn
        self.check_batch_size = check_batch_size
        self._iterable: Iterable[Any] | None = None
        self._stream: Iterator[Any] | None = None  # continues across epochs (steps_per_epoch)
        self._checked: int | None = None  # the batch size whose first batch was checked

    def _resize(self) -> None:
        super()._resize()
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
            if self.ranks[1] > 1:  # said once: the world does not change
                what = f"{self.name}: make_loader({self._batch_size}) returned a loader"
                warn_if_unsharded(built, self.name, *self.ranks, what=what)
                self.ranks = (self.ranks[0], 1)
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
                f"samples; the loader must use the batch size it is given (the caller chooses it: tune, "
                "lr_find or the Trainer)"
            )

    def __iter__(self) -> Iterator[Any]:
        if self._peeked is None and self.check_batch_size and self._checked != self._batch_size:
            self.peek()  # check the batch size on the batch the epoch starts with
        return super().__iter__()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._stream = None

    def close(self) -> None:
        super().close()
        if isinstance(self._iterable, DataLoader):  # an IterableDataset's, or the factory's own
            shut_down_workers(self._stream)
            self._stream = None  # stopped: the next pass starts afresh
            shut_down_workers(self._iterable)


ENDLESS_EVAL_MIN_BATCHES = 1000  # the least an evaluation of unknown length may read (see below)
STEPS_ARGUMENTS = {"val_data": "val_steps", "test_data": "test_steps", "data": "steps"}


class EvaluationLoader(FactoryLoader):
    """Validation or test batches from a loader factory, a stream or an iterable of the user's:
    one pass (an evaluation) reads `steps` batches when they are declared, else every batch
    until the data run out, so a finite stream needs no ``len()``.

    Each pass starts afresh: ``iter()`` again, so an ``IterableDataset``, a ``DataLoader`` or a
    list gives the same batches every time; a factory whose previous pass ran out is asked
    again (a generator it returns is read once); an endless one-shot generator with `steps`
    continues. The batch size is not checked (it changes only speed and memory here).

    Args:
        make_loader: ``batch_size -> iterable of batches``.
        batch_size: samples per batch asked of `make_loader`.
        steps: batches per evaluation (an endless stream must declare them); None: to the end.
        batch_fn: the batch hook.
        name: the argument the data came from (``val_data``, ``test_data``, ``data``).
        max_batches: an evaluation of unknown length that reads more batches than this stops
            with an error (an endless stream without `steps`); at least
            `ENDLESS_EVAL_MIN_BATCHES` (the `Trainer` raises it to 10 training epochs' batches).

    Raises (while iterating):
        ValueError: no batches in a pass (empty data, or a generator read to its end before),
            or more than `max_batches` without `steps`; the message names the argument.
    """

    def __init__(
        self,
        make_loader: Callable[[int], Iterable[Any]],
        batch_size: int,
        *,
        steps: int | None = None,
        batch_fn: BatchFn | None = None,
        name: str = "val_data",
        max_batches: int = ENDLESS_EVAL_MIN_BATCHES,
    ) -> None:
        if steps is not None:  # named as the caller named it (not steps_per_epoch)
            check_integer(STEPS_ARGUMENTS.get(name, "steps"), steps)
        super().__init__(
            make_loader,
            batch_size,
            steps_per_epoch=steps,
            batch_fn=batch_fn,
            check_batch_size=False,
            name=name,
        )
        self.max_batches = check_integer("max_batches", max_batches)

    @property
    def steps_argument(self) -> str:
        """The argument that declares this data's batches per evaluation."""
        return STEPS_ARGUMENTS.get(self.name, "steps")

    def __len__(self) -> int:
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        if not has_len(self.iterable):
            raise TypeError(f"{self.name} is a stream: its length is known once it is read")
        return len(self.iterable)  # type: ignore[arg-type]

    def _batches(self) -> Iterator[Any]:
        return iter(self.iterable)

    def __iter__(self) -> Iterator[Any]:
        self.batch_index = 0  # every evaluation reads from the start
        if self._peeked is not None:
            first, rest = self._peeked
            self._peeked = None
            batches: Iterator[Any] = itertools.chain([first], rest)
        else:
            batches = self._batches()
        limit = self.steps_per_epoch
        while limit is None or self.batch_index < limit:
            try:
                batch = next(batches)
            except StopIteration:
                if isinstance(self._iterable, Iterator):  # read once: ask a factory again
                    self._iterable = None
                break
            if limit is None and self.batch_index >= self.max_batches:
                raise ValueError(
                    f"{self.name} yielded more than {self.max_batches} batches in one evaluation "
                    f"and has no len(): an endless stream? Declare the batches of one evaluation "
                    f"with {self.steps_argument}= (or pass a stream that ends)"
                )
            self.batch_index += 1
            yield batch
        if self.batch_index == 0:
            raise ValueError(self._empty_message())
        self._end_epoch()

    def _empty_message(self) -> str:
        if self.epoch == 0:
            if isinstance(self._iterable, Iterator) or self._iterable is None:
                return (
                    f"{self.name} yielded no batches: it is empty, or a generator that was read "
                    "to its end before (a generator can be read once)"
                )
            return f"{self.name} yielded no batches: it is empty"
        return (
            f"{self.name} yielded no batches in evaluation {self.epoch + 1}: it was read to its "
            "end before, and a generator can be read once; pass an iterable that restarts (a "
            "list, an IterableDataset, a DataLoader) or make_loader(batch_size) returning a "
            f"fresh one, or declare {self.steps_argument}= for an endless stream"
        )


def warn_if_unsharded(
    data: Any, name: str, rank: int, world_size: int, what: str | None = None
) -> None:
    """Under torchrun, a training loader of the user's own that gives every rank all of the
    data (a ``DataLoader`` without a ``DistributedSampler``, an `ArrayLoader` built without
    the world size): said once, by rank 0. Each rank then trained the same batches, and
    the global batch was the per-rank one (a user's check). `what`: how the message names the
    loader (default: "`name` is a loader of your own")."""
    from torch.utils.data.distributed import DistributedSampler

    if world_size < 2 or rank != 0:
        return
    if isinstance(data, DataLoader):
        if isinstance(data.dataset, IterableDataset):  # it shards itself, or not: its own
            return
        samplers = [data.sampler, getattr(data.batch_sampler, "sampler", None)]
        sharded = any(isinstance(sampler, DistributedSampler) for sampler in samplers)
    elif isinstance(data, ArrayLoader):
        sharded = data.world_size > 1
    else:  # tensors and Datasets are sharded here; other iterables are taken at their word
        return
    if not sharded:
        warnings.warn(
            f"{what or f'{name} is a loader of your own'} that does not shard its data over the "
            f"{world_size} processes (no DistributedSampler; an ArrayLoader built without "
            "rank and world_size): every rank reads all of it, the same batches; pass its "
            "Dataset or tensors (the library shards them) or shard it yourself",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
