"""`OneCycle(max_lr="search")`: the cycle's rise as the range test, inside a Lightning fit."""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from superconverge.lightning import OneCycle  # noqa: E402
from superconverge.training import EdgeSettings  # noqa: E402
from tests.lightning.digits_module import (  # noqa: E402
    DigitsModule,
    RecordOptimizerSteps,
    digits_loader,
    trainer,
)
from tests.training.test_edge import observed_losses  # noqa: E402

EPOCHS = 8  # 16 updates an epoch: 128, a rise of 38 updates were it to reach 10


def test_the_rise_finds_its_edge_restores_a_copy_and_descends_as_planned(tmp_path):
    callback, record = OneCycle("search"), RecordOptimizerSteps()
    module = DigitsModule("adamw")
    trainer([callback, record], tmp_path, max_epochs=EPOCHS).fit(module, digits_loader())
    edge = callback.lr_search
    assert edge is not None and edge["restored_step"] is not None
    assert edge["restored_step"] < edge["step"] < 38
    plan = callback.plan
    assert plan.policy == "one_cycle_search" and plan.max_lr == edge["max_lr"]
    assert len(record.seen) == EPOCHS * 16
    # every update used the plan's values: the rise as it ran, then the descent from max_lr
    for step, (lr, beta1) in enumerate(record.seen):
        assert lr == pytest.approx(plan.lr(step), rel=1e-9), step
        assert beta1 == pytest.approx(plan.momentum(step), rel=1e-9), step
    after = [lr for lr, _ in record.seen[edge["step"] + 1 :]]
    assert max(after) <= edge["max_lr"] * (1 + 1e-9) and after[-1] < edge["max_lr"] / 500
    assert "LR search:" in callback.history.notes[-1]
    # it trained: the restored weights went on to a low loss on the training data
    inputs, targets = digits_loader(shuffle=False).dataset.tensors
    module.eval()
    with torch.no_grad():
        accuracy = (module.net(inputs).argmax(1) == targets).float().mean()
    assert accuracy > 0.9


def test_a_fit_resumed_after_the_edge_ends_as_the_uninterrupted_one(tmp_path):
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    full_cb, full_record = OneCycle("search"), RecordOptimizerSteps()
    full = DigitsModule("adamw", dropout=0.0)
    trainer([full_cb, full_record, checkpoints], tmp_path, max_epochs=EPOCHS,
            enable_checkpointing=True).fit(full, digits_loader(shuffle=False))  # fmt: skip
    edge = full_cb.lr_search
    assert edge is not None and edge["step"] < 48
    middle = sorted((tmp_path / "ckpt").glob("epoch=3*.ckpt"))[0]  # after 64 updates

    resumed_cb, resumed_record = OneCycle("search"), RecordOptimizerSteps()
    resumed = DigitsModule("adamw", dropout=0.0, seed=123)  # its weights come from the file
    trainer([resumed_cb, resumed_record], tmp_path, max_epochs=EPOCHS).fit(
        resumed, digits_loader(shuffle=False), ckpt_path=middle
    )
    assert resumed_cb.lr_search == edge and resumed_cb.plan == full_cb.plan
    assert resumed_record.seen == full_record.seen[64:]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_fewer_copies_when_the_memory_is_short(tmp_path, monkeypatch):
    from superconverge.training.edge import EdgeSearch

    size = EdgeSearch._size_copies

    def short(self, fit, nbytes, memory):  # a machine where a quarter holds 2.5 copies
        size(self, fit, nbytes, int(4 * 2.5 * nbytes))

    monkeypatch.setattr(EdgeSearch, "_size_copies", short)
    callback = OneCycle("search", search=EdgeSettings(copy_memory=0.25))
    trainer([callback], tmp_path, max_epochs=EPOCHS).fit(DigitsModule("adamw"), digits_loader())
    assert callback.edge_search is not None and callback.edge_search.copies_kept == 2
    assert any("2 copies of the weights" in note for note in callback.history.notes)
    assert callback.lr_search is not None and callback.lr_search["restored_step"] is not None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [({"max_lr": "serch"}, TypeError, r"max_lr must be .*'search'.*got 'serch'"),
     ({"max_lr": "search", "min_lr": 1e-3}, ValueError, r"leave min_lr=0.001 unset"),
     ({"max_lr": "search", "warmup_fraction": 0.25}, ValueError, r"leave warmup_fraction=0.25"),
     ({"max_lr": 0.1, "search": EdgeSettings()}, ValueError, r"search sets the constants"),
     ({"max_lr": "search", "search": {"divisor": 3}}, TypeError, r"EdgeSettings.*got dict")],
)  # fmt: skip
def test_bad_search_arguments_are_named_when_the_callback_is_built(kwargs, error, message):
    with pytest.raises(error, match=message):
        OneCycle(**kwargs)


def test_a_run_too_short_to_search_is_named_in_the_trainers_terms(tmp_path):
    with pytest.raises(ValueError, match=r"at least 4 optimizer steps; this Trainer runs 2"):
        trainer([OneCycle("search")], tmp_path, max_steps=2).fit(DigitsModule(), digits_loader())


class _Losses(DigitsModule):
    """Records each training_step's loss; returns None (skips the batch) at `skip`."""

    def __init__(self, skip=None):
        super().__init__("adamw")
        self.raw, self.skip = [], skip

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if batch_idx == self.skip:
            self.raw.append(None)
            return None
        self.raw.append(float(loss))
        return loss


def test_with_accumulation_the_search_reads_the_mean_of_the_updates_micro_batches(
    tmp_path, monkeypatch
):
    seen = observed_losses(monkeypatch)
    module, callback = _Losses(), OneCycle("search")
    trainer([callback], tmp_path, max_epochs=EPOCHS, accumulate_grad_batches=2).fit(
        module, digits_loader()
    )
    assert callback.lr_search is not None and seen
    for step, loss in seen:  # the losses training_step returned, not Lightning's divided
        pair = module.raw[2 * step : 2 * step + 2]  # ones (a user's check: notes read 1/3 of
        assert loss == pytest.approx(sum(pair) / 2, rel=1e-6), step  # the loss at 3)


def test_a_training_step_that_skips_batches_is_searched_and_trained(tmp_path, monkeypatch):
    seen = observed_losses(monkeypatch)
    module, callback = _Losses(skip=3), OneCycle("search")
    trainer([callback], tmp_path, max_epochs=EPOCHS).fit(module, digits_loader())
    assert callback.lr_search is not None
    # Lightning counts each epoch's skipped batch as an update (its LR was set), but it has no
    # loss to read: the search reads every other update's, in order
    steps = [step for step, _ in seen]
    expected = [step for step in range(2 * len(steps)) if step % 16 != 3]  # batch 3 of 16
    assert steps == expected[: len(steps)]
    kept = [loss for loss in module.raw if loss is not None]
    assert [loss for _, loss in seen] == pytest.approx(kept[: len(seen)], rel=1e-6)


def test_a_reused_callback_reports_only_its_latest_fits_search(tmp_path):
    callback = OneCycle("search")
    trainer([callback], tmp_path, max_epochs=EPOCHS).fit(DigitsModule("adamw"), digits_loader())
    first, first_notes = callback.lr_search, list(callback.history.notes)
    trainer([callback], tmp_path, max_epochs=EPOCHS).fit(
        DigitsModule("adamw", seed=7), digits_loader()
    )
    assert callback.lr_search is not None and callback.lr_search is not first
    assert "LR search:" in callback.history.notes[-1]
    assert not set(first_notes) & set(callback.history.notes)
    assert callback.plan is not None and callback.plan.max_lr == callback.lr_search["max_lr"]


def test_the_searchs_copies_hold_no_gradients(tmp_path, monkeypatch):
    """Lightning keeps an update's gradients until the next one replaces them: a copy of them
    would be a parameter-size tensor per copy spent on nothing."""
    from superconverge.pytorch.snapshot import training_state_nbytes
    from superconverge.training.edge import EdgeSearch

    take, seen = EdgeSearch._take_copy, []

    def recording(self, fit, step, lr):
        take(self, fit, step, lr)
        live = [p.grad is not None for p in fit.trainer.module.parameters()]
        copied = [grad is not None for *_, grad in self._copies[-1][2].params]
        seen.append((all(live), any(copied)))

    monkeypatch.setattr(EdgeSearch, "_take_copy", recording)
    callback = OneCycle("search")
    trainer([callback], tmp_path, max_epochs=EPOCHS).fit(DigitsModule("adamw"), digits_loader())
    assert seen and all(live and not copied for live, copied in seen[1:])
    assert callback.lr_search is not None and callback.lr_search["restored_step"] is not None
    module = DigitsModule("adamw")
    module.net[0].weight.grad = torch.ones_like(module.net[0].weight)
    with_grads, without = (training_state_nbytes(module, grads=g) for g in (True, False))
    assert with_grads - without == module.net[0].weight.nbytes
