import json
import math
import re

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from superconverge.data import load
from superconverge.models import build
from superconverge.training import Callback, Trainer

LOSS = nn.functional.cross_entropy


@pytest.fixture(scope="module")
def digits():
    return load("digits")


class Recorder(nn.Module):
    """A linear model that records the targets' first inputs it trains on (not eval passes)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        if self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x)


def test_the_loop_sees_the_batches_of_a_plain_loop_over_a_seeded_dataloader():
    """The shape check uses the loop's own first batch: no extra draw shifts the order."""
    data = TensorDataset(torch.randn(40, 4), torch.randint(0, 3, (40,)))

    def loader():
        return DataLoader(
            data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(5)
        )

    plain = [inputs for inputs, _ in loader()]
    model = Recorder()
    Trainer(model, LOSS, loader(), progress=False).fit_one_cycle(1, 0.01)
    assert len(model.seen) == len(plain) == 5
    assert all(torch.equal(a, b) for a, b in zip(model.seen, plain, strict=True))


def test_a_bad_first_batch_of_a_dataloader_fails_before_any_step():
    data = TensorDataset(torch.randn(32, 5), torch.randint(0, 3, (32,)))  # 5 features, model 4
    model = Recorder()
    before = model.linear.weight.detach().clone()
    with pytest.raises(ValueError, match=r"cannot take the training inputs of shape \(8, 5\)"):
        Trainer(model, LOSS, DataLoader(data, batch_size=8), progress=False).fit_one_cycle(1, 0.1)
    assert torch.equal(model.linear.weight, before) and model.seen == []


def test_a_blow_up_that_stays_flat_diverges_and_leaves_history_json_in_a_new_folder(
    digits, tmp_path
):
    """Digits MLP at max_lr=1e3 used to end 'completed' at a train loss of ~565 (chance: 2.3);
    a first-epoch divergence into a folder that did not exist left no history.json."""
    torch.manual_seed(0)
    out = tmp_path / "new" / "run"
    trainer = Trainer(
        build("mlp"),
        LOSS,
        digits.train,
        digits.val,
        batch_size=32,
        out_dir=out,
        progress=False,
    )
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = trainer.fit_one_cycle(3, 1e3)
    assert history.status == "diverged" and history.epochs == []
    saved = json.loads((out / "history.json").read_text())
    assert saved["status"] == "diverged" and saved["message"] == history.message


def test_the_divergence_advice_is_below_the_peak_and_the_lr_that_diverged(digits):
    torch.manual_seed(0)
    trainer = Trainer(build("mlp"), LOSS, digits.train, batch_size=32, progress=False)
    with pytest.warns(RuntimeWarning):
        history = trainer.fit_one_cycle(1, 1e3)
    found = re.search(
        r"max_lr (\S+) diverged at step \d+ \(lr (\S+)\).*e\.g\. (\S+)\)", history.message
    )
    assert found is not None, history.message
    peak, lr, advice = (float(v) for v in found.groups())
    assert advice < lr and advice < peak


def test_ctrl_c_in_the_first_epoch_leaves_history_json(digits, tmp_path):
    class Interrupt(Callback):
        def on_step_end(self, trainer, step, loss):
            if step == 3:
                raise KeyboardInterrupt

    trainer = Trainer(
        build("mlp"),
        LOSS,
        digits.train,
        batch_size=32,
        out_dir=tmp_path / "run",
        callbacks=[Interrupt()],
        progress=False,
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit_one_cycle(2, 0.05)
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert saved["status"] == "interrupted"
    # each step made keeps its loss as it keeps its LR (a user's check: 33 losses, 41 LRs)
    assert len(saved["step_losses"]) == len(saved["step_lrs"]) == len(saved["step_momenta"]) == 4
    assert trainer.history.step_losses == saved["step_losses"]


def test_each_fit_has_its_own_loop_state(digits):
    """A second fit starts from a fresh smoother and best loss, not the first fit's."""
    trainer = Trainer(build("mlp"), LOSS, digits.train, batch_size=32, progress=False)
    first = trainer.fit_one_cycle(1, 0.05)
    second = trainer.fit_one_cycle(1, 0.05)
    assert first is not second and second.steps == first.steps == 41
    assert math.isnan(trainer.scheduler_lr())  # no fit is running
