"""`fit_one_cycle(max_lr="search")`: the cycle's rise as a range test that trains."""

import math
import warnings

import pytest
import torch
from torch import nn

from superconverge.data import ArrayData, load
from superconverge.models import build
from superconverge.pytorch.scheduler import HyperparamScheduler
from superconverge.pytorch.snapshot import training_state_nbytes
from superconverge.training import History, Trainer
from superconverge.training.checkpoint import load_checkpoint
from superconverge.training.edge import EdgeSearch, EdgeSettings, search_from_constants
from tests.training.test_checkpoint import KillAfterEpoch

LOSS = nn.functional.cross_entropy


class _Fit:
    """What `EdgeSearch.observe` reads of a `FitLoop`: the trainer's model and optimizer, the
    scheduler and the history."""

    def __init__(self, search: EdgeSearch) -> None:
        self.model = nn.Linear(2, 1)
        optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.trainer = type("T", (), {"module": self.model, "optimizer": optimizer,
                                      "scaler": None, "world_size": 1, "rank": 0})()  # fmt: skip
        self.scheduler = HyperparamScheduler(optimizer, search.rise_plan())
        self.history = History()

    def step_to(self, step: int) -> None:
        """The weights after step `step`: every weight equals the step (to see which came back)."""
        with torch.no_grad():
            for p in self.model.parameters():
                p.fill_(float(step))
        self.scheduler.step()


def _drive(search: EdgeSearch, losses: list[float]) -> _Fit:
    fit = _Fit(search)
    for step, loss in enumerate(losses):
        fit.step_to(step)
        if search.observe(fit, step, loss):  # type: ignore[arg-type]
            break
    return fit


def test_the_rise_is_exponential_and_ends_where_the_smoothed_loss_rises():
    search = EdgeSearch(1000)  # rise: 300 steps from 1e-4 to 10, 60 steps a decade
    plan = search.rise_plan()
    assert plan.lr(0) == pytest.approx(1e-4) and plan.lr(60) == pytest.approx(1e-3)
    assert plan.momentum is not None and plan.momentum(5) == pytest.approx(0.9)
    # falling until step 120 (lr 1e-2), then up at 3.0: the smoothed loss passes 1.1x its
    # lowest within a few steps
    losses = [2.0 - 0.01 * k for k in range(121)] + [3.0] * 60
    fit = _drive(search, losses)
    edge = search.edge
    assert edge is not None and not search.searching
    assert "rose to" in edge["why"] and 121 < edge["step"] < 126
    lowest_lr = edge["lowest_lr"]
    assert 1e-2 <= lowest_lr <= 1.2e-2  # the smoothed minimum lags the raw one by a few steps
    assert edge["max_lr"] == pytest.approx(lowest_lr / 3)  # an edge where the loss turned up
    assert edge["divisor"] == 3.0 and "(the lowest loss's LR / 3)" in search.note()
    # the weights came back from the last copy at an LR <= max_lr, taken at step `restored`
    restored = edge["restored_step"]
    assert search.lr_at(restored) <= edge["max_lr"] < search.lr_at(restored + search.copy_every)
    assert all(float(p.flatten()[0]) == restored for p in fit.model.parameters())
    assert edge["lost_steps"] == edge["step"] - restored
    # the descent: from max_lr on the next step to max_lr / 10, then the annihilation
    plan = fit.scheduler.plan
    done = edge["step"] + 1
    assert plan.total_steps == 1000 and plan.max_lr == pytest.approx(edge["max_lr"])
    assert [plan.lr(k) for k in range(done)] == pytest.approx([search.lr_at(k) for k in range(done)])
    assert plan.lr(done) == pytest.approx(edge["max_lr"], rel=2e-3)  # a step into the descent
    assert plan.lr(1000 - 1 - 137) == pytest.approx(edge["max_lr"] / 10, rel=2e-3)
    assert plan.lr(999) == pytest.approx(edge["max_lr"] / 1000)
    assert plan.momentum(done) == pytest.approx(0.85, rel=1e-3)
    assert plan.momentum(999) == pytest.approx(0.95)
    lr = fit.trainer.optimizer.param_groups[0]["lr"]  # the next step's, written at the edge
    assert lr == pytest.approx(edge["max_lr"], rel=2e-3)
    assert fit.history.lr_search == edge and fit.history.plan["policy"] == "one_cycle_search"
    assert fit.history.notes[-1].startswith("LR search: the smoothed loss rose")


def test_a_loss_that_stops_falling_ends_the_rise_after_its_patience():
    search = EdgeSearch(2000)  # rise: 600 steps; patience: half a decade = 60 steps
    # down from 2 to a noisy 1: the smoothed loss stops making new lows once it is within the noise
    noise = torch.randn(550, generator=torch.Generator().manual_seed(0)) * 0.05
    _drive(search, [2.0] * 50 + [1.0 + float(n) for n in noise])
    assert search.edge is not None and "no new low" in search.edge["why"]
    assert search.edge["step"] == search.lowest_step + 60 < 599
    # a plateau: its lowest point lies anywhere along the flat stretch, and max_lr is halved
    # again (divisor 3 x plateau_factor 2)
    assert search.edge["max_lr"] == pytest.approx(search.edge["lowest_lr"] / 6)
    assert search.edge["divisor"] == 6.0 and "(the lowest loss's LR / 6)" in search.note()
    # the copies reach back far enough for it: one at or below max_lr was restored
    assert search.lr_at(search.edge["restored_step"]) <= search.edge["max_lr"]


def test_a_loss_flat_from_the_start_is_not_an_edge():
    # at the rise's low start a loss may not move for decades (SGD from 1e-4): patience waits
    # for a fall of 5% first
    search = EdgeSearch(1000)
    _drive(search, [2.0] * 250)
    assert search.searching


def test_a_non_finite_loss_ends_the_rise_and_brings_back_finite_weights():
    search = EdgeSearch(1000)
    losses = [2.0 - 0.01 * k for k in range(80)] + [math.nan]
    fit = _drive(search, losses)
    assert search.edge is not None and "nan" in search.edge["why"] and search.edge["step"] == 80
    assert search.edge["restored_step"] is not None
    assert all(torch.isfinite(p).all() for p in fit.model.parameters())
    assert search.edge["max_lr"] == pytest.approx(search.edge["lowest_lr"] / 3)  # a divergence


def test_a_rise_that_never_turns_ends_at_its_end():
    search = EdgeSearch(100)  # rise: 30 steps
    _drive(search, [2.0 - 0.01 * k for k in range(40)])
    assert search.edge is not None and "reached its end" in search.edge["why"]
    assert search.edge["step"] == 29
    # no edge was seen: the lowest loss's LR is divided as a plateau's
    assert search.edge["max_lr"] == pytest.approx(search.edge["lowest_lr"] / 6)


def test_the_divisors_are_the_settings_and_a_record_without_the_plateau_factor_divides_once():
    noise = torch.randn(550, generator=torch.Generator().manual_seed(0)) * 0.05
    plateau = [2.0] * 50 + [1.0 + float(n) for n in noise]
    search = EdgeSearch(2000, settings=EdgeSettings(divisor=4.0, plateau_factor=2.5))
    _drive(search, plateau)
    assert search.edge is not None
    assert search.edge["max_lr"] == pytest.approx(search.edge["lowest_lr"] / 10)
    # a checkpoint or a plan of before the factor existed searched with one divisor: it resumes so
    state = search.state_dict()
    del state["settings"]["plateau_factor"]
    assert EdgeSearch.from_state(state).settings.plateau_factor == 1.0
    assert search_from_constants({"divisor": 4.0}).plateau_factor == 1.0
    assert search_from_constants({}).divisor == 3.0  # the rest take their defaults
    earlier = EdgeSearch(2000, settings=search_from_constants({"divisor": 4.0}))
    _drive(earlier, plateau)
    assert earlier.edge is not None
    assert earlier.edge["max_lr"] == pytest.approx(earlier.edge["lowest_lr"] / 4)
    # an edge recorded before it held its divisor: the note names the settings'
    del earlier.edge["divisor"]
    assert "(the lowest loss's LR / 4)" in earlier.note()
    with pytest.raises(ValueError, match=r"plateau_factor must be >= 1, got 0\.5"):
        EdgeSettings(plateau_factor=0.5)


def test_the_search_state_survives_a_checkpoint():
    search = EdgeSearch(1000, (0.9, 0.8), EdgeSettings(divisor=3.0))
    _drive(search, [2.0 - 0.01 * k for k in range(70)])
    state = search.state_dict()
    again = EdgeSearch.from_state(state)
    assert again.state_dict() == state and again.searching
    assert again.lowest_step == search.lowest_step == 69 and again.settings.divisor == 3.0
    assert again.momentum == (0.9, 0.8) and again.copy_every == search.copy_every
    # both go on to the same edge (the copies are not in the state: the resumed one restores
    # from those it takes after the resume)
    rest = [1.31 * 1.02**k for k in range(1, 60)]
    for step, loss in enumerate(rest, start=70):
        for s in (search, again):
            s.observe(_Fit(s), step, loss)  # type: ignore[arg-type]
    assert search.edge is not None and again.edge is not None
    assert again.edge["max_lr"] == search.edge["max_lr"] and again.edge["step"] == search.edge["step"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("start_lr", 0.0), ("end_lr", 1e-5), ("rise", 1.0), ("rise_fraction", 1.0),
     ("divisor", -1.0), ("copies", 0), ("copy_memory", 0.0), ("copy_memory", 1.5)],
)  # fmt: skip
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        EdgeSettings(**{field: value})


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _digits_trainer(digits, **kwargs):
    torch.manual_seed(0)
    return Trainer(build("mlp"), LOSS, digits.train, digits.val, batch_size=16,
                   optimizer="adamw", weight_decay=0.1, progress=False, seed=0, **kwargs)  # fmt: skip


def test_fit_one_cycle_searches_its_peak_on_digits(digits):
    trainer = _digits_trainer(digits)
    history = trainer.fit_one_cycle(6, "search")
    search = history.lr_search
    assert history.status == "completed" and search is not None
    steps = 6 * trainer.steps_per_epoch
    assert history.steps == steps  # the lost steps are steps of the run: its length is kept
    lrs = [row[0] for row in history.step_lrs]
    assert lrs[search["step"]] == pytest.approx(search["lr"])  # the rise's last step
    assert lrs[search["step"] + 1] == pytest.approx(search["max_lr"], rel=1e-2)
    assert max(lrs[search["step"] + 1 :]) <= search["max_lr"]
    assert 1e-3 < search["max_lr"] < 0.1  # AdamW on digits (0.008-0.06 across seeds and sizes)
    assert trainer.evaluate(digits.test)["accuracy"] > 0.95


def test_a_search_resumed_after_its_edge_ends_as_the_uninterrupted_run(digits, tmp_path):
    whole = _digits_trainer(digits)
    expected = whole.fit_one_cycle(4, "search")
    assert expected.lr_search is not None and expected.lr_search["step"] < whole.steps_per_epoch
    with pytest.raises(KeyboardInterrupt):
        _digits_trainer(digits, out_dir=tmp_path, callbacks=[KillAfterEpoch(2)]).fit_one_cycle(
            4, "search"
        )
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["edge"]["edge"] == expected.lr_search  # the search's state went with it
    assert saved["plan"]["max_lr"] == pytest.approx(expected.lr_search["max_lr"])
    torch.manual_seed(0)
    history = Trainer.resume(
        tmp_path, build("mlp"), LOSS, digits.train, digits.val, batch_size=16,
        optimizer="adamw", weight_decay=0.1, progress=False, seed=0,
    )  # fmt: skip
    assert history.status == "completed" and history.lr_search == expected.lr_search
    assert history.step_losses == expected.step_losses
    assert history.step_lrs == expected.step_lrs


def test_a_search_resumed_before_its_edge_goes_on_searching(tmp_path):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 4, generator=generator)
    data = ArrayData(inputs, inputs[:, :3].argmax(1))  # learnable: the loss falls, then turns

    def trainer(**kwargs):
        torch.manual_seed(0)
        return Trainer(nn.Linear(4, 3), LOSS, data, data, batch_size=8, progress=False,
                       out_dir=tmp_path, **kwargs)  # fmt: skip

    # 20 epochs of 8 steps: the rise spans 48 steps, the first 6 epochs
    with pytest.raises(KeyboardInterrupt):
        trainer(callbacks=[KillAfterEpoch(1)]).fit_one_cycle(20, "search")
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["edge"]["edge"] is None and saved["edge"]["count"] == 8
    assert saved["plan"]["policy"] == "one_cycle_search" and saved["plan"]["max_lr"] is None
    torch.manual_seed(0)
    history = Trainer.resume(tmp_path, nn.Linear(4, 3), LOSS, data, data, batch_size=8,
                             progress=False)  # fmt: skip
    assert history.status == "completed" and history.lr_search is not None
    assert history.steps == 160


@pytest.mark.parametrize(("killed_after", "fits"), [(5, None), (3, 4), (5, 4)])
def test_a_search_resumed_between_its_copy_and_its_edge_restores_that_copy(
    tmp_path, monkeypatch, killed_after, fits
):
    # a user's check: a tune interrupted before the edge and resumed restored the weights of a
    # later step (162 for 150) and ended with other weights: the copies were not in the
    # checkpoint, so the resumed search restored one taken after the resume. With `fits`
    # copies fitting the memory they are taken further apart, and a resume must keep that
    # spacing (a reviewer's check: step 43's weights for step 35's)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 4, generator=generator)
    data = ArrayData(inputs, inputs[:, :3].argmax(1))
    if fits is not None:
        nbytes = 2 * 15 * 4  # Linear(4, 3)'s 15 weights and their momentum, float32
        memory = int(4 * (fits + 0.5) * nbytes)
        monkeypatch.setattr("superconverge.training.edge.machine_memory", lambda: memory)

    def trainer(**kwargs):
        torch.manual_seed(0)
        return Trainer(nn.Linear(4, 3), LOSS, data, data, batch_size=8, progress=False, **kwargs)

    whole = trainer()
    expected = whole.fit_one_cycle(20, "search")
    assert expected.lr_search is not None
    if fits is None:
        assert expected.lr_search["restored_step"] == 39
    else:
        assert any("copies of the weights, one each" in note for note in expected.notes)
    # killed after `killed_after` epochs of 8 steps, before the edge (step 47)
    with pytest.raises(KeyboardInterrupt):
        trainer(out_dir=tmp_path, callbacks=[KillAfterEpoch(killed_after)]).fit_one_cycle(
            20, "search"
        )
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["edge"]["edge"] is None and saved["edge_copies"]
    if fits is None:  # the copy to restore is saved, not the older ones it makes useless
        assert saved["edge_copies"][0]["step"] <= 39
        assert len(saved["edge_copies"]) < 15
    assert "edge_copies" not in load_checkpoint(tmp_path / "best.pt")  # the epoch's weights only
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    history = Trainer.resume(tmp_path, model, LOSS, data, data, batch_size=8, progress=False)
    assert history.lr_search == expected.lr_search
    assert history.step_losses == expected.step_losses
    pairs = zip(model.parameters(), whole.model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_lr": "serch"}, r"max_lr must be .*'search'.*got 'serch'"),
     ({"max_lr": "search", "policy": "torch"}, r"policy must be 'smith', got 'torch'"),
     ({"max_lr": "search", "min_lr": 1e-3}, r"leave min_lr=0.001 unset"),
     ({"max_lr": "search", "momentum": (0.95, 1.5)}, r"momentum"),
     ({"max_lr": 0.1, "search": EdgeSettings()}, r"search sets the constants of max_lr='search'"),
     ({"max_lr": "search", "search": {"divisor": 3}}, r"search must be an EdgeSettings.*dict")],
)  # fmt: skip
def test_bad_search_arguments_are_named_before_any_step(kwargs, message):
    generator = torch.Generator().manual_seed(0)
    data = ArrayData(torch.randn(64, 4, generator=generator), torch.arange(64) % 3)
    trainer = Trainer(nn.Linear(4, 3), LOSS, data, batch_size=8, progress=False)
    with pytest.raises((ValueError, TypeError), match=message):
        trainer.fit_one_cycle(2, **kwargs)
    assert trainer.history is None or trainer.history.steps == 0


def test_a_negative_loss_that_keeps_falling_is_no_edge():
    # a loss below 0 (a Gaussian NLL) reads "1.1x its lowest" as 1.1 * -2 = -2.2: the same
    # comparison as the fit's own divergence rule, whatever the sign
    search = EdgeSearch(1000)
    _drive(search, [-1.0 - 0.01 * k for k in range(200)])
    assert search.searching


class NaNAt:
    """Cross-entropy, except NaN at the given training calls (counted from 0)."""

    def __init__(self, *calls):
        self.calls, self.count = set(calls), 0

    def __call__(self, outputs, targets):
        loss = LOSS(outputs, targets)
        if torch.is_grad_enabled():
            self.count += 1
            if self.count - 1 in self.calls:
                return loss * math.nan
        return loss


def observed_losses(monkeypatch):
    """The (step, loss) pairs the search reads, as they are read (the front ends' tests)."""
    seen, observe = [], EdgeSearch.observe

    def spy(self, fit, step, loss):
        seen.append((step, loss))
        return observe(self, fit, step, loss)

    monkeypatch.setattr(EdgeSearch, "observe", spy)
    return seen


def _learnable(n=256):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(n, 4, generator=generator)
    return ArrayData(inputs, inputs[:, :3].argmax(1))


def test_a_non_finite_loss_at_the_edge_is_not_the_epochs_loss_nor_a_stall():
    data = _learnable()
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 3), NaNAt(60), data, data, batch_size=8, progress=False)
    history = trainer.fit_one_cycle(20, "search", backoff=2)  # 32 steps an epoch; rise 192
    assert history.lr_search is not None and "nan" in history.lr_search["why"]
    assert history.lr_search["step"] == 60
    assert history.status == "completed" and not history.notes[1:]  # no back-off, no stall
    assert all(math.isfinite(e["train_loss"]) for e in history.epochs)
    from superconverge.diagnostics.verdicts import diagnose

    assert diagnose(history).kind != "diverged"


def test_a_back_off_after_the_edge_restarts_from_the_edge_not_the_rise():
    data = _learnable()
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 3), NaNAt(20, 24), data, data, batch_size=8, progress=False)
    history = trainer.fit_one_cycle(6, "search", backoff=2)  # rise: 58 steps; edge at step 20
    edge = history.lr_search
    assert edge is not None and edge["step"] == 20
    assert any("restored the weights of the epoch's start" in n for n in history.notes)
    assert history.status == "completed"
    # the epoch ran again from the edge at half the LR: never the rise's LRs past max_lr again
    after = [row[0] for row in history.step_lrs[edge["step"] + 1 :]]
    assert max(after) <= edge["max_lr"] * 0.5 * 1.001
    assert history.steps == 6 * 32


@pytest.mark.parametrize(("edge", "shown_in_epoch_2"), [(60, 29), (55, 32)])
def test_the_progress_bar_counts_the_steps_of_the_edges_epoch(monkeypatch, edge, shown_in_epoch_2):
    from superconverge.training.progress import FitProgress

    shown: dict[int, int] = {}

    def advance(self, batches, step, loss, lr):
        shown[self.epoch] = shown.get(self.epoch, 0) + batches

    monkeypatch.setattr(FitProgress, "advance", advance)
    data = _learnable()
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 3), NaNAt(edge), data, data, batch_size=8, progress="lines",
                      progress_interval=1e9, sync_every=8)  # fmt: skip
    history = trainer.fit_one_cycle(20, "search")  # 32 steps an epoch
    assert history.lr_search is not None and history.lr_search["step"] == edge
    # an edge at step 60 is the 29th step of epoch 2: all 29 shown, then 3 left for the epoch's
    # end as in any epoch whose steps are not a multiple of sync_every; at step 55 (the 24th,
    # on a sync_every boundary) all 24, and the 8 after it: all 32
    assert shown[2] == shown_in_epoch_2
    assert all(shown[epoch] == 32 for epoch in shown if epoch != 2)


class TripledFrom:
    """Cross-entropy, tripled from the given training call on."""

    def __init__(self, call):
        self.call, self.count = call, 0

    def __call__(self, outputs, targets):
        loss = LOSS(outputs, targets)
        if torch.is_grad_enabled():
            self.count += 1
            if self.count > self.call:
                return loss * 3
        return loss


def test_a_rise_still_searching_is_not_judged_a_stall():
    data = _learnable(16)
    torch.manual_seed(0)
    # 2 steps an epoch, 40 epochs: a rise of 24 steps whose smoothed loss settles after 5; the
    # loss triples from the third step on, so epoch 2 ends, still searching, at 3x epoch 1's
    trainer = Trainer(nn.Linear(4, 3), TripledFrom(2), data, data, batch_size=8, progress=False)
    history = trainer.fit_one_cycle(40, "search", backoff=2)
    edge = history.lr_search
    assert edge is not None and edge["step"] >= 4  # found after epoch 2
    assert history.epochs[1]["train_loss"] > 2.5 * history.epochs[0]["train_loss"]
    # the search judged the rise; a stall is read only after its edge's epoch
    assert not any(note.startswith("epoch 2:") for note in history.notes), history.notes


def test_copies_that_would_not_fit_the_memory_are_fewer_and_further_apart():
    search = EdgeSearch(1000)  # 60 steps a decade: a copy each 6 steps, 15 kept (1.5 decades)
    assert (search.copy_every, search.copies_kept) == (6, 15)
    fit = _Fit(search)
    search._size_copies(fit, nbytes=100, memory=10**6)  # type: ignore[arg-type]
    assert (search.copy_every, search.copies_kept) == (6, 15) and not fit.history.notes
    search._size_copies(fit, nbytes=100, memory=1600)  # a quarter of it: 4 copies
    assert search.copies_kept == 4
    # the oldest of the 4 lies the whole span back
    assert search.copy_every * (search.copies_kept - 1) >= search.span_steps
    assert "4 copies of the weights" in fit.history.notes[-1]


@pytest.mark.parametrize(
    ("nbytes", "memory", "ranks", "fits"),
    [(100, None, 1, 14), (100, 10**6, 1, 14), (100, 1600, 1, 4), (100, 1600, 2, 2),
     (100, 1600, 4, 0), (100, 1000, 1, 2), (100, 799, 1, 0), (0, 10, 1, 14)],
)  # fmt: skip
def test_the_copies_that_fit_share_the_machine_between_its_ranks(nbytes, memory, ranks, fits):
    from superconverge.training.edge import copies_that_fit

    assert copies_that_fit(nbytes, memory, 0.25, 14, ranks) == fits


def test_the_ranks_on_a_machine_are_torchruns_local_world_size(monkeypatch):
    from superconverge.training.edge import local_ranks

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert local_ranks(1) == 1 and local_ranks(8) == 8  # not said: all of them, the cautious guess
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert local_ranks(8) == 4


@pytest.mark.parametrize("fits", [2, 3, 5, 7])
def test_fewer_copies_never_restore_weights_from_above_max_lr(monkeypatch, fits):
    # the loss falls until step `until`, then rises gently: the edge comes by patience or by
    # the rise, at every phase of the copies' spacing
    for until in range(70, 230, 7):
        search = EdgeSearch(1000)
        fit = _Fit(search)
        nbytes = training_state_nbytes(fit.model, fit.trainer.optimizer)
        memory = int(4 * (fits + 0.5) * nbytes)
        monkeypatch.setattr("superconverge.training.edge.machine_memory", lambda m=memory: m)
        low = 2.0 - 0.01 * until
        losses = [2.0 - 0.01 * i for i in range(until)] + [low * 1.002**j for j in range(1, 400)]
        for step, loss in enumerate(losses):
            fit.step_to(step)
            if search.observe(fit, step, loss):  # type: ignore[arg-type]
                break
        edge = search.edge
        assert search.copies_kept == fits and edge is not None
        assert edge["restored_step"] is not None
        assert search.lr_at(edge["restored_step"]) <= edge["max_lr"] * (1 + 1e-12), (until, edge)


def test_a_search_whose_copy_does_not_fit_descends_from_the_edge(monkeypatch):
    monkeypatch.setattr("superconverge.training.edge.machine_memory", lambda: 10)
    search = EdgeSearch(1000)
    losses = [2.0 - 0.01 * k for k in range(70)] + [1.31 * 1.02**k for k in range(1, 60)]
    fit = _drive(search, losses)
    assert search.edge is not None and search.edge["restored_step"] is None
    assert "no copies of the weights" in fit.history.notes[0]


@pytest.mark.parametrize(("backoff", "status"), [(0, "diverged"), (2, "completed")])
def test_a_non_finite_edge_with_no_copy_never_keeps_its_weights(monkeypatch, backoff, status):
    # no copy fits, and a NaN loss ends the rise: its update is in the weights; the epoch's
    # start stays the last good weights (before: the NaN weights became them)
    monkeypatch.setattr("superconverge.training.edge.machine_memory", lambda: 10)
    data = _learnable()
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 3), NaNAt(40), data, data, batch_size=8, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the divergence's own warning (backoff 0)
        history = trainer.fit_one_cycle(6, "search", backoff=backoff)
    assert history.lr_search is not None and history.lr_search["restored_step"] is None
    assert history.status == status
    assert all(torch.isfinite(p).all() for p in trainer.module.parameters())


def test_a_search_after_a_discriminative_fit_trains_every_group_at_the_plans_lr():
    data = _learnable()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    trainer = Trainer(model, LOSS, data, data, batch_size=8, progress=False)
    trainer.fit_one_cycle(1, max_lr=(1e-3, 1e-1))  # scales 0.01 and 1 on the two groups
    history = trainer.fit_one_cycle(4, "search")
    assert history.step_lrs[0] == pytest.approx([1e-4] * len(trainer.optimizer.param_groups))
    edge = history.lr_search
    assert edge is not None
    after = history.step_lrs[edge["step"] + 1]
    assert after == pytest.approx([after[0]] * len(after)) and after[0] <= edge["max_lr"]


def test_fewer_copies_on_a_small_machine_still_restore_at_or_below_max_lr(digits, monkeypatch):
    trainer = _digits_trainer(digits)
    kept: list[int] = []
    take = EdgeSearch._take_copy

    def spy(self, fit, step, lr):
        take(self, fit, step, lr)
        kept.append(len(self._copies))

    monkeypatch.setattr(EdgeSearch, "_take_copy", spy)
    # the AdamW state doubles the weights' bytes: 3 copies fit in a quarter of this memory
    memory = 4 * 3.5 * 3 * training_state_nbytes(trainer.module, trainer.optimizer)
    monkeypatch.setattr("superconverge.training.edge.machine_memory", lambda: int(memory))
    history = trainer.fit_one_cycle(6, "search", search=EdgeSettings(copy_memory=0.25))
    edge = history.lr_search
    assert edge is not None and edge["restored_step"] is not None
    assert max(kept) == 3 and any("3 copies of the weights" in note for note in history.notes)
    assert history.step_lrs[edge["restored_step"]][0] <= edge["max_lr"]
    assert history.status == "completed"


def test_the_edge_is_told_as_a_range_tests_pick_is(capsys):
    data = _learnable()
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 3), NaNAt(60), data, data, batch_size=8, progress=False)
    history = trainer.fit_one_cycle(20, "search")
    assert history.lr_search is not None
    assert f"fit_one_cycle: {history.notes[-1]}" in capsys.readouterr().err


def test_a_rise_of_few_updates_a_decade_is_warned_about_once_when_the_search_starts():
    # a user's check: a 12-update run took its max_lr from a rise of 3 losses, unsaid
    with pytest.warns(UserWarning, match=r"run of 12 optimizer updates: .* 0\.8 updates a decade"):
        search = EdgeSearch(12)
    with pytest.warns(UserWarning, match=r"at least 334 updates"):
        EdgeSearch(330)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EdgeSearch(334)
        EdgeSearch.from_state(search.state_dict())  # a resume does not say it again
