import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from superconverge.data.datasets import ArrayData
from superconverge.data.sources import as_source
from superconverge.tuning.budget import (
    SearchBudget,
    can_subset,
    size_short_runs,
    subset_source,
    usable_cores,
    use_usable_cores,
)


def _size(**kwargs):
    base = {"train_samples": 1000, "epochs": 10, "batch_size": 16, "allowance": 9000,
            "planned_runs": 9, "max_fraction": 0.25, "min_steps": 40, "can_subset": True}  # fmt: skip
    return size_short_runs(**{**base, **kwargs})


def test_short_runs_share_the_allowance_in_whole_epochs_or_a_subset():
    assert _size() == _size(allowance=9000)  # 1,000 each: one whole epoch
    assert (_size().epochs, _size().train_fraction, _size().samples) == (1, 1.0, 1000)
    two = _size(allowance=18_000)
    assert (two.epochs, two.samples) == (2, 2000)
    part = _size(allowance=7200)  # 800 each: 0.8 of an epoch, on a seeded 80% of the set
    assert (part.epochs, part.train_fraction, part.samples) == (1, 0.8, 800)
    # never above max_fraction of the final run, never below min_steps updates
    assert _size(allowance=10**9).samples == 2000  # a quarter of 10 epochs, in whole epochs
    assert _size(allowance=0).samples == 40 * 16
    # data that cannot be cut (a loader factory): a whole epoch
    assert _size(allowance=4500, can_subset=False).samples == 1000


def test_the_budget_charges_each_measurement_once_and_sums_by_stage():
    budget = SearchBudget(final_samples=10_000, budget=1.0)
    budget.charge("lr_bounds", 1600, "range_test/bounds sgd")
    budget.charge("lr_bounds", 500, "run a")
    budget.charge("weight_decay", 500, "run a")  # the same run read back later: not charged
    budget.charge("weight_decay", 500, "run b")
    assert budget.spent == {"lr_bounds": 2100, "weight_decay": 500}
    assert budget.left() == 10_000 - 2600 and budget.affords(7400) and not budget.affords(7401)
    summary = budget.summary()
    assert summary["search_samples"] == 2600 and summary["total_samples"] == 12_600
    assert summary["x_final_run"] == 1.26 and summary["allowance_samples"] == 10_000


def test_subsets_are_seeded_and_cut_arrays_datasets_and_streams():
    data = ArrayData(torch.arange(100.0).unsqueeze(1), torch.arange(100) % 3)
    source = as_source(data)
    half = subset_source(source, 0.5, seed=3)
    assert len(half.data) == 50 and torch.equal(
        half.data.inputs, subset_source(source, 0.5, 3).data.inputs
    )
    assert not torch.equal(half.data.inputs, subset_source(source, 0.5, 4).data.inputs)
    assert subset_source(source, 1.0, 0) is source
    dataset = as_source(TensorDataset(data.inputs, data.targets))
    cut = subset_source(dataset, 0.25, 0)
    assert isinstance(cut.data, Subset) and len(cut.data) == 25 and can_subset(dataset)
    stream = as_source(iter([]), steps_per_epoch=40)
    assert subset_source(stream, 0.25, 0).steps_per_epoch == 10 and can_subset(stream)
    factory = as_source(lambda batch_size: [], steps_per_epoch=None)
    assert not can_subset(factory) and subset_source(factory, 0.5, 0) is factory


def test_threads_follow_the_cores_this_process_may_use():
    cores = usable_cores()
    before = torch.get_num_threads()
    try:
        used = use_usable_cores()
        assert used["usable_cores"] == cores >= 1
        assert used["torch_threads"] == torch.get_num_threads() <= max(cores, before)
        assert used["threads_before"] == before
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("budget", [0.0, -1.0, float("inf"), float("nan"), "1"])
def test_tune_refuses_a_bad_budget(budget):
    import superconverge as sc
    from superconverge.models import build

    data = ArrayData(torch.randn(64, 64), torch.arange(64) % 10)
    with pytest.raises(ValueError, match="budget must be a"):
        sc.tune(lambda: build("mlp"), data, data, epochs=1, budget=budget)
