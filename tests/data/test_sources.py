import gc
import warnings
import weakref

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from superconverge.batches import split_batch
from superconverge.data import ArrayData, ArrayLoader
from superconverge.data.sources import (
    DatasetLoader,
    FactoryLoader,
    LoaderOptions,
    as_source,
    epoch_order,
    first_batch,
    peek,
)


class Counting(Dataset):
    """Sample i is (i as a float feature, i); counts the items read."""

    def __init__(self, count=10):
        self.count, self.reads = count, []

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        self.reads.append(index)
        return torch.tensor([float(index)]), index


class Dicts(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, index):
        return {"input_ids": torch.full((3,), index), "labels": index}


class Stream(IterableDataset):
    def __iter__(self):
        index = 0
        while True:
            yield torch.tensor([float(index)]), index
            index += 1


def _targets(loader):
    return [split_batch(batch)[1].tolist() for batch in loader]


def _arrays(count=10):
    return ArrayData(torch.arange(count, dtype=torch.float32)[:, None], torch.arange(count))


# ---------------------------------------------------------------- recognising the data
def test_each_kind_is_recognised():
    assert as_source(_arrays()).kind == "arrays"
    assert as_source((torch.zeros(3, 1), torch.zeros(3))).kind == "arrays"
    assert as_source(Counting()).kind == "dataset"
    assert as_source(lambda batch_size: [], steps_per_epoch=2).kind == "factory"
    assert as_source(Stream(), steps_per_epoch=4).kind == "stream"
    assert as_source(iter([(1, 2)]), steps_per_epoch=1).kind == "stream"
    loader = DataLoader(TensorDataset(torch.zeros(8, 1), torch.zeros(8)), batch_size=4)
    source = as_source(loader)
    assert source.kind == "loader" and source.fixed_batch_size == 4 and source.num_samples == 8
    assert (
        as_source(Counting(7)).num_samples == 7
        and as_source(Stream(), steps_per_epoch=2).num_samples is None
    )


def test_a_stream_without_steps_per_epoch_is_refused_by_name():
    with pytest.raises(
        ValueError, match="steps_per_epoch must be given for val_data: it is a Stream"
    ):
        as_source(Stream(), "val_data")
    with pytest.raises(ValueError, match="steps_per_epoch must be given for train_data"):
        as_source(DataLoader(Stream(), batch_size=2))


def test_unknown_and_empty_data_are_refused_by_name():
    with pytest.raises(TypeError, match=r"train_data must be ArrayData.*got int"):
        as_source(3)
    with pytest.raises(TypeError, match="got Linear"):
        as_source(torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="val_data must not be empty, got a Dataset of 0 samples"):
        as_source(Counting(0), "val_data")
    with pytest.raises(ValueError, match="steps_per_epoch must be an integer >= 1, got 0"):
        as_source(Stream(), steps_per_epoch=0)
    with pytest.raises(TypeError, match="batch_fn must be a callable"):
        as_source(_arrays(), batch_fn=3)


def test_augment_is_for_tensors_only():
    with pytest.raises(ValueError, match=r"augment applies to in-memory tensors.*a Dataset"):
        from superconverge.data import Augment

        as_source(Counting()).loader(4, augment=Augment())


# ---------------------------------------------------------------- Dataset
def test_a_dataset_batches_exactly_as_the_same_arrays():
    for seed in (0, 3):
        arrays = ArrayLoader(_arrays(10), 3, seed=seed)
        dataset = as_source(Counting(10)).loader(3, seed=seed)
        for _ in range(2):  # two epochs: two permutations
            assert _targets(dataset) == _targets(arrays)
    assert epoch_order(10, 0, 0, shuffle=False).tolist() == list(range(10))


def test_a_dataset_resumed_mid_epoch_skips_the_seen_batches_without_reading_them():
    reference = DatasetLoader(Counting(20), 4, seed=5)
    whole = _targets(reference) + _targets(reference)
    data = Counting(20)
    first = DatasetLoader(data, 4, seed=5)
    seen = []
    for batch in first:  # stop after 2 of the 5 batches of epoch 0
        seen.append(batch[1].tolist())
        if len(seen) == 2:
            break
    state = first.state_dict()
    assert state == {"epoch": 0, "batch_index": 2, "batch_size": 4, "seed": 5}
    data.reads.clear()
    resumed = DatasetLoader(data, 4, seed=0)
    resumed.load_state_dict(state)
    rest = _targets(resumed) + _targets(resumed)
    assert seen + rest == whole
    assert len(data.reads) == 12 + 20  # only the unseen 3 batches of epoch 0, then epoch 1


def test_peek_does_not_consume_the_batch():
    data = Counting(10)
    loader = DatasetLoader(data, 4, seed=1)
    expected = _targets(DatasetLoader(Counting(10), 4, seed=1))
    _inputs, targets = first_batch(loader)
    assert targets.tolist() == expected[0] and loader.batch_index == 0
    assert len(data.reads) == 4  # peeking read one batch; a second peek reads nothing
    peek(loader)
    assert len(data.reads) == 4
    assert _targets(loader) == expected and len(data.reads) == 10


def test_batch_size_changes_between_epochs_and_drop_last():
    loader = DatasetLoader(Counting(10), 4, drop_last=True)
    assert len(loader) == 2 and [len(t) for t in _targets(loader)] == [4, 4]
    loader.batch_size = 5
    assert [len(t) for t in _targets(loader)] == [5, 5]
    iterator = iter(loader)
    next(iterator)
    with pytest.raises(RuntimeError, match="between epochs only"):
        loader.batch_size = 2


def test_only_training_data_keeps_its_workers_between_epochs():
    options = LoaderOptions(num_workers=1)
    train = as_source(Counting(8), options=options).loader(4)
    val = as_source(Counting(8), "val_data", options=options, evaluation=True).loader(4)
    assert train.loader.persistent_workers and not val.loader.persistent_workers
    mine = LoaderOptions(num_workers=1, persistent_workers=True)  # asked for: kept
    val = as_source(Counting(8), "val_data", options=mine, evaluation=True).loader(4)
    assert val.loader.persistent_workers


def test_a_dataset_loader_is_freed_as_soon_as_it_is_dropped():
    # persistent workers live as long as the loader: a reference cycle kept every short run's
    # workers of `tune` alive until the garbage collector ran (12 workers seen on CIFAR-10)
    loader = DatasetLoader(Counting(10), 4)
    assert sum(len(t) for t in _targets(loader)) == 10
    gone = weakref.ref(loader)
    gc.disable()
    try:
        del loader
        assert gone() is None
    finally:
        gc.enable()


def test_close_stops_the_workers_now_and_the_next_epoch_starts_them_again():
    options = LoaderOptions(num_workers=2)
    loader = as_source(Counting(12), options=options).loader(4, seed=3)
    reference = _targets(DatasetLoader(Counting(12), 4, seed=3))
    iterator = iter(loader)
    next(iterator)  # mid-epoch: persistent workers running
    workers = list(loader.loader._iterator._workers)
    assert all(w.is_alive() for w in workers)
    loader.close()
    assert not any(w.is_alive() for w in workers) and loader.loader._iterator is None
    loader.load_state_dict({"epoch": 0, "batch_index": 0, "batch_size": 4, "seed": 3})
    assert _targets(loader) == reference  # new workers, the same batches
    peek(loader)  # a batch peeked at is read again after close
    loader.close()
    again = DatasetLoader(Counting(12), 4, seed=3)
    again.load_state_dict(loader.state_dict())
    assert _targets(loader) == _targets(again)


def test_ranks_split_each_epoch_like_the_array_loader():
    for rank in (0, 1):
        arrays = ArrayLoader(_arrays(9), 2, seed=2, rank=rank, world_size=2)
        dataset = DatasetLoader(Counting(9), 2, seed=2, rank=rank, world_size=2)
        assert _targets(dataset) == _targets(arrays)


def test_dict_items_become_dict_batches_with_labels_split_off():
    inputs, targets = first_batch(as_source(Dicts()).loader(4, shuffle=False))
    assert set(inputs) == {"input_ids"} and inputs["input_ids"].shape == (4, 3)
    assert targets.tolist() == [0, 1, 2, 3]


def test_items_the_hook_cannot_read_fail_with_the_argument_and_what_was_found():
    class Triples(Counting):
        def __getitem__(self, index):
            return torch.zeros(1), index, 1.0

    class Strings(Counting):
        def __getitem__(self, index):
            return object(), index

    with pytest.raises(TypeError, match=r"val_data must yield .*got a list of length 3"):
        first_batch(as_source(Triples(), "val_data").loader(2), name="val_data")
    with pytest.raises(
        TypeError,
        match=r"train_data: the DataLoader could not make a batch.*item 0 is a tuple of \(object, int\)",
    ):
        first_batch(as_source(Strings()).loader(2))
    pair = first_batch(as_source(Triples()).loader(2), batch_fn=lambda b: (b[0], b[1]))
    assert pair[1].shape == (2,)


def test_workers_give_the_same_batches_across_epochs():
    options = LoaderOptions(num_workers=2)
    loader = as_source(Counting(12), options=options).loader(4, seed=3)
    assert loader.loader.persistent_workers
    reference = DatasetLoader(Counting(12), 4, seed=3)
    for _ in range(2):
        assert _targets(loader) == _targets(reference)
    peek(loader)
    loader.load_state_dict({"epoch": 0, "batch_index": 1, "batch_size": 4, "seed": 3})
    assert _targets(loader) == _targets(DatasetLoader(Counting(12), 4, seed=3))[1:]


# ---------------------------------------------------------------- factories and streams
def test_a_factory_is_asked_for_the_chosen_batch_size():
    asked = []

    def make_loader(batch_size):
        asked.append(batch_size)
        return DataLoader(
            TensorDataset(torch.zeros(10, 1), torch.arange(10)), batch_size=batch_size
        )

    loader = as_source(make_loader).loader(4)
    assert len(loader) == 3 and _targets(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    loader.batch_size = 5
    assert _targets(loader) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]] and asked == [4, 5]


def test_a_factory_that_ignores_the_batch_size_is_refused():
    def make_loader(batch_size):
        return DataLoader(TensorDataset(torch.zeros(10, 1), torch.arange(10)), batch_size=2)

    loader = as_source(make_loader).loader(4)
    with pytest.raises(ValueError, match=r"make_loader\(4\) yielded a first batch of 2 samples"):
        list(loader)
    # a data set smaller than the batch: one short batch is the whole epoch, and fine
    small = as_source(lambda batch_size: [(torch.zeros(3, 1), torch.zeros(3))]).loader(8)
    assert len(list(small)) == 1


def test_a_factory_without_len_needs_steps_per_epoch():
    def make_loader(batch_size):
        return (b for b in [(torch.zeros(batch_size), torch.zeros(batch_size))] * 3)

    with pytest.raises(ValueError, match=r"returned a generator without len.*steps_per_epoch"):
        len(as_source(make_loader).loader(2))
    loader = as_source(make_loader, steps_per_epoch=2).loader(2)
    assert len(list(loader)) == 2 and len(list(loader)) == 2  # the pass restarts when it ends


def test_a_factory_resumed_mid_epoch_reads_past_the_seen_batches():
    def make_loader(batch_size):
        return DataLoader(TensorDataset(torch.zeros(9, 1), torch.arange(9)), batch_size=batch_size)

    loader = as_source(make_loader).loader(3)
    loader.load_state_dict({"epoch": 4, "batch_index": 2, "batch_size": 3, "seed": 0})
    assert _targets(loader) == [[6, 7, 8]] and loader.epoch == 5


def test_a_stream_continues_across_epochs_and_a_finished_generator_is_named():
    loader = as_source(Stream(), steps_per_epoch=2).loader(3)
    assert _targets(loader) == [[0, 1, 2], [3, 4, 5]]
    assert _targets(loader) == [[6, 7, 8], [9, 10, 11]]
    once = as_source(iter([(torch.zeros(2), torch.zeros(2))] * 3), steps_per_epoch=2).loader(2)
    assert len(list(once)) == 2
    with pytest.raises(ValueError, match="train_data ran out of batches"):
        list(once)


def test_a_users_loader_is_used_as_it_is():
    own = DataLoader(TensorDataset(torch.zeros(6, 1), torch.arange(6)), batch_size=4)
    loader = as_source(own, "val_data").loader(256, shuffle=False)
    assert loader.batch_size == 4 and _targets(loader) == [[0, 1, 2, 3], [4, 5]]
    arrays = ArrayLoader(_arrays(6), 2)
    assert as_source(arrays).loader(3) is arrays and arrays.batch_size == 2


def test_position_state_is_checked():
    loader = FactoryLoader(lambda size: [(torch.zeros(size), torch.zeros(size))], 2)
    with pytest.raises(ValueError, match="state must have the keys"):
        loader.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match=r"state\['epoch'\] must be an integer >= 0, got -1"):
        loader.load_state_dict({"epoch": -1, "batch_index": 0, "batch_size": 2, "seed": 0})


def test_loaders_with_a_position_are_known():
    from superconverge.data.sources import has_position

    assert has_position(ArrayLoader(_arrays(4), 2)) and has_position(DatasetLoader(Counting(4), 2))
    assert has_position(as_source(Stream(), steps_per_epoch=1).loader(2))
    assert not has_position(DataLoader(Counting(4), batch_size=2))


def test_a_users_loader_that_does_not_shard_under_torchrun_is_said_once():
    # a user's check: a DataLoader without DistributedSampler (or an ArrayLoader built without
    # the world size) gave both ranks the same batches, silently
    import warnings

    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    from superconverge.data import ArrayData, ArrayLoader
    from superconverge.data.pipelines import warn_if_unsharded

    pairs = TensorDataset(torch.randn(8, 2), torch.zeros(8).long())
    for own in (DataLoader(pairs, batch_size=4), ArrayLoader(ArrayData(*pairs.tensors), 4)):
        with pytest.warns(UserWarning, match="does not shard its data over the 2 processes"):
            warn_if_unsharded(own, "train_data", rank=0, world_size=2)
    sharded = DataLoader(pairs, batch_size=4, sampler=DistributedSampler(pairs, 2, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_unsharded(sharded, "train_data", rank=0, world_size=2)
        warn_if_unsharded(DataLoader(pairs, batch_size=4), "train_data", rank=1, world_size=2)
        warn_if_unsharded(ArrayData(*pairs.tensors), "train_data", rank=0, world_size=2)


def test_a_factory_whose_loader_does_not_shard_under_torchrun_is_said_once():
    # make_loader(batch_size) returning a DataLoader without DistributedSampler gave every rank
    # all of the data, unsaid (a user's DataLoader was warned about; a factory's was not)
    import warnings

    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    from superconverge.data.pipelines import warn_if_unsharded
    from superconverge.data.sources import as_source

    pairs = TensorDataset(torch.randn(8, 2), torch.zeros(8).long())

    def loader_of(factory, rank=0):
        return as_source(factory, "train_data").loader(
            4, shuffle=True, seed=0, device=torch.device("cpu"), rank=rank, world_size=2
        )

    plain = loader_of(lambda bs: DataLoader(pairs, batch_size=bs))
    with pytest.warns(UserWarning, match=r"make_loader\(4\) returned a loader that does not shard"):
        assert len(plain) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sum(1 for _ in plain) == 2  # once
        sharded = loader_of(
            lambda bs: DataLoader(pairs, batch_size=bs, sampler=DistributedSampler(pairs, 2, 0))
        )
        assert len(sharded) == 1
        assert len(loader_of(lambda bs: DataLoader(pairs, batch_size=bs), rank=1)) == 2
        # a stream shards itself, or not: not ours to judge (a reviewer's check)
        from torch.utils.data import IterableDataset

        class Stream(IterableDataset):
            def __iter__(self):
                return iter(pairs)

        warn_if_unsharded(DataLoader(Stream(), batch_size=4), "train_data", rank=0, world_size=2)


def test_an_evaluation_loader_reads_each_sample_once_over_the_ranks():
    # a user's check: under torchrun the padding of a training epoch (every rank as many
    # samples) counted a test sample twice: accuracy 343/360 for 342/359
    from torch.utils.data import TensorDataset

    from superconverge.data import ArrayData

    inputs, targets = torch.randn(7, 2), torch.arange(7)
    for data in (ArrayData(inputs, targets), TensorDataset(inputs, targets)):
        seen = []
        for rank in (0, 1):
            loader = as_source(data, "val_data", evaluation=True).loader(
                2, shuffle=False, rank=rank, world_size=2
            )
            seen += [int(t) for _, batch in loader for t in batch]
        assert sorted(seen) == list(range(7))
        training = as_source(data, "train_data").loader(2, rank=1, world_size=2)
        assert training.num_samples == 4  # training still pads: both ranks step alike


def test_workers_over_a_stream_are_warned_about_as_reading_it_once_each():
    # a user's check: num_workers=2 with an IterableDataset was taken without a word, and each
    # worker yielded the whole stream: every sample read twice (torch's documented pitfall)
    from torch.utils.data import IterableDataset

    from superconverge.data.sources import LoaderOptions, check_dataset_options

    class Stream(IterableDataset):
        def __iter__(self):
            yield from zip(torch.zeros(4, 2), torch.zeros(4), strict=True)

    with pytest.warns(UserWarning, match=r"num_workers=2 with an IterableDataset \(Stream\): each"):
        check_dataset_options(LoaderOptions(num_workers=2), [Stream()], "tune")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_dataset_options(LoaderOptions(num_workers=0), [Stream()], "tune")
