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
    assert scheduler.last_momentum is None
    assert "momentum" not in optimizer.param_groups[0]


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
    HyperparamScheduler(optimizer, plan, max_lr=slice(1e-1))  # fastai's: the body at a tenth
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-2 / 25, 1e-1 / 25])


def test_spread_max_lr_is_geometric_like_fastai_slice():
    assert spread_max_lr((1e-4, 1e-2), 3) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert spread_max_lr(slice(1e-5, 1e-1), 5) == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    # fastai's slice(lr): the head at lr, the other groups at lr / 10 (every group got lr)
    assert spread_max_lr(slice(0.3), 3) == pytest.approx([0.03, 0.03, 0.3])
    assert spread_max_lr(slice(None, 0.3), 1) == [0.3]
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


# torch's own protocol, tested the way torch's test_lrscheduler.py tests its schedulers: against
# the closed form step by step, inside SequentialLR / ChainedScheduler, and through state_dict


def _lrs_and_momenta(optimizer, scheduler, steps):
    seen = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        momentum = group["betas"][0] if "betas" in group else group["momentum"]
        epoch = getattr(scheduler, "last_epoch", None)  # ChainedScheduler has none
        seen.append((epoch, scheduler.get_last_lr(), group["lr"], momentum))
        optimizer.step()
        scheduler.step()
    return seen


def test_is_a_torch_lr_scheduler():
    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    scheduler = HyperparamScheduler(optimizer, one_cycle(10, 1.0))
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    assert scheduler.last_epoch == scheduler.step_count == 0
    assert scheduler.get_last_lr() == [optimizer.param_groups[0]["lr"]] == [0.04]
    assert optimizer.param_groups[0]["initial_lr"] == 0.04  # as OneCycleLR sets it
    optimizer.step()
    scheduler.step()
    assert scheduler.last_epoch == scheduler.step_count == 1
    assert (
        scheduler.get_last_lr() == [optimizer.param_groups[0]["lr"]] == [one_cycle(10, 1.0).lr(1)]
    )


@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
def test_get_last_lr_last_epoch_and_momentum_equal_one_cycle_lr_at_every_step(optimizer_name):
    def make():
        params = _model().parameters()
        if optimizer_name == "sgd":
            return torch.optim.SGD(params, lr=0.1, momentum=0.9)
        return torch.optim.AdamW(params, lr=0.1)

    ours_opt, torch_opt = make(), make()
    ours = HyperparamScheduler(ours_opt, one_cycle(25, 0.3))
    theirs = torch.optim.lr_scheduler.OneCycleLR(torch_opt, max_lr=0.3, total_steps=25)
    got, want = _lrs_and_momenta(ours_opt, ours, 25), _lrs_and_momenta(torch_opt, theirs, 25)
    for (epoch, last, lr, momentum), (t_epoch, t_last, t_lr, t_momentum) in zip(
        got, want, strict=True
    ):
        assert epoch == t_epoch
        assert last == pytest.approx(t_last, rel=1e-12)
        assert lr == pytest.approx(t_lr, rel=1e-12)
        assert momentum == pytest.approx(t_momentum, rel=1e-12)


def _flat(seen):
    return [float(v) for _, last, lr, momentum in seen for v in (*last, lr, momentum)]


def _sequential(optimizer, second):
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=4)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, second], milestones=[5])


def test_inside_sequential_lr_it_behaves_as_one_cycle_lr():
    ours_opt = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    torch_opt = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    ours = _sequential(ours_opt, HyperparamScheduler(ours_opt, one_cycle(20, 0.5)))
    theirs = _sequential(
        torch_opt, torch.optim.lr_scheduler.OneCycleLR(torch_opt, max_lr=0.5, total_steps=20)
    )
    got, want = _lrs_and_momenta(ours_opt, ours, 25), _lrs_and_momenta(torch_opt, theirs, 25)
    assert _flat(got) == pytest.approx(_flat(want), rel=1e-12)
    plan = one_cycle(20, 0.5)
    assert [g[2] for g in got[5:]] == pytest.approx([plan.lr(k) for k in range(20)], rel=1e-12)


def test_resume_inside_sequential_lr_continues_exactly():
    def make():
        optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
        return optimizer, _sequential(optimizer, HyperparamScheduler(optimizer, one_cycle(20, 0.5)))

    full_opt, full = make()
    want = _lrs_and_momenta(full_opt, full, 25)
    first_opt, first = make()
    got = _lrs_and_momenta(first_opt, first, 9)  # past the milestone, mid-cycle
    buffer = io.BytesIO()
    torch.save({"optimizer": first_opt.state_dict(), "scheduler": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    optimizer, scheduler = make()
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    got += _lrs_and_momenta(optimizer, scheduler, 16)
    assert got == want


def test_inside_chained_scheduler_it_behaves_as_one_cycle_lr():
    ours_opt = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    torch_opt = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    chained = torch.optim.lr_scheduler.ChainedScheduler
    ours = chained(
        [
            HyperparamScheduler(ours_opt, one_cycle(15, 0.5)),
            torch.optim.lr_scheduler.ExponentialLR(ours_opt, gamma=0.9),
        ]
    )
    theirs = chained(
        [
            torch.optim.lr_scheduler.OneCycleLR(torch_opt, max_lr=0.5, total_steps=15),
            torch.optim.lr_scheduler.ExponentialLR(torch_opt, gamma=0.9),
        ]
    )
    got, want = _lrs_and_momenta(ours_opt, ours, 15), _lrs_and_momenta(torch_opt, theirs, 15)
    assert _flat(got) == pytest.approx(_flat(want), rel=1e-12)


def test_torch_step_order_gives_no_warning_and_past_the_end_never_raises():
    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    scheduler = HyperparamScheduler(optimizer, one_cycle(5, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            optimizer.step()
            scheduler.step()
    with pytest.warns(UserWarning, match="holding the final values"):
        for _ in range(3):  # OneCycleLR raises "Tried to step 7 times" here
            optimizer.step()
            scheduler.step()
    assert scheduler.get_last_lr() == [one_cycle(5, 1.0).lr(4)]


def test_a_tensor_lr_is_returned_as_a_copy_by_get_last_lr():
    optimizer = torch.optim.Adam(_model().parameters(), lr=torch.tensor(0.01))
    scheduler = HyperparamScheduler(optimizer, one_cycle(5, 1.0))
    scheduler.step()
    last = scheduler.get_last_lr()[0]
    assert isinstance(last, torch.Tensor)
    assert last is not optimizer.param_groups[0]["lr"]
    assert float(last) == pytest.approx(one_cycle(5, 1.0).lr(1))


def test_step_with_an_epoch_is_refused():
    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    scheduler = HyperparamScheduler(optimizer, one_cycle(5, 1.0))
    with pytest.raises(TypeError, match="step_count"):
        scheduler.step(3)


def test_a_group_added_mid_run_keeps_its_share_of_the_plans_lr():
    # an unfreezing callback (Lightning's BackboneFinetuning) adds the backbone at a tenth of
    # the LR: the scheduler keeps that share instead of giving it the plan's LR at scale 1
    head, backbone = torch.nn.Linear(2, 1), torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(head.parameters(), lr=0.1)
    plan = one_cycle(10, max_lr=1.0)
    scheduler = HyperparamScheduler(optimizer, plan)
    for _ in range(3):
        scheduler.step()
    assert scheduler.adopt_added_groups() == []
    optimizer.add_param_group({"params": backbone.parameters(), "lr": 0.1 * plan.lr(3)})
    assert scheduler.adopt_added_groups() == [(1, pytest.approx(0.1 * plan.lr(3)), 0.1)]
    assert optimizer.param_groups[1]["betas"][0] == plan.momentum(3)  # the cycle's, not AdamW's
    for step in range(4, 10):
        scheduler.step()
        assert optimizer.param_groups[1]["lr"] == pytest.approx(0.1 * plan.lr(step))
        assert optimizer.param_groups[1]["betas"][0] == plan.momentum(step)
    assert scheduler.adopt_added_groups() == []  # adopted once


def test_a_group_with_its_own_lr_scale_is_left_to_it_and_an_lr_written_between_updates_is_replaced():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD([model.weight], lr=0.1, momentum=0.9)
    plan = one_cycle(10, max_lr=1.0)
    scheduler = HyperparamScheduler(optimizer, plan)
    optimizer.add_param_group({"params": [model.bias], "lr_scale": 0.5})
    assert scheduler.adopt_added_groups() == []  # its own share, not one read from its LR
    assert optimizer.param_groups[1]["lr"] == 0.5 * plan.lr(0)
    assert scheduler.rewrite_if_changed() == []
    optimizer.param_groups[0]["lr"] = 0.05  # another schedule's write
    assert scheduler.rewrite_if_changed() == [(0, 0.05, plan.lr(0))]
    assert optimizer.param_groups[0]["lr"] == plan.lr(0)
