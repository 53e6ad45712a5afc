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
                 batches, with a declared `steps_per_epoch`; for validation and test
                 data a finite one needs nothing (read to its end each evaluation)
``loader``       a sized iterable of batches with its own batch size (a                epoch
                 ``DataLoader`` the user built); the batch size is not ours to choose
===============  ===================================================================  ==========

Every loader built here has one interface (`Loader`): ``len()`` batches per epoch, iteration
that continues from the current position, ``epoch``/``batch_index``, ``state_dict()`` and
``peek()``, the first batch of the next iteration, which iteration then yields itself: the
first-batch checks never consume the user's data; the loaders over a ``Dataset``, a factory or
a stream also have ``close()``: their DataLoader workers stop now, not when the garbage
collector finds them, and start again at the next iteration. The loaders themselves live in
`superconverge.data.loader` (`ArrayLoader`, the position they share, `epoch_order`) and
`superconverge.data.pipelines` (`DatasetLoader`, `FactoryLoader`); this module picks one.

Resume: for ``arrays`` and ``dataset`` the order is a function of ``(seed, epoch)``, so a run
resumed mid-epoch skips the batches already seen without reading them and sees exactly the
batches an uninterrupted run sees (random transforms inside a ``Dataset`` draw from the worker
RNGs and are reproducible per run, not per position). A ``factory`` resumed mid-epoch starts a
fresh pass and reads past the batches already seen (exact when the user's loader is seeded per
pass); a ``stream`` continues from a fresh iterator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_convert

from superconverge._warnings import warn
from superconverge.batches import BatchFn, check_batch_fn, split_batch
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import (
    ArrayLoader,
    Augment,
    check_integer,
    epoch_order,
    has_len,
    has_position,
)
from superconverge.data.pipelines import (
    STEPS_ARGUMENTS,
    DatasetLoader,
    EvaluationLoader,
    FactoryLoader,
    PeekingLoader,
)

KINDS = ("arrays", "dataset", "factory", "stream", "loader")


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


@dataclass(frozen=True)
class LoaderOptions:
    """How a ``DataLoader`` is built for a ``Dataset`` (and an ``IterableDataset``).

    `pin_memory` None: on when batches go to CUDA. `persistent_workers` None: on when
    `num_workers` > 0 for training data (workers start once, not every epoch), off for
    validation and test data (read once an epoch: no workers idle while training).
    """

    num_workers: int = 0
    pin_memory: bool | None = None
    persistent_workers: bool | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    prefetch_factor: int | None = None

    def __post_init__(self) -> None:
        check_integer("num_workers", self.num_workers, minimum=0)
        if self.collate_fn is not None and not callable(self.collate_fn):
            raise TypeError(f"collate_fn must be callable or None, got {self.collate_fn!r}")


@dataclass(frozen=True)
class DataSource:
    """What the user brought, and how to make a `Loader` of it at a given batch size.

    Build it with `as_source`. ``fixed_batch_size`` is set for ``loader`` (the user's loader
    has its own batch size); ``num_samples`` is None where it is unknown (factories, streams).
    With `evaluation` (validation and test data) `steps_per_epoch` is the batches of one
    evaluation, and a stream without it is read to its end (`EvaluationLoader`).
    """

    kind: str
    data: Any
    name: str = "train_data"
    steps_per_epoch: int | None = None
    batch_fn: BatchFn | None = None
    options: LoaderOptions = LoaderOptions()
    evaluation: bool = False

    @property
    def fixed_batch_size(self) -> int | None:
        """The batch size of a loader the user built (a ``DataLoader`` over a stream too)."""
        if self.kind != "loader" and not (
            self.kind == "stream" and isinstance(self.data, DataLoader)
        ):
            return None
        size = getattr(self.data, "batch_size", None)
        if isinstance(size, int) and not isinstance(size, bool):
            return size
        return self._items_batch_size

    @cached_property
    def _items_batch_size(self) -> int | None:
        """The samples in one item of a ``DataLoader(batch_size=None)`` over a map-style
        Dataset, whose items are whole batches: its first item's targets, read from the Dataset
        (not the loader: no worker starts, no sampler moves); None for any other loader."""
        data = self.data
        if not isinstance(data, DataLoader) or data.batch_size is not None:
            return None
        if getattr(data, "batch_sampler", None) is not None:
            return None
        dataset = data.dataset
        if isinstance(dataset, IterableDataset) or not isinstance(dataset, Sized):
            return None
        try:
            if not len(dataset):
                return None
            item = default_convert(dataset[0])  # type: ignore[no-untyped-call]
            _, targets = split_batch(item, self.batch_fn)
        except Exception:  # the loop's own first-batch check says what is wrong
            return None
        if isinstance(targets, torch.Tensor) and targets.ndim >= 1 and len(targets) >= 1:
            return len(targets)
        return None

    @property
    def num_samples(self) -> int | None:
        """Samples per epoch where known without reading the data (a loader whose items are
        batches: its items x the first item's samples)."""
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
            return len(dataset) * (self._items_batch_size or 1)
        return None

    def describe(self) -> str:
        what = {
            "arrays": f"in-memory tensors ({self.num_samples} samples)",
            "dataset": f"a Dataset ({self.num_samples} samples, {self.options.num_workers} workers)",
            "factory": "a loader factory make_loader(batch_size)",
            "stream": f"a stream ({self.steps_per_epoch or 'all its'} batches per pass)",
            "loader": f"a loader of its own (batch size {self.fixed_batch_size})",
        }
        return what[self.kind]

    def _iterable_dataset_loaders(self, pin: bool) -> Callable[[int], Iterable[Any]]:
        """``batch_size -> DataLoader`` over this stream's ``IterableDataset``."""
        dataset, options = self.data, self.options

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

        make_loader.batches_stream_items = True  # type: ignore[attr-defined]  # for the hint
        return make_loader

    def _evaluation_loader(self, batch_size: int, pin: bool) -> Any:
        """A factory's, a stream's or the user's own batches for evaluations (`EvaluationLoader`);
        a loader built here is used as it is."""
        if self.kind == "loader" and has_position(self.data):
            return self.data
        data = self.data
        make_loader: Callable[[int], Iterable[Any]]
        if self.kind == "factory":
            make_loader = data
        elif isinstance(data, IterableDataset):
            make_loader = self._iterable_dataset_loaders(pin)
        else:  # a stream or a loader of the user's: the same object every pass
            make_loader = lambda _size: data  # noqa: E731
        return EvaluationLoader(
            make_loader,
            self.fixed_batch_size or batch_size,
            steps=self.steps_per_epoch,
            batch_fn=self.batch_fn,
            name=self.name,
        )

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
        check_integer("batch_size", batch_size)
        if augment is not None and self.kind != "arrays":
            raise ValueError(
                f"augment applies to in-memory tensors (ArrayData); {self.name} is "
                f"{self.describe()}: put the transforms in the Dataset or the loader"
            )
        target = torch.device(device) if device is not None else None
        if self.kind == "arrays":
            arrays = ArrayLoader(
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
            arrays.pad = not self.evaluation  # an evaluation reads each sample once
            return arrays
        options = self.options
        pin = options.pin_memory
        if pin is None:
            pin = target is not None and target.type == "cuda"
        if self.kind == "dataset":
            dataset = DatasetLoader(
                self.data,
                batch_size,
                shuffle=shuffle,
                drop_last=drop_last,
                seed=seed,
                num_workers=options.num_workers,
                pin_memory=pin,
                # validation runs once an epoch: its workers start for it, not idle all along
                persistent_workers=(
                    False
                    if self.evaluation and options.persistent_workers is None
                    else options.persistent_workers
                ),
                collate_fn=options.collate_fn,
                prefetch_factor=options.prefetch_factor,
                rank=rank,
                world_size=world_size,
                name=self.name,
            )
            dataset.pad = not self.evaluation
            return dataset
        if self.evaluation:
            return self._evaluation_loader(batch_size, pin)
        if self.kind == "factory":
            return FactoryLoader(
                self.data,
                batch_size,
                steps_per_epoch=self.steps_per_epoch,
                batch_fn=self.batch_fn,
                name=self.name,
                ranks=(rank, world_size),
            )
        if self.kind == "stream":
            if isinstance(self.data, IterableDataset):
                return FactoryLoader(
                    self._iterable_dataset_loaders(pin),
                    batch_size,
                    steps_per_epoch=self.steps_per_epoch,
                    batch_fn=self.batch_fn,
                    check_batch_size=False,
                    name=self.name,
                )
            stream = self.data
            return FactoryLoader(
                lambda _size: stream,
                self.fixed_batch_size or batch_size,
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


def is_numpy_array(value: Any) -> bool:
    """A NumPy array (read as a sequence of rows, a pair of them passed as "two batches")."""
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def as_source(
    data: Any,
    name: str = "train_data",
    *,
    steps_per_epoch: int | None = None,
    batch_fn: BatchFn | None = None,
    options: LoaderOptions | None = None,
    evaluation: bool = False,
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
        evaluation: validation or test data: `steps_per_epoch` is the batches of one
            evaluation (for streams, factories and loaders; an endless stream needs it), and a
            stream without it is read to its end each time.

    Raises:
        ValueError: a training stream without `steps_per_epoch`, evaluation steps for data
            that is read whole (tensors, a ``Dataset``), empty data.
        TypeError: none of the kinds above; the message names `name` and what was found.

    Example:
        >>> as_source((torch.zeros(4, 2), torch.zeros(4))).kind
        'arrays'
        >>> as_source(lambda batch_size: [], steps_per_epoch=3).kind
        'factory'
    """
    check_batch_fn(batch_fn)
    if steps_per_epoch is not None:  # named as the caller named it: val_steps, test_steps...
        argument = STEPS_ARGUMENTS.get(name, "steps") if evaluation else "steps_per_epoch"
        check_integer(argument, steps_per_epoch)
    options = options if options is not None else LoaderOptions()
    if isinstance(data, DataSource):
        return replace(data, evaluation=True) if evaluation and not data.evaluation else data
    common: dict[str, Any] = {
        "name": name,
        "steps_per_epoch": steps_per_epoch,
        "batch_fn": batch_fn,
        "options": options,
        "evaluation": evaluation,
    }
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        data = ArrayData(*data)
    if isinstance(data, (tuple, list)) and len(data) == 2 and is_numpy_array(data[0]):
        raise TypeError(
            f"{name} is a pair of NumPy arrays; pass tensors, the in-memory kind this library "
            "serves: (torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)) (a float64 "
            "array would not fit a float32 model's weights)"
        )
    sized = known_size(data)
    if evaluation and steps_per_epoch is not None and sized:
        raise ValueError(
            f"{STEPS_ARGUMENTS.get(name, 'steps')} applies to streams and loader factories; "
            f"{name} ({type(data).__name__}) has a known size and an evaluation reads it whole: "
            "leave it out"
        )
    if steps_per_epoch is not None and sized:  # was ignored without a word
        raise ValueError(
            f"steps_per_epoch applies to streams and loader factories; {name} "
            f"({type(data).__name__}) has a known size: an epoch is all of it, in batches of "
            "the batch size. Leave it out (or pass fewer samples)"
        )
    if isinstance(data, ArrayData):
        if len(data) == 0:
            raise ValueError(f"{name} must not be empty, got 0 samples")
        return DataSource("arrays", data, **common)
    if isinstance(data, IterableDataset) or (
        isinstance(data, Iterable) and not isinstance(data, Dataset) and not has_len(data)
    ):
        if steps_per_epoch is None and not evaluation:
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
        refuse_list_of_samples(data, name)
        return DataSource("loader", data, **common)
    if callable(data) and not isinstance(data, torch.nn.Module | type):
        return DataSource("factory", data, **common)
    raise TypeError(
        f"{name} must be ArrayData, an (inputs, targets) pair of tensors, a Dataset, a loader "
        f"factory make_loader(batch_size), an IterableDataset with steps_per_epoch, or an "
        f"iterable of batches; got {type(data).__name__}"
    )


def is_one_number(value: Any) -> bool:
    """A Python number or a 0-d tensor: one sample's target, not a batch's."""
    if isinstance(value, torch.Tensor):
        return value.dim() == 0
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def refuse_list_of_samples(data: Any, name: str) -> None:
    """A list whose items are ``(inputs, target)`` pairs with one number as the target is a
    list of samples, not of batches (a user's first try: it failed in the metrics with
    "IndexError: tuple index out of range", and lr_find swept one sample at a time)."""
    if not isinstance(data, (list, tuple)) or not data:
        return
    item = data[0]
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        return
    if is_one_number(item[1]):
        raise TypeError(
            f"{name} is a {type(data).__name__} of samples ((inputs, target) pairs with one "
            "number as the target), where a list is taken as batches; stack it into tensors, "
            "(torch.stack([x for x, _ in samples]), torch.tensor([y for _, y in samples])), or "
            "wrap it in a Dataset"
        )


def known_size(data: Any) -> bool:
    """Tensors (`ArrayData`, an ``(inputs, targets)`` pair) or a map-style ``Dataset``: an
    epoch is all of it, so steps per epoch do not apply."""
    if isinstance(data, DataSource):
        data = data.data
    pair = isinstance(data, tuple) and len(data) == 2
    return pair or (isinstance(data, ArrayData | Dataset) and not isinstance(data, IterableDataset))


def check_dataset_options(options: LoaderOptions, data: Iterable[Any], reader: str) -> None:
    """DataLoader workers and a ``collate_fn`` apply to a ``Dataset`` (map-style or iterable)
    that `reader` builds a loader for; asked of other data (tensors, the user's own loader) they
    would change nothing.

    Raises:
        ValueError: `options` set workers or a collate_fn and none of `data` is a ``Dataset``.
    """
    datasets = [d.data if isinstance(d, DataSource) else d for d in data if d is not None]
    streams = [d for d in datasets if isinstance(d, IterableDataset)]
    if streams and options.num_workers:  # torch's pitfall: each worker runs the whole stream
        warn(
            f"num_workers={options.num_workers} with an IterableDataset "
            f"({type(streams[0]).__name__}): each DataLoader worker iterates the whole stream "
            "unless the stream shards itself by torch.utils.data.get_worker_info(), so every "
            f"sample is read (trained on, validated) {options.num_workers} times; shard it "
            "there, or leave num_workers out",
            key=("stream workers", type(streams[0])),
        )
    if any(isinstance(d, Dataset) for d in datasets):
        return
    if options.num_workers:
        raise ValueError(
            f"num_workers applies to a Dataset (read through the DataLoader {reader} builds); "
            f"got num_workers={options.num_workers!r} and no Dataset: leave it out, or give "
            "your own loader its workers"
        )
    if options.collate_fn is not None:  # was taken and never called
        name = getattr(options.collate_fn, "__name__", type(options.collate_fn).__name__)
        raise ValueError(
            f"collate_fn applies to a Dataset (read through the DataLoader {reader} builds); "
            f"got collate_fn={name} and no Dataset: leave it out, or give your own loader "
            "its collate_fn"
        )


def peek(loader: Any) -> Any:
    """The first batch the next iteration of `loader` yields, without losing it.

    An `ArrayLoader` gives two samples of its data (no iteration: nothing moves); the loaders
    of this module keep the batch and yield it first; any other iterable is iterated once
    afresh (``iter()`` again; a one-shot generator would lose that batch: wrap it with
    `as_source`).
    """
    if isinstance(loader, ArrayLoader):
        return loader.inputs[:2], loader.targets[:2]
    if isinstance(loader, PeekingLoader):
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


@contextlib.contextmanager
def naming_batched_streams(loader: Any) -> Iterator[None]:
    """A shape error met on `loader`'s first batch, where the library batched a stream's items,
    gets a hint: a stream that yields whole batches came out batched twice (outputs with one
    dimension too many). Other loaders' errors pass as they are."""
    try:
        yield
    except ValueError as error:
        batched = getattr(getattr(loader, "make_loader", None), "batches_stream_items", False)
        if not batched or not str(error).startswith("loss_fn raised"):
            raise
        raise ValueError(
            f"{error}; the items of an IterableDataset are taken as samples and batched here: "
            "a stream that yields whole batches goes in as a loader factory instead, a function "
            "batch_size -> your iterable of batches"
        ) from error


# the loaders, epoch_order and has_position live in data/loader.py and data/pipelines.py; they
# are imported from here too


__all__ = [
    "KINDS",
    "DataSource",
    "DatasetLoader",
    "EvaluationLoader",
    "FactoryLoader",
    "Loader",
    "LoaderOptions",
    "as_source",
    "epoch_order",
    "first_batch",
    "has_position",
    "peek",
]
