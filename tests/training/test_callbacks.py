import pytest
import torch
from torch import nn

from superconverge.data import ArrayData
from superconverge.schedules import constant
from superconverge.training import Callback, CancelEpoch, CancelFit, Trainer

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
