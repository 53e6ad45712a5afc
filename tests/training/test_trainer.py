import math

import pytest
import torch
from torch import nn

import superconverge as sc
from superconverge.data import ArrayData, load
from superconverge.models import build
from superconverge.training import Callback, History, Trainer

LOSS = nn.functional.cross_entropy


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _trainer(digits, model=None, **kwargs):
    torch.manual_seed(0)
    kwargs.setdefault("batch_size", 32)
    kwargs.setdefault("progress", False)
    return Trainer(model or build("mlp"), LOSS, digits.train, digits.val, **kwargs)


def test_fit_one_cycle_follows_the_plan_step_by_step(digits):
    trainer = _trainer(digits)
    history = trainer.fit_one_cycle(2, 0.05)
    steps = 2 * 41
    assert history.status == "completed" and history.steps == steps
    plan = sc.smith_one_cycle(steps, 0.05)
    assert [lrs[0] for lrs in history.step_lrs] == pytest.approx([plan.lr(k) for k in range(steps)])
    assert [m[0] for m in history.step_momenta] == pytest.approx(
        [plan.momentum(k) for k in range(steps)]
    )
    assert len(history.epochs) == 2 and history.epochs[-1]["val_accuracy"] > 0.8
    assert set(history.epochs[0]) >= {
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "seconds",
        "samples_per_s",
    }


@pytest.mark.parametrize(
    ("policy", "builder"), [("torch", sc.one_cycle), ("fastai", sc.fastai_one_cycle)]
)
def test_other_policies(digits, policy, builder):
    history = _trainer(digits).fit_one_cycle(1, 0.05, policy=policy)
    plan = builder(41, 0.05)
    assert [lrs[0] for lrs in history.step_lrs] == pytest.approx([plan.lr(k) for k in range(41)])


def test_max_lr_none_runs_the_range_test_and_says_so(digits):
    trainer = _trainer(digits)
    history = trainer.fit_one_cycle(1)
    assert trainer.last_range_test is not None
    assert history.notes and "from the range test" in history.notes[0]
    assert history.plan["max_lr"] == pytest.approx(trainer.last_range_test.max_lr)


def test_max_lr_none_uses_the_users_own_range_test_while_the_weights_are_unchanged(digits):
    # a user's check: trainer.lr_find(num_steps=...) then fit_one_cycle(1) ran a second range
    # test at the default settings, whose max_lr could differ from the one the user had looked at
    trainer = _trainer(digits)
    own = trainer.lr_find(num_steps=40, end_lr=3.0)
    history = trainer.fit_one_cycle(1)
    assert trainer.last_range_test is own  # no second range test
    assert history.plan["max_lr"] == pytest.approx(own.max_lr)
    assert "from the range test run before (lr_find)" in history.notes[0]
    # the weights trained since: the next max_lr=None tests them again
    trainer.fit_one_cycle(1)
    assert trainer.last_range_test is not own and len(trainer.last_range_test.lrs) == 100
    # a frozen group changes what trains: tested again too
    tested = trainer.lr_find(num_steps=40)
    trainer.freeze_to(1)
    trainer.fit_one_cycle(1)
    assert trainer.last_range_test is not tested


class _Flat(nn.Module):
    """A model no LR trains: its loss never moves, so a range test finds no max_lr."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        return self.weight * 0 + x.flatten(1)[:, :10] * 0


def test_max_lr_none_without_a_suggestion_says_how_to_run_the_range_test_again(digits):
    # the message said "(...; raise end_lr); pass max_lr": fit_one_cycle takes no end_lr
    trainer = _trainer(digits, model=_Flat())
    with pytest.raises(ValueError, match=r"max_lr: the range test found none \(.*\); pass "
                       r"max_lr, or run trainer\.lr_find\(\.\.\.\) with the settings"):  # fmt: skip
        trainer.fit_one_cycle(1)
    assert trainer.last_range_test.max_lr is None


def _linear_trainer(batch_size):
    """A linear model on 40 random rows of 3 classes: for messages, not training."""
    data = ArrayData(torch.randn(40, 4), torch.arange(40) % 3)
    return Trainer(nn.Linear(4, 3), LOSS, data, batch_size=batch_size, progress=False)


def test_a_fit_too_short_for_its_1cycle_names_epochs_and_updates_before_the_range_test():
    # the message was "total_steps must be >= 4, got 1", a name the caller never gave, and
    # with max_lr=None it came after a range test's worth of training
    trainer = _linear_trainer(batch_size=64)
    message = (r"epochs=1 at 1 optimizer updates per epoch give 1 updates, too few for the smith "
               r"1cycle \(total_steps must be >= 4, got 1\); raise epochs, or lower batch_size")  # fmt: skip
    with pytest.raises(ValueError, match=message):
        trainer.fit_one_cycle(1)
    assert trainer.last_range_test is None  # refused before the range test
    with pytest.raises(ValueError, match=r"epochs=2 .* give 2 updates, too few for the torch 1cy"):
        trainer.fit_one_cycle(2, 0.1, policy="torch")
    with pytest.raises(ValueError, match="warmup_fraction applies to the torch and fastai"):
        trainer.fit_one_cycle(9, 0.1, warmup_fraction=0.2)  # other arguments keep their message


def test_discriminative_lrs_over_param_groups(digits):
    trainer = _trainer(digits)
    assert len(trainer.optimizer.param_groups) == 1  # one group is cheaper per step...
    trainer.fit_one_cycle(1, 0.05)
    momentum_buffers = {
        id(p): s["momentum_buffer"].clone() for p, s in trainer.optimizer.state.items()
    }
    history = trainer.fit_one_cycle(1, (1e-3, 1e-1), policy="torch")
    assert len(trainer.optimizer.param_groups) == 3  # ...until discriminative LRs need the split
    assert set(momentum_buffers) <= {id(p) for p in trainer.optimizer.state}  # state carried over
    first = history.step_lrs[10]
    assert first[1] / first[0] == pytest.approx(10.0) and first[2] / first[1] == pytest.approx(10.0)
    assert max(lrs[2] for lrs in history.step_lrs) == pytest.approx(
        0.1, rel=1e-2
    )  # torch: peak at 11.3


def test_freeze_keeps_batchnorm_trainable_and_frozen_weights_fixed():
    torch.manual_seed(0)
    data = ArrayData(torch.randn(96, 3, 32, 32), torch.randint(0, 10, (96,)))
    model = build("cifar-resnet", width=0.125, blocks=1)
    trainer = Trainer(model, LOSS, data, batch_size=32, progress=False)
    trainer.freeze()
    conv = model[0][0].conv.weight
    bn = model[0][1].weight
    assert not conv.requires_grad and bn.requires_grad and model[-1].weight.requires_grad
    conv_before, bn_before = conv.detach().clone(), bn.detach().clone()
    trainer.fit_one_cycle(2, 0.05)  # 3 steps per epoch; the paper's policy needs at least 4
    assert torch.equal(conv, conv_before) and not torch.equal(bn, bn_before)
    trainer.unfreeze()
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=r"n must be in \[-"):
        trainer.freeze_to(99)


def test_fine_tune_trains_the_head_first_then_everything(digits):
    trainer = _trainer(digits)
    body = trainer.module[1].weight
    seen = []

    class Watch(Callback):
        def on_epoch_end(self, trainer, record):
            seen.append(body.detach().clone())

    trainer.callbacks.append(Watch())
    before = body.detach().clone()
    history = trainer.fine_tune(1, base_lr=0.05, freeze_epochs=1)
    assert torch.equal(seen[0], before)  # frozen during the first phase
    assert not torch.equal(seen[1], before)
    assert history.status == "completed" and history.notes[0].startswith("after 1 frozen epoch")
    lrs = history.step_lrs[20]
    assert len(lrs) == 3 and lrs[2] / lrs[0] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"base_lr": 0}, "base_lr must be > 0, got 0"),
        ({"freeze_epochs": 0}, "freeze_epochs must be >= 1, got 0"),
        ({"lr_mult": 0}, "lr_mult must be > 0, got 0"),  # was a bare ZeroDivisionError
        ({"warmup_fraction": 3}, r"warmup_fraction must be in \(0, 1\), got 3"),
    ],
)
def test_a_refused_fine_tune_names_its_argument_and_leaves_the_body_trainable(
    digits, arguments, message
):
    # base_lr=0 was "max_lr must be ...", freeze_epochs=0 "epochs must be >= 1", and each refusal
    # left the body frozen: a later fit trained only the head, without a word
    trainer = _trainer(digits)
    with pytest.raises(ValueError, match=message):
        trainer.fine_tune(1, **arguments)
    assert all(p.requires_grad for p in trainer.model.parameters())


def test_fine_tune_follows_fastais_curves():
    # fastai's fine_tune: fit_one_cycle(freeze_epochs, pct_start=0.99), then the unfrozen phase
    # fit_one_cycle(epochs, slice(base_lr / 2 / lr_mult, base_lr / 2), pct_start=0.3, div=5);
    # both phases ran with fit_one_cycle's 25% warm-up from a 25th of the peak
    data = ArrayData(torch.randn(64, 4), torch.arange(64) % 3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    trainer = Trainer(model, LOSS, data, batch_size=8, progress=False)
    first_lrs = []

    class Watch(Callback):
        def on_fit_end(self, trainer, history):
            first_lrs.extend(lrs[-1] for lrs in history.step_lrs)

    trainer.callbacks.append(Watch())
    second = trainer.fine_tune(2, base_lr=0.02, freeze_epochs=1)
    frozen = sc.fastai_one_cycle(8, 0.02, warmup_fraction=0.99)
    assert first_lrs[:8] == pytest.approx([frozen.lr(k) for k in range(8)])
    head = sc.fastai_one_cycle(16, 0.01, min_lr=0.01 / 5, warmup_fraction=0.3)
    assert [lrs[-1] for lrs in second.step_lrs] == pytest.approx([head.lr(k) for k in range(16)])
    assert second.step_lrs[0][0] == pytest.approx(0.01 / 100 / 5)  # the body: its peak / 5


def test_gradient_accumulation_counts_optimizer_steps(digits):
    trainer = _trainer(digits, accumulation_steps=4)
    history = trainer.fit_one_cycle(1, 0.05)
    assert trainer.steps_per_epoch == math.ceil(41 / 4) == history.steps


def test_accumulated_half_batches_equal_full_batches():
    torch.manual_seed(0)
    data = ArrayData(torch.randn(64, 5), torch.randint(0, 3, (64,)))
    results = []
    for batch, accumulation in ((32, 1), (16, 2)):
        torch.manual_seed(1)
        model = nn.Linear(5, 3)
        trainer = Trainer(
            model,
            LOSS,
            data,
            batch_size=batch,
            accumulation_steps=accumulation,
            progress=False,
            seed=0,
            precision="32",
        )  # fmt: skip (a GPU: not bf16)
        trainer.train_loader.shuffle = False
        trainer.fit(2, sc.constant(0.1, momentum=0.9))
        results.append(model.weight.detach().clone())
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_gradient_clipping_limits_the_update(digits):
    trainer = _trainer(digits, max_grad_norm=1e-8)
    before = [p.detach().clone() for p in trainer.module.parameters()]
    trainer.fit(1, sc.constant(0.1, momentum=0.0))
    change = max(
        (p - b).abs().max().item() for p, b in zip(trainer.module.parameters(), before, strict=True)
    )
    assert change < 1e-6


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(digits, precision):
    history = _trainer(digits, precision=precision).fit_one_cycle(1, 0.05)
    assert history.status == "completed" and math.isfinite(history.epochs[0]["train_loss"])


def test_divergence_stops_restores_the_last_good_weights_and_keeps_the_checkpoint(digits, tmp_path):
    trainer = _trainer(digits, out_dir=tmp_path)
    plan = sc.piecewise_constant([0.05, 1e5], [41])  # fine for epoch 1, explodes in epoch 2
    with pytest.warns(
        RuntimeWarning, match=r"max_lr 1e\+05 diverged at step 4\d.*try a lower max_lr"
    ) as caught:
        history = trainer.fit(3, plan)
    # shown at the user's call, not inside the library (the entry points' NumPy conversion
    # adds a frame: a fixed stacklevel named superconverge/_checks.py)
    assert [w.filename for w in caught if w.category is RuntimeWarning] == [__file__]
    assert history.status == "diverged" and "last good weights were restored" in history.message
    assert len(history.epochs) == 1
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["fit"]["epochs_done"] == 1
    for name, tensor in trainer.module.state_dict().items():
        assert torch.equal(tensor, saved["model"][name]), name  # the epoch-1 weights are back
    assert trainer.evaluate()["accuracy"] > 0.5


def test_backoff_restores_the_epoch_and_continues_at_half_the_lr_and_resumes_there(
    digits, tmp_path
):
    trainer = _trainer(digits, out_dir=tmp_path)
    # 0.05 for epoch 1, then 12.8: the MLP explodes at once; each back-off halves it (6.4, 3.2,
    # ...) until it trains again, and the run completes
    plan = sc.piecewise_constant([0.05, 12.8], [41])
    history = trainer.fit(3, plan, backoff=10)
    restored = [note for note in history.notes if "restored the weights" in note]
    assert history.status == "completed" and 1 <= len(restored) <= 10
    assert all("epoch 2" in note or "epoch 3" in note for note in restored)
    assert history.discarded_steps > 0 and history.steps == 3 * 41  # the undone steps dropped
    scale = 0.5 ** len(restored)
    assert trainer.optimizer.param_groups[0]["lr_scale"] == pytest.approx(scale)
    assert history.step_lrs[-1][0] == pytest.approx(12.8 * scale)  # the plan's LR, lowered
    assert History.from_json(history.to_json()).discarded_steps == history.discarded_steps
    # the lowered LR is part of the checkpoint: a resumed trainer continues at it
    again = _trainer(digits)
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    loop = again.load_checkpoint(tmp_path / "checkpoint.pt", payload)
    assert again.optimizer.param_groups[0]["lr_scale"] == pytest.approx(scale)
    # its divergence rule measures against the fit's first loss, not the next batch's
    assert loop.smoother.first == history.step_losses[0] and loop.smoother.floor_fraction > 0


def test_backoff_answers_a_stall_that_the_divergence_check_misses(digits):
    # 0.5 in epoch 2 knocks the MLP back to chance without a loss 4x its minimum: a plain fit
    # completes at chance; with a back-off the epoch is redone at 0.25 and the run recovers
    plan = sc.piecewise_constant([0.05, 0.5, 0.05], [41, 82])
    plain = _trainer(digits)
    history = plain.fit(3, plan)
    assert history.status == "completed" and not history.notes
    assert history.epochs[1]["train_loss"] > 1.5 * history.epochs[0]["train_loss"]
    assert plain.evaluate()["accuracy"] < 0.3
    guarded = _trainer(digits)
    history = guarded.fit(3, plan, backoff=1)
    assert history.status == "completed" and len(history.notes) == 1
    note = history.notes[0]
    assert (
        note.startswith("epoch 2: max_lr") and "stalled" in note and "restored the weights" in note
    )
    assert guarded.optimizer.param_groups[0]["lr_scale"] == pytest.approx(0.5)
    assert history.discarded_steps == 41 and history.steps == 3 * 41
    losses = [epoch["train_loss"] for epoch in history.epochs]
    assert losses[1] < 1.5 * losses[0] and losses[2] < losses[0]
    assert guarded.evaluate()["accuracy"] > 0.85


def test_backoff_zero_stops_at_the_first_divergence(digits):
    trainer = _trainer(digits)
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = trainer.fit(2, sc.piecewise_constant([0.05, 1e5], [41]))
    assert history.status == "diverged" and history.discarded_steps == 0
    with pytest.raises(ValueError, match="backoff must be >= 0, got -1"):
        trainer.fit(1, sc.constant(0.05), backoff=-1)


def test_a_divergence_records_the_lrs_of_the_steps_whose_losses_it_records(digits):
    # losses are read every sync_every (8) steps: the divergent step 10 is found at step 15,
    # and the LRs of steps 11..15 must not stay in the history (its peak LR was never used)
    trainer = _trainer(digits)
    with pytest.warns(RuntimeWarning, match="diverged at step 10"):
        # (at 50 the loss blows up 1000x inside the first 10 steps: found at step 5)
        history = trainer.fit_one_cycle(3, 20.0)
    assert history.status == "diverged" and history.steps == 11
    assert len(history.step_lrs) == len(history.step_momenta) == 11
    lr = history.step_lrs[-1][0]
    assert f"(lr {lr:.3g})" in history.message and f"peak lr {lr:.3g}" in repr(history)
    assert history.discarded_steps == 0


def test_a_backoff_counts_every_step_it_undid_once(digits):
    # two back-offs, each undoing the 16 steps made before the divergence at step 10 was read
    trainer = _trainer(digits)
    with pytest.warns(RuntimeWarning, match="diverged at step 10"):
        history = trainer.fit_one_cycle(3, 20.0, backoff=2)
    assert len(history.notes) == 2 and history.discarded_steps == 2 * 16
    assert len(history.step_lrs) == len(history.step_momenta) == history.steps == 11


def test_checkpoints_best_and_csv(digits, tmp_path):
    trainer = _trainer(digits, out_dir=tmp_path)
    history = trainer.fit_one_cycle(3, 0.05)
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "best.pt").exists()
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["best_val_loss"] == pytest.approx(min(history.epoch_values("val_loss")))
    csv_text = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_text[0].startswith("epoch,train_loss") and len(csv_text) == 4
    assert History.from_json((tmp_path / "history.json").read_text()).epochs == history.epochs


def test_an_existing_checkpoint_is_not_overwritten(digits, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"an older run")
    trainer = _trainer(digits, out_dir=tmp_path)
    with pytest.raises(FileExistsError, match=r"already holds checkpoint\.pt"):
        trainer.fit_one_cycle(1, 0.05)
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"an older run"


def test_resume_rejects_a_checkpoint_from_another_model(digits, tmp_path):
    _trainer(digits, out_dir=tmp_path).fit_one_cycle(1, 0.05)
    other = build("mlp", hidden=(32,))
    with pytest.raises(ValueError, match="written for another model"):
        Trainer.resume(tmp_path / "checkpoint.pt", other, LOSS, digits.train)


def test_history_round_trips_and_plots(digits, tmp_path):
    history = _trainer(digits).fit_one_cycle(2, 0.05)
    again = History.from_json(history.to_json())
    assert again.step_lrs == history.step_lrs and again.epochs == history.epochs
    assert history.to_csv(per="step").splitlines()[0] == "step,loss,lr_0,momentum_0"
    text = history.to_csv()
    rows = text.splitlines()
    assert "\r" not in text and text.endswith("\n")  # plain lines: awk, cut and the shell read them
    assert rows[0].startswith("epoch,") and [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
    figure = history.plot()
    # 82 steps: the smoothed curve ends near the last steps' loss (a memory of 50 steps left it
    # at 3x that, reading as under-fitting in a user's check)
    curve = figure.axes[0].get_lines()[0].get_ydata()
    recent = sum(history.step_losses[-8:]) / 8
    assert len(history.step_losses) == 82 and curve[-1] < 1.5 * recent
    assert [ax.get_ylabel() for ax in figure.axes] == [
        "loss (log scale)",
        "val accuracy",
        "learning rate",
        "momentum",
    ]  # one epoch axis
    assert figure.axes[0].get_yscale() == "log"  # a late rise of the validation loss shows
    figure.savefig(tmp_path / "h.png")


def test_evaluate_and_predict(digits):
    trainer = _trainer(digits)
    trainer.fit_one_cycle(2, 0.05)
    metrics = trainer.evaluate(digits.test)
    assert set(metrics) == {"loss", "accuracy"} and metrics["accuracy"] > 0.8
    assert trainer.predict(digits.test).shape == (len(digits.test), 10)
    # a user's check: fit, lr_find and tune named mis-shaped batches, evaluate gave torch's
    # bare "Expected target size ..."
    wrong = ArrayData(digits.test.inputs[:64], torch.randn(64, 32))
    with pytest.raises(ValueError, match=r"outputs of shape \(64, 10\) and targets of shape \(64, 32\)"):
        trainer.evaluate(wrong)


def test_predict_takes_inputs_without_targets(digits):
    # a user's check: predicting on new, unlabeled inputs raised "data must yield (inputs,
    # targets) pairs" for a tensor, a 1-tuple, a TensorDataset of one tensor and its DataLoader
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    trainer = _trainer(digits)
    inputs = digits.test.inputs
    expected = trainer.predict(digits.test)

    class Images(Dataset):
        def __len__(self):
            return len(inputs)

        def __getitem__(self, index):
            return inputs[index]

    for data in (inputs, (inputs,), TensorDataset(inputs), DataLoader(TensorDataset(inputs), 50),
                 Images(), DataLoader(Images(), batch_size=50)):  # fmt: skip
        assert torch.allclose(trainer.predict(data), expected, atol=1e-6), type(data)
    # a list of batches is read as batches
    assert torch.allclose(trainer.predict(list(inputs.split(50))), expected, atol=1e-6)


def test_samples_where_batches_are_read_are_named(digits):
    # a user's checks: predict on a list of 5 samples gave a flat tensor of 50 outputs, and
    # evaluate on a generator of (x, y) samples died in the metrics ("tuple index out of range")
    flat = ArrayData(digits.train.inputs.flatten(1), digits.train.targets)
    trainer = Trainer(nn.Linear(64, 10), LOSS, flat, batch_size=32, progress=False)
    inputs, targets = digits.test.inputs.flatten(1), digits.test.targets
    with pytest.raises(TypeError, match=r"data is a list of 5 tensors, read as batches, but the "
                       r"model's output for one of shape \(64,\) has shape \(10,\).*a list of "
                       r"samples\? stack the samples"):  # fmt: skip
        trainer.predict(list(inputs[:5]))
    with pytest.raises(TypeError, match=r"data yields samples \(\(inputs, target\) pairs with one "
                       r"number as the target\), where batches are read; stack"):  # fmt: skip
        trainer.evaluate((inputs[i], targets[i]) for i in range(10))
    # a model that cannot take one sample (it flattens from dimension 1): said the same way
    flattening = Trainer(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), LOSS, flat, batch_size=32,
                         progress=False)  # fmt: skip
    with pytest.raises(TypeError, match=r"data is a list of 3 tensors, read as batches, but the "
                       r"model cannot take one of shape \(64,\) \(IndexError: .*a list of "
                       r"samples\?"):  # fmt: skip
        flattening.predict(list(inputs[:3]))
    # a NumPy array: predict needs no targets, so it is not "(inputs, targets) pairs" it lacks
    with pytest.raises(TypeError, match=r"data is a NumPy array; pass a tensor"):
        trainer.predict(inputs.numpy())


def test_other_optimizers_and_plans(digits):
    adam = _trainer(digits, optimizer="adamw", weight_decay=1e-4)
    history = adam.fit_one_cycle(1, 3e-3)
    assert adam.optimizer.param_groups[0]["betas"][1] == 0.999  # beta2 untouched
    assert history.step_momenta[0][0] == pytest.approx(0.95)
    custom = _trainer(digits, optimizer=lambda groups: torch.optim.Adagrad(groups, lr=0.01))
    with pytest.raises(ValueError, match="momentum=None"):
        custom.fit_one_cycle(1, 0.05)
    assert custom.fit_one_cycle(1, 0.05, momentum=None).status == "completed"
    cyclic = _trainer(digits).fit_cyclic(2, 0.005, 0.05, step_size=10)
    assert cyclic.step_lrs[10][0] == pytest.approx(0.05)


class Wide(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :5]


@pytest.mark.parametrize(
    ("build_trainer", "call", "error", "message"),
    [
        (lambda d: Trainer(Wide(), LOSS, d.train), None, ValueError, "no trainable parameters"),
        (
            lambda d: Trainer(nn.Linear(64, 10), LOSS, d.train, progress=False),
            lambda t: t.fit_one_cycle(1, 0.1),
            ValueError,
            r"cannot take the training inputs of shape \(2, 1, 8, 8\)",
        ),
        (
            lambda d: Trainer(
                build("mlp", num_classes=5), nn.functional.mse_loss, d.train, progress=False
            ),
            lambda t: t.fit_one_cycle(1, 0.1),
            ValueError,
            r"model outputs of shape \(2, 5\) and targets of shape \(2,\)",
        ),
        (
            lambda d: Trainer(
                build("mlp", num_classes=1),
                nn.functional.mse_loss,
                ArrayData(d.train.inputs, d.train.targets.float()),
                progress=False,
            ),
            lambda t: t.fit_one_cycle(1, 0.1),
            ValueError,
            r"outputs of shape \(2, 1\) and targets of shape \(2,\).*size",
        ),
        (
            lambda d: _trainer(d),
            lambda t: t.fit_one_cycle(0, 0.1),
            ValueError,
            "epochs must be >= 1, got 0",
        ),
        (
            lambda d: Trainer(build("mlp"), LOSS, d.train, optimizer="lamb"),
            None,
            ValueError,
            "optimizer must be one of 'sgd', 'adam', 'adamw'",
        ),
        (
            lambda d: Trainer(build("mlp"), LOSS, d.train, weight_decay=-1.0),
            None,
            ValueError,
            "weight_decay must be >= 0, got -1.0",
        ),
        (
            lambda d: Trainer(build("mlp"), LOSS, ArrayData(torch.zeros(0, 64), torch.zeros(0))),
            None,
            ValueError,
            "train_data must not be empty, got 0 samples",
        ),
        (
            lambda d: _trainer(d),
            lambda t: t.fit_one_cycle(1, 0.1, policy="cosine"),
            ValueError,
            "policy must be one of 'smith', 'torch', 'fastai'",
        ),
        (
            lambda d: _trainer(d),
            lambda t: t.fit_one_cycle(1, -0.1),
            ValueError,
            "max_lr must be a finite number > 0",
        ),
    ],
)
def test_bad_input_fails_before_any_step(digits, build_trainer, call, error, message):
    if call is None:
        with pytest.raises(error, match=message):
            build_trainer(digits)
        return
    trainer = build_trainer(digits)
    before = [p.detach().clone() for p in trainer.module.parameters()]
    with pytest.raises(error, match=message):
        call(trainer)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.module.parameters(), strict=True))


def test_tensorboard_logger_writes_events(digits, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from superconverge.training import TensorBoardLogger

    trainer = _trainer(digits, callbacks=[TensorBoardLogger(tmp_path / "tb")])
    trainer.fit_one_cycle(2, 0.05)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_step", "train/lr", "epoch/val_loss", "epoch/val_accuracy"} <= tags
    assert len(events.Scalars("train/loss_step")) == 82


def test_bad_labels_and_nan_inputs_are_named_before_training(digits, tmp_path):
    from superconverge.data.checks import DataError

    labels = digits.train.targets.clone()
    labels[5] = 15  # issue 17: torch's "IndexError: Target 15 is out of bounds" mid-training
    bad_labels = ArrayData(digits.train.inputs, labels)
    trainer = Trainer(build("mlp"), nn.functional.cross_entropy, bad_labels, digits.val,
                      out_dir=tmp_path, progress=False)  # fmt: skip
    with pytest.raises(DataError, match="train_data sample 5 has label 15, but the model has 10"):
        trainer.fit_one_cycle(1, 0.1)
    inputs = digits.train.inputs.clone()
    inputs[9, 0, 1, 1] = float("nan")  # was blamed on the LR: "try a lower max_lr"
    trainer = Trainer(build("mlp"), nn.functional.cross_entropy, ArrayData(inputs, digits.train.targets),
                      digits.val, progress=False)  # fmt: skip
    with pytest.raises(DataError, match=r"sample 9 has nan in its inputs.*whatever the learning"):
        trainer.fit_one_cycle(1, 0.1)
    batches = [(digits.train.inputs[:8], torch.tensor([0, 1, 2, 3, 4, 5, 6, 12]))] * 4
    trainer = Trainer(build("mlp"), nn.functional.cross_entropy, batches, progress=False)
    with pytest.raises(DataError, match="train_data batch 0, row 7 has label 12"):
        trainer.fit_one_cycle(1, 0.1)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_loss_that_is_nan_before_any_update_is_not_blamed_on_the_lr(digits, tmp_path):
    # a user's check: it went through every LR halving, then "try a lower max_lr (e.g. 4.6e-08)"
    def loss_nan(outputs, targets):
        return nn.functional.cross_entropy(outputs, targets) * float("nan")

    trainer = Trainer(build("mlp"), loss_nan, digits.train, digits.val, out_dir=tmp_path,
                      progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"loss_fn gave nan on the first batch of train_data, "
                       "before any update: no learning rate causes that"):  # fmt: skip
        trainer.fit_one_cycle(1, 0.1)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_nan_past_a_datasets_first_batch_is_not_only_blamed_on_the_lr():
    # a user's check: a NaN target at sample 250 of a Dataset (its first batch only is checked)
    # was "max_lr 0.01 diverged at step 11: the loss became non-finite; try a lower max_lr"
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(256, 3, generator=generator), torch.randn(256, 1, generator=generator)
    targets[100, 0] = float("nan")  # in the 13th batch of the seeded order

    class Samples(torch.utils.data.Dataset):
        def __len__(self):
            return 256

        def __getitem__(self, index):
            return inputs[index], targets[index]

    trainer = Trainer(nn.Linear(3, 1), nn.functional.mse_loss, Samples(), batch_size=16,
                      progress=False)  # fmt: skip
    history = trainer.fit_one_cycle(1, 0.01)
    assert history.status == "diverged", history
    assert "at step 12 (lr 0.001): the loss became non-finite; try a lower max_lr" in history.message
    assert history.message.endswith(
        "one step before: a jump from there to NaN/inf is also what a NaN or "
        "inf in that batch's inputs or targets gives, at any LR (of data not in memory, only the "
        "first batch is checked)"
    )


def test_nan_in_in_memory_validation_data_is_named_for_any_task(tmp_path):
    # only classification's validation data was scanned: a regression fit "completed" with
    # val_loss nan, and KeepBest kept nothing
    from superconverge.data.checks import DataError

    generator = torch.Generator().manual_seed(0)
    train = ArrayData(torch.randn(64, 3, generator=generator), torch.randn(64, 1, generator=generator))
    targets = torch.randn(16, 1, generator=generator)
    targets[5, 0] = float("nan")
    val = ArrayData(torch.randn(16, 3, generator=generator), targets)
    trainer = Trainer(nn.Linear(3, 1), nn.functional.mse_loss, train, val, batch_size=8,
                      progress=False)  # fmt: skip
    with pytest.raises(DataError, match="val_data sample 5 has nan in its targets"):
        trainer.fit_one_cycle(1, 0.01)


@pytest.mark.parametrize("loss", [nn.functional.cross_entropy, nn.CrossEntropyLoss()])
def test_cross_entropy_over_one_output_is_named_before_training(loss):
    # a regression model given the default loss trained "fine" with a loss of 0 at every step
    from superconverge import lr_find

    generator = torch.Generator().manual_seed(0)
    data = ArrayData(
        torch.randn(64, 6, generator=generator), torch.randn(64, 1, generator=generator)
    )
    message = "loss_fn is cross-entropy, but the model has 1 output"
    with pytest.raises(ValueError, match=message):
        Trainer(nn.Linear(6, 1), loss, data, batch_size=8, progress=False).fit_one_cycle(1, 0.1)
    with pytest.raises(ValueError, match=message):
        lr_find(nn.Linear(6, 1), loss, data, batch_size=16)


def test_fine_tune_stopped_before_its_second_phase_resumes_into_it_from_numpy_settings(
    digits, tmp_path
):
    # the second phase's settings ride in the first phase's checkpoints, read back with
    # weights_only=True: numpy numbers (a user's np.float64 LR) must not make them unreadable
    import numpy as np

    from superconverge.training.checkpoint import load_checkpoint

    class StopInSecondPhase(Callback):
        def on_fit_start(self, trainer, history):
            if trainer.then is None and all(p.requires_grad for p in trainer.module.parameters()):
                raise KeyboardInterrupt  # the second fit starts: the first one is saved

    torch.manual_seed(0)
    trainer = _trainer(digits, out_dir=tmp_path, callbacks=[StopInSecondPhase()])
    with pytest.raises(KeyboardInterrupt):
        trainer.fine_tune(1, base_lr=np.float64(0.05), freeze_epochs=1,
                          momentum=(np.float64(0.95), 0.85))  # fmt: skip
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    second = saved["then"]["fine_tune"]
    assert second["max_lr"] == (0.025 / 100, 0.025) and second["options"]["momentum"] == (
        0.95,
        0.85,
    )
    # resumed on a trainer that does not own the folder's files (overwrite=False): phase 2 runs
    resumed = _trainer(digits, out_dir=tmp_path, overwrite=False)
    history = resumed.resume_from(tmp_path / "checkpoint.pt")
    assert history.status == "completed" and history.notes[0].startswith("after 1 frozen epoch")


def test_fit_with_a_number_for_a_plan_says_which_call_takes_a_number():
    # fastai's learn.fit(n, lr): the message was only "plan must be a superconverge Plan, got 0.001"
    trainer = _linear_trainer(batch_size=8)
    message = (r"plan must be a superconverge Plan, got 0\.001; for a constant LR: fit\(epochs, "
               r"superconverge\.constant\(0\.001\)\), for 1cycle: fit_one_cycle\(epochs, 0\.001\)")  # fmt: skip
    with pytest.raises(TypeError, match=message):
        trainer.fit(2, 1e-3)
    with pytest.raises(TypeError, match=r"got <function one_cycle .*; build one, e\.g\. super"):
        trainer.fit(2, sc.one_cycle)


def test_a_fit_gives_the_callers_torch_generator_back(digits, tmp_path):
    # a user's check: a fit seeded torch with trainer.seed and left it there, so two models
    # built after two fits (random restarts) started from the same weights
    trainer = _trainer(digits)  # (the helper seeds torch and builds the model)
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    trainer.fit_one_cycle(1, 0.05)
    assert torch.equal(torch.rand(3), expected)
    # a resume loads the checkpoint's generator for its fit, and gives the caller's back too
    _trainer(digits, out_dir=tmp_path).fit_one_cycle(1, 0.05)
    model = build("mlp")
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    Trainer.resume(tmp_path / "checkpoint.pt", model, LOSS, digits.train, out_dir=None,
                   progress=False)  # fmt: skip
    assert torch.equal(torch.rand(3), expected)


class _SearchRestoredStepZero(Callback):
    """What an auditor's 200-epoch in-run search did in epoch `at`: its edge restored the
    weights of `restored` (the untrained ones for step 0), recorded as the search records it."""

    def __init__(self, at, restored):
        self.at, self.restored = at, restored

    def before_epoch(self, fit):
        if fit.epoch == self.at and fit.history.lr_search is None:
            torch.manual_seed(1)
            for module in fit.trainer.module.modules():
                if isinstance(module, nn.Linear):
                    module.reset_parameters()
            step = len(fit.history.step_losses)
            fit.history.lr_search = {"step": step, "restored_step": self.restored(step)}


@pytest.mark.parametrize(
    ("restored", "stalls"),
    [(lambda step: 0, False),  # the weights of an epoch before the edge's: those epochs are gone
     (lambda step: step, True)],  # the edge's own epoch: the earlier epochs still count
)  # fmt: skip
def test_the_stall_guard_compares_with_the_epochs_the_search_kept(digits, restored, stalls):
    # an auditor's fit: the search restored step 0's weights after 9 epochs, and the guard,
    # comparing epoch 11 with those 9, called it a stall and quartered an already tiny LR
    trainer = _trainer(digits, callbacks=[_SearchRestoredStepZero(2, restored)])
    history = trainer.fit(4, sc.constant(0.05), backoff=1)
    assert any("stalled" in note for note in history.notes) == stalls, history.notes
    if not stalls:  # the restored weights trained on at the plan's LR
        assert history.epochs[2]["train_loss"] > 3 * history.epochs[1]["train_loss"]
        assert trainer.optimizer.param_groups[0].get("lr_scale", 1.0) == 1.0
