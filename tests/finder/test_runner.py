import random

import numpy as np
import pytest
import torch
from torch import nn

import superconverge as sc
from superconverge.data import ArrayData, ArrayLoader, load
from superconverge.models import build

LOSS = nn.functional.cross_entropy


class Net(nn.Module):
    """BatchNorm (buffers), dropout (RNG), a non-persistent buffer, a frozen layer."""

    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(6, 6)
        self.frozen.requires_grad_(False)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(16, 3)
        self.register_buffer("calls", torch.zeros(()), persistent=False)
        self.fail_at = None
        self.interrupt_at = None

    def forward(self, x):
        self.calls += 1
        if self.fail_at is not None and int(self.calls) == self.fail_at:
            raise RuntimeError("boom in forward")
        if self.interrupt_at is not None and int(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        return self.head(self.body(self.frozen(x)))


def _data(count=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ArrayData(torch.randn(count, 6, generator=g), torch.randint(0, 3, (count,), generator=g))


def _setup():
    torch.manual_seed(0)
    model = Net()
    model.head.eval()  # an odd mix of modes must come back as it was
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9
    )
    loader = ArrayLoader(_data(), 16, seed=1)
    inputs, targets = next(iter(loader))  # one real step: momentum buffers, grads, loader moved
    LOSS(model(inputs), targets).backward()
    optimizer.step()
    return model, optimizer, loader


def _state(model, optimizer, loader):
    tensors = {f"param.{n}": p.detach().clone() for n, p in model.named_parameters()}
    tensors |= {
        f"grad.{n}": p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }
    tensors |= {f"buffer.{n}": b.clone() for n, b in model.named_buffers()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        tensors |= {f"opt.{index}.{k}": v.clone() for k, v in state.items()}
    return {
        "tensors": tensors,
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "modes": {n: m.training for n, m in model.named_modules()},
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]],
        "loader": loader.state_dict(),
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].tolist(),
        "torch": torch.get_rng_state(),
    }


def _assert_same(before, after):
    assert before["tensors"].keys() == after["tensors"].keys()
    for name, tensor in before["tensors"].items():
        assert torch.equal(tensor, after["tensors"][name]), name
    for key in ("requires_grad", "modes", "groups", "loader", "python", "numpy"):
        assert before[key] == after[key], key
    assert torch.equal(before["torch"], after["torch"])


def _run(model, optimizer, loader, **kwargs):
    return sc.lr_find(
        model, LOSS, loader, optimizer=optimizer, num_steps=kwargs.pop("num_steps", 30), **kwargs
    )


def test_restores_everything_bitwise_after_a_full_sweep():
    model, optimizer, loader = _setup()
    before = _state(model, optimizer, loader)
    result = _run(model, optimizer, loader, end_lr=1e-2)
    assert result.stop_reason.startswith("reached end_lr")
    _assert_same(before, _state(model, optimizer, loader))


def test_restores_after_divergence():
    model, optimizer, loader = _setup()
    before = _state(model, optimizer, loader)
    result = _run(model, optimizer, loader, start_lr=1e-3, end_lr=1e6, num_steps=60)
    assert "diverged" in result.stop_reason or "non-finite" in result.stop_reason
    assert len(result.lrs) < 60
    _assert_same(before, _state(model, optimizer, loader))


def test_restores_after_a_nan_loss_and_records_it():
    model, optimizer, loader = _setup()
    before = _state(model, optimizer, loader)
    calls = {"n": 0}

    def loss_fn(outputs, targets):
        calls["n"] += 1
        loss = LOSS(outputs, targets)
        return loss * float("nan") if calls["n"] == 12 else loss

    result = sc.lr_find(model, loss_fn, loader, optimizer=optimizer, num_steps=30)
    assert result.stop_reason.startswith("non-finite loss at step 11")
    assert len(result.lrs) == 12 and np.isnan(result.losses[-1])
    _assert_same(before, _state(model, optimizer, loader))


@pytest.mark.parametrize(
    ("attribute", "error"), [("fail_at", RuntimeError), ("interrupt_at", KeyboardInterrupt)]
)
def test_restores_after_an_exception_or_interrupt_mid_sweep(attribute, error):
    model, optimizer, loader = _setup()
    setattr(model, attribute, 8)  # the 8th forward since construction, mid-sweep
    before = _state(model, optimizer, loader)
    with pytest.raises(error):
        _run(model, optimizer, loader)
    _assert_same(before, _state(model, optimizer, loader))


def test_sweep_has_exact_endpoints_and_spacing():
    model, optimizer, loader = _setup()
    result = _run(model, optimizer, loader, start_lr=1e-5, end_lr=1e-2, num_steps=31)
    assert result.lrs[0] == 1e-5 and result.lrs[-1] == pytest.approx(1e-2, rel=1e-12)
    assert result.lrs[10] == pytest.approx(1e-4)
    linear = _run(model, optimizer, loader, start_lr=1e-3, end_lr=4e-3, num_steps=31, mode="linear")
    assert linear.lrs[10] == pytest.approx(2e-3) and linear.lrs[-1] == pytest.approx(4e-3)


def test_short_data_is_cycled_and_accumulation_counts_optimizer_steps():
    batches = [(torch.randn(8, 6), torch.randint(0, 3, (8,))) for _ in range(3)]
    served = {"n": 0}

    class Counting:
        def __iter__(self):
            for batch in batches:
                served["n"] += 1
                yield batch

    torch.manual_seed(0)
    result = sc.lr_find(Net(), LOSS, Counting(), num_steps=12, end_lr=1e-3, accumulation_steps=2)
    assert len(result.lrs) == 12
    assert served["n"] == 24  # 12 optimizer steps x 2 micro-batches, over 8 passes of 3 batches
    assert result.settings["optimizer"] == "SGD(momentum=0.9)"


def test_validation_variant_records_loss_and_accuracy():
    model, optimizer, loader = _setup()
    val = ArrayLoader(_data(32, seed=5), 16, shuffle=False)
    result = _run(model, optimizer, loader, val_data=val, val_every=5, end_lr=1e-1)
    assert result.val_steps[:3] == (0, 5, 10)
    assert all(0.0 <= a <= 1.0 for a in result.val_accuracies)
    assert len(result.val_losses) == len(result.val_steps)
    assert result.superconvergence is not None


def test_repeats_use_other_batch_orders_and_restore_between():
    model, optimizer, loader = _setup()
    before = _state(model, optimizer, loader)
    result = _run(model, optimizer, loader, repeats=3, start_lr=1e-4, end_lr=100.0, num_steps=40)
    assert len(result.repeat_max_lrs) == 3
    assert result.confidence is None or result.confidence.level in ("high", "medium", "low")
    _assert_same(before, _state(model, optimizer, loader))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"start_lr": 1.0, "end_lr": 0.1},
            ValueError,
            r"start_lr must be < end_lr \(0.1\), got 1.0",
        ),
        ({"start_lr": 0.0}, ValueError, "start_lr must be a finite number > 0, got 0.0"),
        ({"end_lr": float("inf")}, ValueError, "end_lr must be a finite number > 0"),
        ({"num_steps": 5}, ValueError, "num_steps must be an integer >= 10 to analyse, got 5"),
        ({"mode": "log"}, ValueError, "mode must be one of exp, linear, got 'log'"),
        ({"smoothing": 1.0}, ValueError, r"smoothing must be in \[0, 1\), got 1.0"),
        ({"diverge_factor": 1.0}, ValueError, "diverge_factor must be > 1, got 1.0"),
        (
            {"accumulation_steps": 0},
            ValueError,
            "accumulation_steps must be >= 1, got 0",
        ),
        ({"rule": "steep"}, ValueError, "rule must be one of minimum, valley, steepest"),
    ],
)
def test_bad_arguments_fail_before_anything_changes(kwargs, error, message):
    model, optimizer, loader = _setup()
    before = _state(model, optimizer, loader)
    with pytest.raises(error, match=message):
        sc.lr_find(model, LOSS, loader, optimizer=optimizer, **kwargs)
    _assert_same(before, _state(model, optimizer, loader))


def test_bad_data_and_models_are_named_and_leave_the_model_untouched():
    model, optimizer, loader = _setup()
    triple = [(torch.randn(4, 6), torch.zeros(4), 1)]
    before = _state(model, optimizer, loader)
    with pytest.raises(ValueError, match="train_data yielded no batches: it is empty"):
        sc.lr_find(model, LOSS, [], optimizer=optimizer)
    with pytest.raises(TypeError, match="loss_fn must be callable, got None"):  # as Trainer says
        sc.lr_find(model, None, loader, optimizer=optimizer)
    with pytest.raises(
        TypeError, match="must yield \\(inputs, targets\\) pairs, got a tuple of length 3"
    ):
        sc.lr_find(model, LOSS, triple, optimizer=optimizer)
    nan_inputs = [(torch.full((4, 6), float("nan")), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match="the loss is not finite at the first step"):
        sc.lr_find(model, LOSS, nan_inputs, optimizer=optimizer)
    _assert_same(before, _state(model, optimizer, loader))
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="model has no trainable parameters"):
        sc.lr_find(frozen, LOSS, [(torch.randn(2, 2), torch.zeros(2, dtype=torch.long))])


def test_an_optimizer_over_another_models_parameters_is_refused():
    # the sweep stepped an optimizer that held none of the model's parameters: the model never
    # moved, and the flat curve came back as max_lr=None ('flat'), as if no LR trained it
    model, optimizer, loader = _setup()
    other = torch.optim.AdamW(Net().parameters(), lr=1e-3)
    before = _state(model, optimizer, loader)
    with pytest.raises(ValueError, match=r"optimizer must update model's parameters, got an AdamW"):
        sc.lr_find(model, LOSS, loader, optimizer=other)
    _assert_same(before, _state(model, optimizer, loader))
    head_only = torch.optim.SGD(model.head.parameters(), lr=0.1, momentum=0.9)  # fine-tuning
    assert len(sc.lr_find(model, LOSS, loader, optimizer=head_only, num_steps=10).lrs) == 10


def test_digits_range_test_suggestion_trains_without_diverging():
    splits = load("digits")
    torch.manual_seed(0)
    model = build("mlp")
    result = sc.lr_find(model, LOSS, ArrayLoader(splits.train, 32, seed=0))
    assert result.max_lr is not None and 1e-3 < result.max_lr < 1.0, result.summary()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = ArrayLoader(splits.train, 32, seed=0)
    scheduler = sc.HyperparamScheduler(optimizer, sc.one_cycle(5 * len(loader), result.max_lr))
    for _ in range(5):
        for inputs, targets in loader:
            loss = LOSS(model(inputs), targets)
            assert torch.isfinite(loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(splits.test.inputs).argmax(1) == splits.test.targets).float().mean()
    assert accuracy > 0.9


def test_grad_scaler_state_is_restored():
    model, optimizer, loader = _setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)
    before = scaler.state_dict()
    _run(model, optimizer, loader, grad_scaler=scaler, end_lr=1e-2)
    assert scaler.state_dict() == before


def test_num_workers_without_a_dataset_is_refused_not_ignored():
    # a user's check: lr-find --num-workers 2 on digits read the tensors without workers
    digits = load("digits")
    with pytest.raises(ValueError, match="num_workers applies to a Dataset"):
        sc.lr_find(build("mlp"), nn.functional.cross_entropy, digits.train, num_workers=2)
    with pytest.raises(ValueError, match=r"num_workers applies to a Dataset \(read through the "
                       r"DataLoader Trainer builds\)"):  # fmt: skip
        sc.Trainer(build("mlp"), nn.functional.cross_entropy, digits.train, num_workers=2)
    # a collate_fn for tensors was taken and never called (tune's and Trainer's alike)
    collate = torch.utils.data.default_collate
    with pytest.raises(ValueError, match="collate_fn applies to a Dataset"):
        sc.lr_find(build("mlp"), nn.functional.cross_entropy, digits.train, collate_fn=collate)
    with pytest.raises(ValueError, match="got collate_fn=default_collate and no Dataset"):
        sc.Trainer(build("mlp"), nn.functional.cross_entropy, digits.train, collate_fn=collate)
    with pytest.raises(ValueError, match="collate_fn applies to a Dataset"):
        sc.tune(lambda: build("mlp"), digits.train, digits.val, epochs=1, collate_fn=collate)
    dataset = torch.utils.data.TensorDataset(digits.train.inputs, digits.train.targets)
    result = sc.lr_find(build("mlp"), nn.functional.cross_entropy, dataset, num_workers=2,
                        num_steps=20)  # fmt: skip
    assert len(result.lrs) == 20


def test_a_loss_below_zero_still_stops_where_it_diverges():
    # the divergence rule compared the loss with 4x its minimum, which means nothing once the
    # minimum is at or below 0 (a Gaussian NLL, a loss with an offset): such a sweep ran on,
    # far past the divergence, to end_lr or a non-finite loss
    splits = load("digits")

    def shifted(outputs, targets):  # cross-entropy less 10: below 0 all along
        return LOSS(outputs, targets) - 10.0

    results = {}
    for name, loss in (("plain", LOSS), ("shifted", shifted)):
        torch.manual_seed(0)
        model = build("mlp")
        results[name] = sc.lr_find(
            model, loss, ArrayLoader(splits.train, 32, seed=0), end_lr=1e4, num_steps=150
        )
    plain, below = results["plain"], results["shifted"]
    assert plain.stop_reason.startswith("diverged at step"), plain.stop_reason
    assert below.stop_reason.startswith("diverged at step"), below.stop_reason
    assert "rose above its minimum" in below.stop_reason and len(below.lrs) < 150
    # the same curve less 10 stops near where the curve stops (a rise on the fall's scale,
    # not 4x the minimum), and its suggestion is the same LR
    assert max(below.lrs) / max(plain.lrs) < 10
    assert below.max_lr == pytest.approx(plain.max_lr)


def test_a_batch_size_a_loader_of_the_users_own_cannot_take_is_refused():
    # a user's check: lr_find(DataLoader(batch_size=64), batch_size=128) swept at 64 without
    # a word (tune and Trainer refuse it)
    digits = load("digits")
    dataset = torch.utils.data.TensorDataset(digits.train.inputs, digits.train.targets)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    with pytest.raises(ValueError, match=r"batch_size 128: train_data is a loader with its own "
                       r"batch size \(64\)"):  # fmt: skip
        sc.lr_find(build("mlp"), LOSS, loader, batch_size=128, num_steps=20)
    assert len(sc.lr_find(build("mlp"), LOSS, loader, batch_size=64, num_steps=20).lrs) == 20
    assert len(sc.lr_find(build("mlp"), LOSS, dataset, batch_size=128, num_steps=20).lrs) == 20
    # a loader whose items are whole batches (DataLoader(batch_size=None)): its first item's
    # size, as tune and Trainer read it (lr_find refused any batch_size for it)

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return len(digits.train) // 32

        def __getitem__(self, index):
            rows = slice(index * 32, (index + 1) * 32)
            return digits.train.inputs[rows], digits.train.targets[rows]

    items = torch.utils.data.DataLoader(Batches(), batch_size=None)
    assert len(sc.lr_find(build("mlp"), LOSS, items, batch_size=32, num_steps=20).lrs) == 20
    with pytest.raises(ValueError, match=r"its own batch size \(32\)"):
        sc.lr_find(build("mlp"), LOSS, items, batch_size=64, num_steps=20)


def test_the_library_records_the_batch_each_step_read():
    inputs, targets = torch.randn(40, 3), torch.randn(40, 1)
    for asked, read in ((8, 8), (100, 40)):  # 100 from 40 samples: every batch is all 40
        model, mse = nn.Linear(3, 1), nn.functional.mse_loss
        result = sc.lr_find(model, mse, (inputs, targets), batch_size=asked, num_steps=10)
        assert result.settings["batch_size"] == read
