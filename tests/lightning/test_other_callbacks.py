"""OneCycle beside callbacks that touch the LR: Lightning's BackboneFinetuning (adds a param
group mid-run and writes its LR each epoch), one with an LR schedule of its own, and Lightning's
LearningRateFinder (a sweep of its own)."""

import warnings

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import (  # noqa: E402
    BackboneFinetuning,
    LearningRateFinder,
    ModelCheckpoint,
)
from torch import nn  # noqa: E402

from superconverge import one_cycle  # noqa: E402
from superconverge.lightning import OneCycle  # noqa: E402
from tests.lightning.digits_module import DigitsModule, digits_loader, trainer  # noqa: E402

STEPS = 16  # 512 samples / 32 per batch: updates per epoch


class Backbone(pl.LightningModule):
    """A module BackboneFinetuning can unfreeze: ``backbone`` frozen, ``head`` trained."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        return nn.functional.cross_entropy(self.head(self.backbone(inputs)), targets)

    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.SGD(trainable, lr=0.1, momentum=0.9)


class UsedLRs(pl.Callback):
    """The LR of every group in each update, read after the step (Lightning calls
    on_before_optimizer_step inside optimizer.step, after a step pre-hook has run)."""

    def __init__(self):
        self.seen = []

    def on_train_start(self, trainer, pl_module):
        def record(optimizer, args, kwargs):
            self.seen.append([float(g["lr"]) for g in optimizer.param_groups])

        self.handle = trainer.optimizers[0].register_step_post_hook(record)

    def on_train_end(self, trainer, pl_module):
        self.handle.remove()


def _fit_backbone(tmp_path, epochs=3, ckpt_path=None, save=False):
    used = UsedLRs()
    callbacks = [
        BackboneFinetuning(unfreeze_backbone_at_epoch=1, backbone_initial_ratio_lr=0.1),
        OneCycle(max_lr=0.1),
        used,
    ]
    extra = {}
    if save:
        callbacks.append(ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1))
        extra["enable_checkpointing"] = True
    fit = trainer(callbacks, tmp_path, max_epochs=epochs, **extra)
    fit.fit(Backbone(), digits_loader(), ckpt_path=ckpt_path)
    return used.seen


def test_an_unfrozen_backbone_keeps_its_share_of_the_cycle_at_every_update(tmp_path):
    plan = one_cycle(3 * STEPS, max_lr=0.1)
    with pytest.warns(UserWarning, match=r"param group 1 was added .*lr_scale 0\.1") as caught:
        seen = _fit_backbone(tmp_path)
    assert len(seen) == 3 * STEPS
    for step, lrs in enumerate(seen):
        assert lrs[0] == pytest.approx(plan.lr(step), rel=1e-12)
        if step >= STEPS:  # unfrozen at epoch 1 at a tenth of the head's LR, and kept there
            # (before: the head's LR from the second update after unfreezing)
            assert lrs[1] == pytest.approx(0.1 * plan.lr(step), rel=1e-9), step
    # BackboneFinetuning's own LR for the group at each later epoch is replaced, and said
    assert any("was changed between updates" in str(w.message) for w in caught)


def test_a_resume_after_the_unfreezing_continues_the_same_lrs(tmp_path):
    whole = _fit_backbone(tmp_path / "a", save=True)
    checkpoint = tmp_path / "a" / "ckpt" / f"epoch=1-step={2 * STEPS}.ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = _fit_backbone(tmp_path / "b", ckpt_path=checkpoint)
    assert resumed == whole[2 * STEPS :]


class EpochLR(pl.Callback):
    """A callback with an LR schedule of its own: it writes the LR at each epoch's start."""

    def on_train_epoch_start(self, trainer, pl_module):
        for group in trainer.optimizers[0].param_groups:
            group["lr"] = 0.05


def test_an_lr_another_callback_writes_is_replaced_by_the_cycle_and_said(tmp_path):
    used = UsedLRs()
    fit = trainer([OneCycle(max_lr=0.1), EpochLR(), used], tmp_path, max_epochs=3)
    with pytest.warns(UserWarning, match=r"changed between updates \(to 0\.05"):
        fit.fit(DigitsModule(), digits_loader())
    plan = one_cycle(3 * STEPS, max_lr=0.1)
    assert [lrs[0] for lrs in used.seen] == pytest.approx(
        [plan.lr(k) for k in range(3 * STEPS)], rel=1e-12
    )


@pytest.mark.parametrize("max_lr", [0.1, None])
def test_learning_rate_finder_beside_one_cycle_is_warned_about(tmp_path, max_lr):
    finder = LearningRateFinder(num_training_steps=20, update_attr=False)
    callback = OneCycle(max_lr, start_lr=1e-4, end_lr=10.0, num_steps=40)
    fit = trainer([finder, callback], tmp_path, max_epochs=1)
    uses = "a second sweep" if max_lr is None else "max_lr=0.1"
    with pytest.warns(UserWarning, match=f"LearningRateFinder's suggestion is not used.*{uses}"):
        fit.fit(DigitsModule(), digits_loader())
