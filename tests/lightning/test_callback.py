import random
import warnings

import numpy as np
import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from superconverge import HyperparamScheduler, one_cycle  # noqa: E402
from superconverge.lightning import OneCycle  # noqa: E402
from tests.lightning.digits_module import (  # noqa: E402
    DigitsModule,
    RecordOptimizerSteps,
    digits_loader,
    trainer,
)

SWEEP = {"start_lr": 1e-4, "end_lr": 10.0, "num_steps": 40}  # a short sweep keeps tests fast


def _planned(plan, steps):
    return [(plan.lr(k), plan.momentum(k)) for k in range(steps)]


class _State(pl.Callback):
    """Everything the range test may change, captured when on_train_start reaches it."""

    def __init__(self):
        self.state = None

    def on_train_start(self, trainer, pl_module):
        self.state = {
            "model": {k: v.clone() for k, v in pl_module.state_dict().items()},
            "modes": [m.training for m in pl_module.modules()],
            "grads": [p.grad for p in pl_module.parameters()],
            # lr, momentum and initial_lr are the 1cycle's once OneCycle has run: the rest must match
            "optimizer": repr(
                {
                    "state": trainer.optimizers[0].state_dict()["state"],
                    "groups": [
                        {k: v for k, v in g.items() if k not in ("lr", "momentum", "initial_lr")}
                        for g in trainer.optimizers[0].state_dict()["param_groups"]
                    ],
                }
            ),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state()[1].copy(),
            "python_rng": random.getstate(),
        }


def _same_state(a, b):
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["modes"] == b["modes"]
    assert a["grads"] == b["grads"]  # all None
    assert a["optimizer"] == b["optimizer"]
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert np.array_equal(a["numpy_rng"], b["numpy_rng"])
    assert a["python_rng"] == b["python_rng"]


def test_range_test_then_one_cycle_with_the_plans_values_at_every_step(tmp_path):
    callback, record = OneCycle(**SWEEP), RecordOptimizerSteps()
    before, after = _State(), _State()
    module = DigitsModule()
    trainer([before, callback, after, record], tmp_path).fit(module, digits_loader())

    _same_state(before.state, after.state)  # the range test left nothing behind
    result = callback.result
    assert result is not None and result.max_lr is not None
    assert result.settings["framework"] == "lightning"
    plan = callback.plan
    assert plan.max_lr == result.max_lr
    assert plan.total_steps == 2 * 16  # 512 samples / 32 per batch, 2 epochs
    assert record.seen == _planned(plan, 32)  # what each optimizer update used, exactly


def test_a_run_after_the_range_test_is_bitwise_the_run_given_its_max_lr(tmp_path):
    searched, given = OneCycle(**SWEEP), None
    first = DigitsModule()
    trainer([searched], tmp_path).fit(first, digits_loader())
    given = OneCycle(max_lr=searched.result.max_lr)
    second = DigitsModule()
    trainer([given], tmp_path).fit(second, digits_loader())
    assert given.result is None  # no range test when max_lr is given
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_adamw_beta1_cycles_and_accumulation_counts_optimizer_steps(tmp_path):
    callback, record = OneCycle(max_lr=0.01), RecordOptimizerSteps()
    trainer([callback, record], tmp_path, accumulate_grad_batches=2).fit(
        DigitsModule("adamw"), digits_loader()
    )
    assert callback.plan.total_steps == 16  # 32 micro-batches, 2 per optimizer step
    assert record.seen == _planned(callback.plan, 16)
    assert record.seen[0][1] == 0.95 and min(m for _, m in record.seen) < 0.86  # beta1 cycles


@pytest.mark.slow  # a second range test with accumulation: about 20 s here
def test_range_test_with_accumulation_steps_the_optimizer_once_per_window(tmp_path):
    callback = OneCycle(**SWEEP)
    trainer([callback], tmp_path, accumulate_grad_batches=2, max_epochs=1).fit(
        DigitsModule(), digits_loader()
    )
    assert callback.result.settings["accumulation_steps"] == 2
    assert callback.result.max_lr is not None


def test_resume_from_a_mid_cycle_checkpoint_continues_the_schedule_exactly(tmp_path):
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    full_cb, full_record = OneCycle(**SWEEP), RecordOptimizerSteps()
    full = DigitsModule(dropout=0.0)
    trainer([full_cb, full_record, checkpoints], tmp_path, enable_checkpointing=True).fit(
        full, digits_loader(shuffle=False)
    )
    middle = sorted((tmp_path / "ckpt").glob("epoch=0*.ckpt"))[0]  # after 16 of 32 steps

    resumed_cb, resumed_record = OneCycle(**SWEEP), RecordOptimizerSteps()
    resumed = DigitsModule(dropout=0.0, seed=123)  # other weights: all must come from the file
    trainer([resumed_cb, resumed_record], tmp_path).fit(
        resumed, digits_loader(shuffle=False), ckpt_path=middle
    )
    assert resumed_cb.plan == full_cb.plan  # from the checkpoint: no second range test
    assert resumed_cb.result == full_cb.result
    assert resumed_record.seen == full_record.seen[16:]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class _ModuleWithOurScheduler(DigitsModule):
    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        scheduler = HyperparamScheduler(optimizer, one_cycle(32, max_lr=0.2))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def test_configure_optimizers_takes_hyperparam_scheduler_and_resumes_it(tmp_path):
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    full_record = RecordOptimizerSteps()
    full = _ModuleWithOurScheduler(dropout=0.0)
    trainer([full_record, checkpoints], tmp_path, enable_checkpointing=True).fit(
        full, digits_loader(shuffle=False)
    )
    assert full_record.seen == _planned(one_cycle(32, max_lr=0.2), 32)
    middle = sorted((tmp_path / "ckpt").glob("epoch=0*.ckpt"))[0]
    assert torch.load(middle, weights_only=True)["lr_schedulers"] == [{"step_count": 16}]
    resumed_record = RecordOptimizerSteps()
    resumed = _ModuleWithOurScheduler(dropout=0.0, seed=5)
    trainer([resumed_record], tmp_path).fit(resumed, digits_loader(shuffle=False), ckpt_path=middle)
    assert resumed_record.seen == full_record.seen[16:]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_module_with_its_own_scheduler_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="OneCycle sets the LR itself"):
        trainer([OneCycle(max_lr=0.1)], tmp_path).fit(_ModuleWithOurScheduler(), digits_loader())


class _NoOptimizer(DigitsModule):
    def configure_optimizers(self):
        return None


@pytest.mark.parametrize("max_lr", [None, 0.1])
def test_a_module_without_an_optimizer_is_refused(tmp_path, max_lr):
    # a user's check: Lightning's stand-in optimizer passed as "one optimizer": the range test
    # on it printed "max_lr 0.107" (read from noise) and a given max_lr trained nothing, unsaid
    with pytest.raises(RuntimeError, match="OneCycle needs an optimizer: configure_optimizers "
                       "returned None"):  # fmt: skip
        trainer([OneCycle(max_lr=max_lr)], tmp_path).fit(_NoOptimizer(), digits_loader())


def test_a_second_fit_of_the_same_trainer_runs_a_whole_new_cycle_over_its_updates(tmp_path):
    # a user's check: fit, then max_epochs + 1 and fit again: the second fit's first update was
    # at 77% of the peak (the tail of a cycle planned over both fits), with no warm-up
    callback, record = OneCycle(max_lr=0.01), RecordOptimizerSteps()
    run = trainer([callback, record], tmp_path, max_epochs=1)
    module = DigitsModule()
    run.fit(module, digits_loader())
    assert record.seen == _planned(callback.plan, 16)
    run.fit_loop.max_epochs = 2
    run.fit(module, digits_loader())
    assert callback.plan.total_steps == 16  # the 16 updates left, not the fit's 32
    assert record.seen[16:] == _planned(callback.plan, 16)  # from the warm-up's first LR


def test_a_checkpoint_without_onecycle_starts_a_new_cycle_and_resumes_it_exactly(tmp_path):
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "plain", save_top_k=-1, every_n_epochs=1)
    trainer([checkpoints], tmp_path, max_epochs=1, enable_checkpointing=True).fit(
        DigitsModule(dropout=0.0), digits_loader(shuffle=False)
    )
    plain = sorted((tmp_path / "plain").glob("*.ckpt"))[0]  # 16 updates, no cycle in it
    # a new cycle over the 32 updates left; its own checkpoints resume it mid-way exactly
    saves = ModelCheckpoint(dirpath=tmp_path / "cycle", save_top_k=-1, every_n_epochs=1)
    full_cb, full_record = OneCycle(max_lr=0.01), RecordOptimizerSteps()
    trainer([full_cb, full_record, saves], tmp_path, max_epochs=3, enable_checkpointing=True).fit(
        DigitsModule(dropout=0.0), digits_loader(shuffle=False), ckpt_path=plain
    )
    assert full_cb.plan.total_steps == 32 and full_record.seen == _planned(full_cb.plan, 32)
    middle = sorted((tmp_path / "cycle").glob("epoch=1*.ckpt"))[0]  # the cycle's step 16
    resumed_cb, resumed_record = OneCycle(max_lr=0.01), RecordOptimizerSteps()
    trainer([resumed_cb, resumed_record], tmp_path, max_epochs=3).fit(
        DigitsModule(dropout=0.0, seed=123), digits_loader(shuffle=False), ckpt_path=middle
    )
    assert resumed_cb.plan == full_cb.plan
    assert resumed_record.seen == full_record.seen[16:]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_lr must be a finite number > 0, None or 'search'"):
        OneCycle(max_lr=-1.0)
    with pytest.raises(ValueError, match="warmup_fraction"):
        OneCycle(warmup_fraction=1.5)
    # the range test's settings too, when the callback is built, not after Lightning's set-up
    with pytest.raises(ValueError, match="rule must be one of"):
        OneCycle(rule="valey")
    with pytest.raises(ValueError, match="num_steps must be an integer"):
        OneCycle(num_steps=0)
    with pytest.raises(ValueError, match=r"start_lr must be < end_lr \(0.01\), got 1.0"):
        OneCycle(start_lr=1.0, end_lr=0.01)


class NoBatchIndex(DigitsModule):
    """Valid Lightning: training_step(self, batch); and it skips every fourth batch (None)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def training_step(self, batch):
        self.calls += 1
        if self.calls % 4 == 0:
            return None  # Lightning skips the optimizer step for this batch
        inputs, targets = batch
        return torch.nn.functional.cross_entropy(self.net(inputs), targets)


def test_a_training_step_without_batch_idx_that_skips_batches_is_swept_and_trained(tmp_path):
    # a user's checks: "training_step() takes 2 positional arguments but 3 were given", and a
    # None step failed the range test ("needs training_step to return the loss")
    callback = OneCycle(**SWEEP)
    module = NoBatchIndex()
    trainer([callback], tmp_path, max_epochs=1).fit(module, digits_loader())
    assert callback.result is not None and callback.result.max_lr is not None
    assert module.calls > 16 + SWEEP["num_steps"]  # the sweep's steps, then the epoch's batches


def test_resuming_with_more_epochs_or_another_max_lr_says_what_the_saved_cycle_does(tmp_path):
    # a user's check: max_epochs 3 -> 6 on resume trained epochs 4-6 at ~0 LR, said only
    # mid-run ("stepped 124 times; holding the final values"); OneCycle(max_lr=...) was ignored
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    first = OneCycle(**SWEEP)
    trainer([first, checkpoints], tmp_path, enable_checkpointing=True).fit(
        DigitsModule(), digits_loader()
    )
    middle = sorted((tmp_path / "ckpt").glob("epoch=0*.ckpt"))[0]
    with pytest.warns(UserWarning) as caught:
        trainer([OneCycle(max_lr=0.5)], tmp_path, max_epochs=4).fit(
            DigitsModule(), digits_loader(), ckpt_path=middle
        )
    said = [str(w.message) for w in caught if "OneCycle:" in str(w.message)]
    assert any("the checkpoint's cycle has 32 steps, this Trainer runs 64" in m for m in said)
    assert any(m.startswith("OneCycle: max_lr=0.5 is not used") for m in said)
    # said at the resume, not again mid-run (a user's check: "the plan has 32 steps and the
    # scheduler was stepped 33 times" came at update 32, without the OneCycle: prefix)
    assert not [w for w in caught if "holding the final values" in str(w.message)]


def test_min_lr_and_final_lr_are_checked_when_the_callback_is_built():
    # a user's check: OneCycle(min_lr=-1) was accepted and failed only at fit, after Lightning's
    # set-up and a whole range test
    with pytest.raises(ValueError, match="min_lr must be > 0, got -1"):
        OneCycle(min_lr=-1)
    with pytest.raises(TypeError, match="final_lr must be a number, got 'x'"):
        OneCycle(final_lr="x")
    with pytest.raises(ValueError, match=r"final_lr must be <= min_lr \(0.001\), got 0.01"):
        OneCycle(min_lr=1e-3, final_lr=1e-2)
    with pytest.raises(ValueError, match=r"min_lr must be <= max_lr \(0.1\), got 1.0"):
        OneCycle(max_lr=0.1, min_lr=1.0)


class _CountingSteps(DigitsModule):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def training_step(self, batch, batch_idx):
        self.calls += 1
        return super().training_step(batch, batch_idx)


def test_an_endless_run_is_refused_before_the_range_test(tmp_path):
    module = _CountingSteps()
    with pytest.raises(RuntimeError, match="OneCycle needs a finite run"):
        trainer([OneCycle(**SWEEP)], tmp_path, max_epochs=-1).fit(module, digits_loader())
    assert module.calls == 0  # no sweep ran only to be thrown away


def test_a_min_lr_above_the_range_tests_max_lr_says_where_max_lr_came_from(tmp_path):
    # the sweep ends at 10: its suggestion (the minimum / 10) lies below 1, so min_lr=5 is above
    with pytest.raises(
        ValueError, match=r"OneCycle: the range test.s max_lr .*min_lr must be <= max_lr"
    ):
        trainer([OneCycle(min_lr=5.0, **SWEEP)], tmp_path, max_epochs=1).fit(
            DigitsModule(), digits_loader()
        )


class _TwoLoaders(DigitsModule):
    """train_dataloader returns a dict of loaders: a batch is {"a": (x, y), "b": (x, y)}."""

    def training_step(self, batch, batch_idx):
        losses = [
            torch.nn.functional.cross_entropy(self.net(inputs), targets)
            for inputs, targets in batch.values()
        ]
        return sum(losses) / len(losses)


def _two_loaders():
    return {"a": digits_loader(seed=1), "b": digits_loader(batch_size=64, seed=2, size=256)}


def test_the_range_test_combines_several_train_loaders_as_lightning_does(tmp_path):
    # a user's check: with {"a": loader, "b": loader} the sweep iterated the dict's keys and
    # training_step got the string "a" as its batch ('str' object has no attribute 'values')
    loaders, callback, before, after = _two_loaders(), OneCycle(**SWEEP), _State(), _State()
    trainer([before, callback, after], tmp_path, max_epochs=1).fit(_TwoLoaders(), loaders)
    assert callback.result is not None and callback.result.max_lr is not None
    assert len(callback.result.lrs) > 16  # past the 16 batches of an epoch: it cycled
    _same_state(before.state, after.state)
    # both loaders' own generators end the epoch where they end without the range test
    reference = _two_loaders()
    trainer([], tmp_path, max_epochs=1).fit(_TwoLoaders(), reference)
    for name in ("a", "b"):
        assert torch.equal(
            loaders[name].generator.get_state(), reference[name].generator.get_state()
        )


def test_a_short_warmup_fraction_is_accepted_and_trained(tmp_path):
    # a user's check: OneCycle(warmup_fraction=0.1) raised "total_steps=10 is too few steps for
    # the phases" when built: the settings were checked on a 10-step cycle the user never asked for
    assert OneCycle(warmup_fraction=0.1).warmup_fraction == 0.1
    callback, record = OneCycle(max_lr=0.1, warmup_fraction=0.05), RecordOptimizerSteps()
    trainer([callback, record], tmp_path).fit(DigitsModule(), digits_loader())
    assert callback.plan == one_cycle(32, 0.1, warmup_fraction=0.05)
    assert record.seen == _planned(callback.plan, 32)


class _ClippedNorms(DigitsModule):
    """SGD whose step post-hook records the total gradient norm each update applied (a
    pre-hook runs before Lightning's closure computes them)."""

    def __init__(self):
        super().__init__(dropout=0.0)
        self.norms = []

    def configure_optimizers(self):
        optimizer = super().configure_optimizers()

        def record(opt, args, kwargs):
            grads = [p.grad for p in self.parameters() if p.grad is not None]
            norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
            self.norms.append(float(torch.linalg.vector_norm(norms)))

        optimizer.register_step_post_hook(record)
        return optimizer


def test_the_range_test_clips_gradients_as_the_trainer_does(tmp_path):
    # a user's check: Trainer(gradient_clip_val=0.05) clipped every update of fit but none of the
    # sweep's; on clipped SGD the suggestion was 0.29 where the clipped sweep gives 1.7
    module, callback = _ClippedNorms(), OneCycle(**{**SWEEP, "end_lr": 1000.0})
    trainer([callback], tmp_path, max_epochs=1, gradient_clip_val=0.05).fit(module, digits_loader())
    sweep_steps = len(callback.result.lrs)
    assert len(module.norms) == sweep_steps + 16  # the sweep's updates, then the epoch's
    assert max(module.norms) == pytest.approx(0.05, rel=1e-4)  # all clipped, sweep included
    assert callback.result.settings["gradient_clip_val"] == 0.05


class _TwoGroups(DigitsModule):
    def __init__(self, scales=None):
        super().__init__()
        self.scales = scales

    def configure_optimizers(self):
        body = {"params": self.net[:-1].parameters(), "lr": 1e-4}
        head = {"params": self.net[-1].parameters(), "lr": 1e-2}
        if self.scales is not None:
            body["lr_scale"], head["lr_scale"] = self.scales
        return torch.optim.SGD([body, head], lr=0.1, momentum=0.9)


def test_param_groups_with_lrs_of_their_own_are_warned_about_and_lr_scale_keeps_them(tmp_path):
    # a user's check: per-group LRs (1e-4 body, 1e-2 head) from configure_optimizers were all
    # set to the plan's LR without a word
    with pytest.warns(UserWarning, match=r"OneCycle: the optimizer's param groups have LRs of "):
        trainer([OneCycle(max_lr=0.1)], tmp_path, max_epochs=1).fit(_TwoGroups(), digits_loader())
    seen = []

    class _Groups(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append([group["lr"] for group in trainer.optimizers[0].param_groups])

    callback = OneCycle(max_lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer([callback, _Groups()], tmp_path, max_epochs=1).fit(
            _TwoGroups(scales=(0.01, 1.0)), digits_loader()
        )
    assert not [w for w in caught if "OneCycle:" in str(w.message)]  # lr_scale says how
    plan = callback.plan
    assert seen == [pytest.approx([plan.lr(k) * 0.01, plan.lr(k)]) for k in range(16)]


class _Adagrad(_CountingSteps):
    def configure_optimizers(self):
        return torch.optim.Adagrad(self.parameters(), lr=0.01)


def test_an_optimizer_without_momentum_is_named_before_the_range_test(tmp_path):
    # a user's check: Adagrad ran the whole sweep, then "build the plan with momentum=None"
    # (no plan of theirs: OneCycle builds it)
    module = _Adagrad()
    with pytest.raises(
        ValueError, match=r"Adagrad has no momentum .* OneCycle\(\.\.\., momentum=None\)"
    ):
        trainer([OneCycle(**SWEEP)], tmp_path, max_epochs=1).fit(module, digits_loader())
    assert module.calls == 0
    callback = OneCycle(momentum=None, **SWEEP)
    trainer([callback], tmp_path, max_epochs=1).fit(_Adagrad(), digits_loader())
    assert callback.plan.momentum is None


def test_fast_dev_run_skips_the_callback_as_lightnings_lr_finder_does(tmp_path):
    # a user's check: Trainer(fast_dev_run=True), Lightning's smoke test, failed with
    # "total_steps=2 is too few steps for the phases"
    module, callback = _CountingSteps(), OneCycle(**SWEEP)
    with pytest.warns(UserWarning, match="OneCycle: skipped under fast_dev_run"):
        trainer([callback], tmp_path, fast_dev_run=True).fit(module, digits_loader())
    assert module.calls == 1 and callback.plan is None  # one step, no sweep, no cycle


def test_a_run_too_short_for_the_phases_is_named_in_the_trainers_terms(tmp_path):
    # max_steps=3 with warmup_fraction=0.3: the warm-up would end before step 0
    module = _CountingSteps()
    with pytest.raises(
        ValueError,
        match=r"OneCycle: this Trainer makes 3 optimizer update\(s\), too few for a cycle with "
        r"warmup_fraction=0.3: the warm-up needs warmup_fraction > 1/3 = 0.333",
    ):
        trainer([OneCycle(**SWEEP)], tmp_path, max_steps=3).fit(module, digits_loader())
    assert module.calls == 0  # said before the range test
    callback = OneCycle(max_lr=0.1, warmup_fraction=0.5)
    trainer([callback], tmp_path, max_steps=3).fit(DigitsModule(), digits_loader())
    assert callback.plan == one_cycle(3, 0.1, warmup_fraction=0.5)


@pytest.mark.parametrize(
    ("settings", "said"),
    [({"max_lr": "search"},
      "OneCycle: max_lr='search' is not used: a resumed run continues the checkpoint's cycle "
      "(no search: max_lr 0.05)"),
     ({"max_lr": 0.05, "momentum": (0.9, 0.8)},
      "OneCycle: momentum=(0.9, 0.8) is not used: a resumed run continues the checkpoint's cycle "
      "(momentum (0.95, 0.85))"),
     ({"max_lr": 0.05, "momentum": None, "warmup_fraction": 0.5, "min_lr": 1e-4},
      "OneCycle: momentum=None, warmup_fraction=0.5, min_lr=0.0001 are not used: a resumed run "
      "continues the checkpoint's cycle (momentum (0.95, 0.85), warmup_fraction 0.3, min_lr None)"),
     ({"max_lr": 0.5, "final_lr": 1e-6},
      "OneCycle: max_lr=0.5, final_lr=1e-06 are not used: a resumed run continues the "
      "checkpoint's cycle (max_lr 0.05, final_lr None)")],
    ids=["search", "momentum", "three", "max_lr-final_lr"],
)  # fmt: skip
def test_resuming_with_other_cycle_settings_names_each_and_the_one_used(tmp_path, settings, said):
    # a user's check: momentum=(0.9, 0.8), warmup_fraction, min_lr, momentum=None and even
    # "search" on a fixed cycle's checkpoint were dropped without a word (only max_lr was said)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    trainer([OneCycle(max_lr=0.05), checkpoints], tmp_path, enable_checkpointing=True).fit(
        DigitsModule(), digits_loader()
    )
    middle = sorted((tmp_path / "ckpt").glob("epoch=0*.ckpt"))[0]
    callback = OneCycle(**settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer([callback], tmp_path).fit(DigitsModule(), digits_loader(), ckpt_path=middle)
    messages = [str(w.message) for w in caught if str(w.message).startswith("OneCycle:")]
    assert [m for m in messages if "not used" in m] == [
        said + "; to train with them, start a new cycle on the checkpoint's weights (load them "
        "into the module, fit without ckpt_path)"
    ]
    assert callback.plan.max_lr == 0.05 and callback.plan.total_steps == 32  # the saved cycle


def test_resuming_a_search_with_a_max_lr_says_the_search_goes_on(tmp_path):
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    trainer([OneCycle("search"), checkpoints], tmp_path, enable_checkpointing=True).fit(
        DigitsModule(), digits_loader()
    )
    middle = sorted((tmp_path / "ckpt").glob("epoch=0*.ckpt"))[0]
    with pytest.warns(UserWarning, match=(
        r"OneCycle: max_lr=0.05 is not used: a resumed run continues the checkpoint's cycle "
        r"\(max_lr='search', (its edge not found yet|max_lr [0-9.e-]+)\)"
    )):  # fmt: skip
        trainer([OneCycle(max_lr=0.05)], tmp_path).fit(
            DigitsModule(), digits_loader(), ckpt_path=middle
        )
    # other search constants: the checkpoint's go on, and are named (a reviewer's check)
    from superconverge.training import EdgeSettings

    with pytest.warns(UserWarning, match=(
        r"OneCycle: search=EdgeSettings\(\.\.\.\) is not used: .*its search's constants: divisor "
        r"10\.0 \(the checkpoint's 3\.0\)"
    )):  # fmt: skip
        trainer([OneCycle("search", search=EdgeSettings(divisor=10.0))], tmp_path).fit(
            DigitsModule(), digits_loader(), ckpt_path=middle
        )


def test_a_resume_with_another_accumulation_says_where_the_run_really_stops(tmp_path):
    # a user's check: accumulation 1 -> 2 at update 32 of 64 was told "this Trainer runs 32
    # ... the run stops at step 32"; it ran to 48 (the updates already made count at 1)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    trainer([OneCycle(max_lr=0.05), checkpoints], tmp_path, enable_checkpointing=True).fit(
        DigitsModule(), digits_loader()
    )
    middle = sorted((tmp_path / "ckpt").glob("epoch=0*.ckpt"))[0]  # update 16 of 32
    callback = OneCycle(max_lr=0.05)
    resumed = trainer([callback], tmp_path, accumulate_grad_batches=2)
    with pytest.warns(UserWarning) as caught:
        resumed.fit(DigitsModule(), digits_loader(), ckpt_path=middle)
    said = [str(w.message) for w in caught if str(w.message).startswith("OneCycle:")]
    assert resumed.global_step == 16 + 8  # the second epoch at 2 batches an update
    assert said == [
        "OneCycle: the checkpoint's cycle has 32 steps, this Trainer runs 24 (max_epochs, "
        "max_steps or accumulate_grad_batches changed): a resumed run continues the saved cycle, "
        f"so the run stops at step 24, mid-cycle at LR {callback.plan.lr(23):.3g}, before the "
        "cycle anneals; or resume with the Trainer settings the cycle was made for"
    ]
