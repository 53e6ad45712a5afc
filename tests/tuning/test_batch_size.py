"""find_batch_size on the CPU (throughput, the out-of-memory retry); the CUDA memory probe runs
in tests/test_cuda.py."""

import pytest
import torch
from torch import nn

import superconverge as sc
from superconverge.data import load
from superconverge.data.datasets import ArrayData
from superconverge.models import build
from superconverge.tuning.probes import largest_batch_that_runs


def make_mlp():
    return build("mlp")


class RunsOutOfMemoryAbove(nn.Module):
    """The MLP, but a batch larger than `limit` raises the error a full GPU raises."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.net = limit, build("mlp")

    def forward(self, inputs):
        if len(inputs) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (batch {len(inputs)})")
        return self.net(inputs)


def above_40():
    return RunsOutOfMemoryAbove(40)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def test_on_the_cpu_the_throughput_rule_chooses_among_the_candidates(digits):
    found = sc.find_batch_size(make_mlp, digits.train, device="cpu", max_batch=64)
    assert found.method == "cpu throughput" and found.device == "cpu"
    assert set(found.measurements) == {16, 32, 64} and found.batch_size in found.measurements
    assert all(rate > 0 for rate in found.measurements.values())
    assert "timed" in found.why and found.out_of_memory == () and found.max_lr is None
    assert found.samples == 64 + 11 * (16 + 32 + 64)  # the fit check, then 2 + 3 x 3 steps each
    assert found.to_dict()["measurements"].keys() == {"16", "32", "64"}


def test_the_default_largest_size_is_a_tenth_of_the_training_set(digits):
    small = ArrayData(digits.train.inputs[:400], digits.train.targets[:400])
    found = sc.find_batch_size(make_mlp, small, device="cpu")  # 400 // 10 = 40
    assert set(found.measurements) == {16, 32}


def test_a_batch_that_runs_out_of_memory_is_halved_until_it_runs(digits):
    size, failed = largest_batch_that_runs(
        above_40, digits.train, nn.functional.cross_entropy, torch.device("cpu"), 128
    )
    assert (size, failed) == (32, [128, 64])


def test_out_of_memory_halves_the_batch_and_moves_the_lr_with_it(digits):
    found = sc.find_batch_size(above_40, digits.train, device="cpu", max_batch=128,
                               max_lr=0.2, lr_batch_size=128)  # fmt: skip
    assert found.out_of_memory == (128, 64)
    assert set(found.measurements) == {16, 32}  # only sizes that fit are timed
    assert found.max_lr == pytest.approx(0.2 * found.batch_size / 128)  # the linear rule
    assert "128, 64 ran out of memory" in found.why and "(linear)" in found.why


def test_batch_size_one_out_of_memory_is_an_error_not_a_loop(digits):
    with pytest.raises(RuntimeError, match="batch size 1 ran out of memory on cpu"):
        largest_batch_that_runs(lambda: RunsOutOfMemoryAbove(0), digits.train,
                                nn.functional.cross_entropy, torch.device("cpu"), 4)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch": 0}, "max_batch must be an integer >= 1, got 0"),
        ({"max_lr": 0.1}, "max_lr and lr_batch_size go together"),
        ({"max_lr": -1.0, "lr_batch_size": 64}, "max_lr must be a number > 0, got -1.0"),
        ({"lr_batch_size": 2.5, "max_lr": 0.1}, "lr_batch_size must be an integer >= 1, got 2.5"),
        ({"device": "tpu"}, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    ],
)
def test_bad_arguments_are_named(digits, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sc.find_batch_size(make_mlp, digits.train, **kwargs)


def test_it_is_public():
    assert "find_batch_size" in sc.__all__ and "BatchSizeResult" in sc.__all__
    assert sc.find_batch_size is sc.tuning.find_batch_size


def test_the_callers_generator_is_given_back(digits):
    # fit, lr_find and tune gave the caller's torch generator back; find_batch_size left it
    # advanced, so the next model a user built differed from one built without the call
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    sc.find_batch_size(make_mlp, digits.train, max_batch=32)
    assert torch.equal(torch.rand(3), expected)
