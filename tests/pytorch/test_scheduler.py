import io
import warnings

import pytest

torch = pytest.importorskip("torch")

from superconverge import HyperparamScheduler  # noqa: E402
from superconverge.pytorch import spread_max_lr  # noqa: E402
from superconverge.schedules import constant, cyclic, one_cycle, smith_one_cycle  # noqa: E402


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _batches(count, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 4, generator=generator), torch.randint(0, 3, (16,), generator=generator))
        for _ in range(count)
    ]


def _train(model, optimizer, scheduler, batches, record=None):
    loss_fn = torch.nn.CrossEntropyLoss()
    for inputs, targets in batches:
        if record is not None:
            group = optimizer.param_groups[0]
            momentum = group["betas"][0] if "betas" in group else group["momentum"]
            record.append((group["lr"], momentum))
        optimizer.zero_grad()
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), "momentum"),
        (lambda p: torch.optim.RMSprop(p, lr=0.1, momentum=0.9), "momentum"),
        (lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.9, 0.999)), "betas"),
        (lambda p: torch.optim.AdamW(p, lr=0.1, betas=(0.9, 0.98)), "betas"),
        (lambda p: torch.optim.NAdam(p, lr=0.1, betas=(0.9, 0.98)), "betas"),
        (lambda p: torch.optim.RAdam(p, lr=0.1, betas=(0.9, 0.98)), "betas"),
    ],
)
def test_writes_lr_and_momentum_where_each_optimizer_keeps_it(factory, key):
    optimizer = factory(_model().parameters())
    beta2_before = optimizer.param_groups[0]["betas"][1] if key == "betas" else None
    plan = one_cycle(20, max_lr=1.0)
    scheduler = HyperparamScheduler(optimizer, plan)
    for step in range(20):
        group = optimizer.param_groups[0]
        assert group["lr"] == plan.lr(step)
        momentum = group["betas"][0] if key == "betas" else group["momentum"]
        assert momentum == plan.momentum(step)
        if key == "betas":
            assert group["betas"][1] == beta2_before  # beta2 is never touched
        scheduler.step()


def test_optimizer_without_momentum_needs_a_plan_without_momentum():
    optimizer = torch.optim.Adagrad(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"Adagrad has no momentum.*momentum=None"):
        HyperparamScheduler(optimizer, one_cycle(10, 0.1))
    scheduler = HyperparamScheduler(optimizer, one_cycle(10, 0.1, momentum=None))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 25)
    assert scheduler.current()[0]["momentum"] is None


def test_same_training_as_torch_one_cycle_lr():
    batches = _batches(40)
    ours_model, torch_model = _model(), _model()
    ours_opt = torch.optim.SGD(ours_model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    ours_record, torch_record = [], []
    _train(
        ours_model,
        ours_opt,
        HyperparamScheduler(ours_opt, one_cycle(40, 0.5)),
        batches,
        ours_record,
    )
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(torch_opt, max_lr=0.5, total_steps=40)
    _train(torch_model, torch_opt, torch_sched, batches, torch_record)
    assert [v for pair in ours_record for v in pair] == pytest.approx(
        [v for pair in torch_record for v in pair], rel=1e-12
    )
    for ours, theirs in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_discriminative_lrs_from_a_list_and_from_a_low_high_pair():
    model = _model()
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters()}]
    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    plan = one_cycle(10, max_lr=1.0)
    HyperparamScheduler(optimizer, plan, max_lr=[0.01, 0.1])
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01 / 25, 0.1 / 25])
    HyperparamScheduler(optimizer, plan, max_lr=(1e-3, 1e-1))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-3 / 25, 1e-1 / 25])


def test_spread_max_lr_is_geometric_like_fastai_slice():
    assert spread_max_lr((1e-4, 1e-2), 3) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert spread_max_lr(slice(1e-5, 1e-1), 5) == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert spread_max_lr(slice(None, 0.3), 2) == [0.3, 0.3]
    assert spread_max_lr(0.3, 2) == [0.3, 0.3]
    assert spread_max_lr((1e-3, 1e-2), 1) == [1e-2]


@pytest.mark.parametrize(
    ("max_lr", "message"),
    [
        ([0.1, 0.2, 0.3], r"one value per param group \(2\), got 3"),
        ((0.1, 0.01), "low <= high"),
        ((0.1, -1.0), "max_lr must be > 0"),
        ((0.1, 0.2, 0.3), r"\(low, high\) pair"),
    ],
)
def test_bad_discriminative_lrs_are_rejected(max_lr, message):
    model = _model()
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[2].parameters()}], lr=0.1
    )
    with pytest.raises(ValueError, match=message):
        HyperparamScheduler(optimizer, one_cycle(10, 1.0), max_lr=max_lr)


@pytest.mark.parametrize(
    "plan",
    [
        one_cycle(30, 0.5),
        smith_one_cycle(30, 0.5),
        cyclic(0.05, 0.5, 4, mode="triangular2", total_steps=30),
    ],
    ids=lambda p: p.policy,
)
@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
def test_resume_after_save_and_load_equals_an_uninterrupted_run(plan, optimizer_name):
    def make(model):
        if optimizer_name == "sgd":
            return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return torch.optim.AdamW(model.parameters(), lr=0.1)

    batches = _batches(30)
    full_model = _model()
    full_opt = make(full_model)
    full_record = []
    _train(full_model, full_opt, HyperparamScheduler(full_opt, plan), batches, full_record)

    first_model = _model()
    first_opt = make(first_model)
    first_sched = HyperparamScheduler(first_opt, plan)
    resumed_record = []
    _train(first_model, first_opt, first_sched, batches[:13], resumed_record)
    buffer = io.BytesIO()
    torch.save(
        {
            "model": first_model.state_dict(),
            "optimizer": first_opt.state_dict(),
            "scheduler": first_sched.state_dict(),
        },
        buffer,
    )
    assert first_sched.state_dict() == {"step_count": 13}  # one integer of state
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    model = _model(seed=123)  # different initial weights: everything must come from the checkpoint
    optimizer = make(model)
    scheduler = HyperparamScheduler(optimizer, plan)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    _train(model, optimizer, scheduler, batches[13:], resumed_record)

    assert resumed_record == full_record  # the same lr/momentum sequence, exactly
    for ours, theirs in zip(model.parameters(), full_model.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_stepping_past_the_end_warns_once_and_holds_the_final_values():
    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    plan = one_cycle(5, 1.0)
    scheduler = HyperparamScheduler(optimizer, plan)
    for _ in range(5):
        scheduler.step()  # stepping after the last update is normal: no warning
    with pytest.warns(UserWarning, match="the plan has 5 steps") as caught:
        for _ in range(3):
            scheduler.step()
    assert len(caught) == 1
    assert optimizer.param_groups[0]["lr"] == plan.lr(4)
    assert optimizer.param_groups[0]["momentum"] == plan.momentum(4)


def test_no_warning_within_the_plan():
    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    scheduler = HyperparamScheduler(optimizer, one_cycle(5, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            scheduler.step()


def test_a_tensor_lr_stays_a_tensor():
    optimizer = torch.optim.Adam(_model().parameters(), lr=torch.tensor(0.01), betas=(0.9, 0.99))
    lr_tensor = optimizer.param_groups[0]["lr"]
    HyperparamScheduler(optimizer, constant(0.5, momentum=0.8))
    assert optimizer.param_groups[0]["lr"] is lr_tensor
    assert float(lr_tensor) == pytest.approx(0.5)
    assert optimizer.param_groups[0]["betas"][0] == pytest.approx(0.8)


def test_bad_state_and_bad_arguments_are_rejected():
    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    scheduler = HyperparamScheduler(optimizer, one_cycle(5, 1.0))
    with pytest.raises(ValueError, match="step_count"):
        scheduler.load_state_dict({"step_count": -1})
    with pytest.raises(ValueError, match="step_count"):
        scheduler.load_state_dict({"last_epoch": 3})
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        HyperparamScheduler("sgd", one_cycle(5, 1.0))
    with pytest.raises(TypeError, match="Plan"):
        HyperparamScheduler(optimizer, lambda step: 0.1)
