import pytest
import torch
from torch import nn

from superconverge.data import ArrayData
from superconverge.schedules import constant
from superconverge.training import Callback, CancelEpoch, CancelFit, KeepBest, Trainer

LOSS = nn.functional.cross_entropy


def _data(samples=32):
    generator = torch.Generator().manual_seed(0)
    return ArrayData(torch.randn(samples, 4, generator=generator), torch.arange(samples) % 3)


def _trainer(callbacks, **kwargs):
    torch.manual_seed(0)
    return Trainer(
        nn.Linear(4, 3), LOSS, _data(), batch_size=8, callbacks=callbacks, progress=False, **kwargs
    )


class Events(Callback):
    def __init__(self):
        self.events = []

    def before_fit(self, fit):
        self.events.append("before_fit")

    def before_epoch(self, fit):
        self.events.append(f"before_epoch {fit.epoch}")

    def before_batch(self, fit):
        self.events.append("before_batch")

    def after_batch(self, fit):
        self.events.append(f"after_batch {fit.step}")

    def after_epoch(self, fit):
        self.events.append(f"after_epoch {int(fit.record['epoch'])}")

    def after_fit(self, fit):
        self.events.append(f"after_fit {fit.history.status}")


def test_events_come_in_fastai_order_once_per_optimizer_step():
    events = Events()
    _trainer([events]).fit_one_cycle(2, 0.05)  # 4 batches of 8 per epoch

    def epoch(index, first_step):
        steps = range(first_step, first_step + 4)
        batches = [item for s in steps for item in ("before_batch", f"after_batch {s}")]
        return [f"before_epoch {index}", *batches, f"after_epoch {index + 1}"]

    assert events.events == ["before_fit", *epoch(0, 0), *epoch(1, 4), "after_fit completed"]


def test_accumulated_micro_batches_make_one_batch_event():
    events = Events()
    _trainer([events], accumulation_steps=2).fit(1, constant(0.05))
    assert events.events.count("before_batch") == 2
    assert [e for e in events.events if e.startswith("after_batch")] == [
        "after_batch 0",
        "after_batch 1",
    ]


def test_the_older_hooks_still_run():
    class Old(Callback):
        def __init__(self):
            self.calls = []

        def on_fit_start(self, trainer, history):
            self.calls.append(("fit_start", history.status))

        def on_step_end(self, trainer, step, loss):
            self.calls.append(("step", step, loss.ndim))

        def on_epoch_end(self, trainer, record):
            self.calls.append(("epoch", record["epoch"]))

        def on_fit_end(self, trainer, history):
            self.calls.append(("fit_end", history.status))

    old = Old()
    _trainer([old]).fit_one_cycle(1, 0.05)
    assert old.calls == [
        ("fit_start", "running"),
        *[("step", step, 0) for step in range(4)],
        ("epoch", 1.0),
        ("fit_end", "completed"),
    ]


def test_cancel_fit_stops_with_status_cancelled():
    class StopAt(Callback):
        def after_batch(self, fit):
            if fit.step == 5:
                raise CancelFit

    history = _trainer([StopAt()]).fit_one_cycle(3, 0.05)
    assert history.status == "cancelled" and "epoch 2" in history.message
    assert len(history.epochs) == 1
    # every step made is in the history, its loss with its LR: the losses not yet read from
    # the device when the callback cancelled were dropped (4 steps and 6 LRs)
    assert history.steps == len(history.step_lrs) == len(history.step_momenta) == 6


def test_cancel_epoch_ends_the_epoch_and_goes_on():
    class SkipRest(Callback):
        def after_batch(self, fit):
            if fit.epoch == 0 and fit.step == 1:
                raise CancelEpoch

    history = _trainer([SkipRest()]).fit_one_cycle(2, 0.05)
    assert history.status == "completed" and len(history.epochs) == 2
    assert history.steps == 2 + 4  # two steps in the first epoch, four in the second


def test_callbacks_must_be_callbacks():
    with pytest.raises(TypeError, match="callbacks must be Callback objects"):
        _trainer([object()])
    # a class where an object is meant, or one that is no list: "'KeepBest' object is not
    # iterable" named no argument
    with pytest.raises(TypeError, match=r"got the class KeepBest: KeepBest\(\)"):
        _trainer([KeepBest])
    with pytest.raises(TypeError, match="callbacks must be a list of Callback objects, got 3"):
        _trainer(3)


def test_one_callback_needs_no_list():
    events = Events()  # fastai's cbs= takes one callback as well as a list
    _trainer(events).fit(1, constant(0.01))
    assert events.events[0] == "before_fit" and events.events[-1] == "after_fit completed"


# ----------------------------------------------------------------- early stopping, keep-best
class Snapshots(Callback):
    """The model's weights after each epoch (what KeepBest must hand back)."""

    def __init__(self):
        self.weights = {}

    def after_epoch(self, fit):
        state = fit.trainer.module.state_dict()
        self.weights[int(fit.record["epoch"])] = {k: v.clone() for k, v in state.items()}


def _fitting(callbacks, epochs=8, **kwargs):
    """A real fit with validation data whose labels are shifted: the better the model learns
    the training labels, the worse its validation loss (a run that overfits from the start)."""
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(32, 4, generator=generator)
    train, val = (
        ArrayData(inputs, torch.arange(32) % 3),
        ArrayData(inputs, (torch.arange(32) + 1) % 3),
    )
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 3), LOSS, train, val, batch_size=8, callbacks=callbacks,
                      progress=False, **kwargs)  # fmt: skip
    return trainer, trainer.fit(epochs, constant(0.1))


def _equal(left, right):
    return all(torch.equal(left[k], right[k]) for k in left) and left.keys() == right.keys()


def test_early_stopping_ends_the_fit_cleanly_when_the_monitor_stops_improving():
    from superconverge.training import EarlyStopping

    stopping = EarlyStopping(patience=2)
    _, history = _fitting([stopping])
    val = history.epoch_values("val_loss")
    best_epoch = 1 + val.index(min(val))
    assert history.status == "cancelled"
    assert len(history.epochs) == best_epoch + 2 < 8  # two epochs without improvement
    assert history.message == (
        f"early stopping: val_loss did not improve for 2 epochs (best {min(val):.4g} at epoch "
        f"{best_epoch}); stopped after epoch {best_epoch + 2} of 8"
    )
    assert stopping.state_dict() == {"best": min(val), "best_epoch": best_epoch, "wait": 2}


def test_early_stopping_min_delta_mode_and_a_monitor_that_does_not_exist():
    from superconverge.training import EarlyStopping

    # the training loss falls every epoch: with mode "max" it never improves after epoch 1
    _, history = _fitting([EarlyStopping("train_loss", mode="max", patience=3)])
    assert len(history.epochs) == 4 and history.status == "cancelled"
    # a min_delta larger than any improvement: also stops after 1 + patience epochs
    _, history = _fitting([EarlyStopping("train_loss", patience=1, min_delta=10.0)])
    assert len(history.epochs) == 2
    with pytest.raises(
        ValueError, match="monitor 'val_acc' is not in the epoch records, which hold"
    ):
        _fitting([EarlyStopping("val_acc")])
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'lowest'"):
        EarlyStopping(mode="lowest")


@pytest.mark.parametrize("kind", ["EarlyStopping", "KeepBest"])
def test_a_validation_monitor_without_val_data_is_refused_before_any_step(kind):
    # a user's check: KeepBest() in a fit without val_data was refused after the first epoch
    import superconverge.training as training

    steps = []

    class Steps(Callback):
        def after_batch(self, fit):
            steps.append(fit.step)

    trainer = _trainer([getattr(training, kind)(), Steps()])
    with pytest.raises(ValueError, match=f"{kind}: monitor 'val_loss' is a validation value, "
                       "but the Trainer has no val_data"):  # fmt: skip
        trainer.fit(2, constant(0.1))
    assert steps == []


def test_early_stopping_never_cancels_after_the_last_epoch():
    from superconverge.training import EarlyStopping

    _, history = _fitting([EarlyStopping("train_loss", mode="max", patience=2)], epochs=3)
    assert history.status == "completed" and len(history.epochs) == 3


def test_keep_best_ends_with_the_best_epochs_weights():
    from superconverge.training import KeepBest

    snapshots, keep = Snapshots(), KeepBest()
    trainer, history = _fitting([snapshots, keep], epochs=5)
    val = history.epoch_values("val_loss")
    best_epoch = 1 + val.index(min(val))
    assert best_epoch < 5  # the last epoch is not the best: the weights must change back
    assert _equal(trainer.module.state_dict(), snapshots.weights[best_epoch])
    assert history.notes[-1] == (
        f"KeepBest: the model holds the weights of epoch {best_epoch} of 5 (val_loss {min(val):.4g})"
    )
    assert history.status == "completed"
    assert trainer.evaluate()["loss"] == pytest.approx(min(val))


def test_early_stopping_with_keep_best_stops_and_restores():
    from superconverge.training import EarlyStopping, KeepBest

    snapshots = Snapshots()
    trainer, history = _fitting([snapshots, EarlyStopping(patience=2), KeepBest()])
    best_epoch = 1 + history.epoch_values("val_loss").index(min(history.epoch_values("val_loss")))
    assert history.status == "cancelled" and len(history.epochs) == best_epoch + 2
    assert _equal(trainer.module.state_dict(), snapshots.weights[best_epoch])


def test_the_state_of_each_stateful_callback_saves_and_restores(tmp_path):
    from superconverge.training import EarlyStopping, KeepBest

    stopping, keep = EarlyStopping(patience=5), KeepBest("train_loss")
    _fitting([stopping, keep], epochs=3)
    path = tmp_path / "callbacks.pt"
    torch.save({"stopping": stopping.state_dict(), "keep": keep.state_dict()}, path)
    saved = torch.load(path, weights_only=True)  # plain numbers and tensors only
    stopping_again, keep_again = EarlyStopping(patience=5), KeepBest("train_loss")
    stopping_again.load_state_dict(saved["stopping"])
    keep_again.load_state_dict(saved["keep"])
    assert stopping_again.state_dict() == stopping.state_dict()
    assert keep_again.best == keep.best and keep_again.best_epoch == keep.best_epoch == 3
    assert _equal(keep_again.weights, keep.weights)


class _InterruptAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, fit):
        if int(fit.record["epoch"]) == self.epoch:  # after that epoch's checkpoint
            raise KeyboardInterrupt


def test_a_resumed_fit_stops_and_restores_like_an_uninterrupted_one(tmp_path):
    """EarlyStopping rebuilds its state from the History in the checkpoint; KeepBest takes the
    best epoch's weights from best.pt beside it."""
    from superconverge.training import EarlyStopping, KeepBest

    def callbacks():
        return [EarlyStopping(patience=3), KeepBest()]

    full, full_history = _fitting(callbacks(), epochs=10, out_dir=tmp_path / "full")
    best_epoch = int(min(full_history.epochs, key=lambda row: row["val_loss"])["epoch"])
    assert full_history.status == "cancelled" and best_epoch + 1 < len(full_history.epochs)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):  # cut after the epoch after the best one
        _fitting([*callbacks(), _InterruptAfter(best_epoch + 1)], epochs=10, out_dir=out)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(32, 4, generator=generator)
    train, val = (
        ArrayData(inputs, torch.arange(32) % 3),
        ArrayData(inputs, (torch.arange(32) + 1) % 3),
    )
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    history = Trainer.resume(out / "checkpoint.pt", model, LOSS, train, val, batch_size=8,
                             callbacks=callbacks(), progress=False, out_dir=out)  # fmt: skip
    assert history.status == full_history.status and history.message == full_history.message
    assert _equal(model.state_dict(), full.module.state_dict())


class _Counter(Callback):
    """A user's callback with state: the epochs it has seen end."""

    checkpoint_key = "counter"

    def __init__(self):
        self.n = 0

    def on_epoch_end(self, trainer, record):
        self.n += 1

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def test_a_callbacks_saved_state_holds_the_epoch_it_was_saved_after(tmp_path):
    # a user's check: the checkpoint after epoch 4 held {'n': 3} (saved before the callbacks'
    # epoch end), and a fit resumed after epoch 2 ended with n == 3 where the whole one had 4
    from superconverge.training.checkpoint import load_checkpoint

    whole = _Counter()
    _trainer([whole], out_dir=tmp_path / "whole").fit_one_cycle(4, 0.05)
    assert whole.n == 4
    assert load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["callbacks"]["counter"] == {"n": 4}
    for order in ("counter first", "counter last"):  # a reviewer's check: the order mattered
        cut = tmp_path / order
        stop = _InterruptAfter(2)  # after epoch 2's end, as a Ctrl-C
        callbacks = [_Counter(), stop] if order == "counter first" else [stop, _Counter()]
        with pytest.raises(KeyboardInterrupt):
            _trainer(callbacks, out_dir=cut).fit_one_cycle(4, 0.05)
        saved = load_checkpoint(cut / "checkpoint.pt")
        assert saved["callbacks"]["counter"] == {"n": 2} and saved["fit"]["epochs_done"] == 2
        resumed = _Counter()
        torch.manual_seed(0)
        Trainer.resume(cut / "checkpoint.pt", nn.Linear(4, 3), LOSS, _data(), batch_size=8,
                       callbacks=[resumed], progress=False, out_dir=cut)  # fmt: skip
        assert resumed.n == 4, order


def test_a_callback_that_fails_at_its_epoch_end_leaves_a_consistent_checkpoint(tmp_path):
    from superconverge.training.checkpoint import load_checkpoint

    class Fails(_Counter):  # a callback with state: the epoch it failed in is not saved
        def on_epoch_end(self, trainer, record):
            super().on_epoch_end(trainer, record)
            if self.n == 2:
                raise RuntimeError("my callback's bug")

    with pytest.raises(RuntimeError, match="my callback's bug"):
        _trainer([Fails()], out_dir=tmp_path).fit_one_cycle(3, 0.05)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["fit"]["epochs_done"] == 1 and saved["callbacks"]["counter"] == {"n": 1}


def test_a_fit_ended_by_an_error_says_so_in_its_history(tmp_path):
    # an auditor's check: after a callback raised, history.status stayed "running"
    import json

    from superconverge.diagnostics.verdicts import diagnose

    class Fails(Callback):
        def after_epoch(self, fit):
            if fit.epoch == 1:
                raise RuntimeError("my callback's bug")

    trainer = _trainer([Fails()], out_dir=tmp_path)
    with pytest.raises(RuntimeError):
        trainer.fit_one_cycle(3, 0.05)
    history = trainer.history
    assert history.status == "failed" and history.message == "RuntimeError: my callback's bug"
    assert json.loads((tmp_path / "history.json").read_text())["status"] == "failed"
    verdict = diagnose(history)
    assert verdict.kind == "inconclusive" and "the run stopped on an error after 2 epochs" in verdict.explanation


def test_an_epochs_lr_is_its_last_steps():
    # an auditor's check: the epoch row's lr was the next step's (written after the last step),
    # so a history cut by EarlyStopping showed an epoch lr above its peak
    history = _trainer([]).fit_one_cycle(3, 0.05)
    per_epoch = history.steps // 3
    for row, k in zip(history.epochs, range(per_epoch - 1, history.steps, per_epoch), strict=True):
        assert row["lr"] == history.step_lrs[k][0]
    assert max(row["lr"] for row in history.epochs) <= max(lr[0] for lr in history.step_lrs)
    # discriminative LRs: the last group's, the head's, as the plots show (a reviewer's check:
    # the first group's recorded the body's 1e-6)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    trainer = Trainer(model, LOSS, _data(), batch_size=8, progress=False)
    history = trainer.fit_one_cycle(2, [0.001, 0.1])
    assert history.epochs[-1]["lr"] == history.step_lrs[-1][-1] > history.step_lrs[-1][0]
