"""Results in a console or a notebook: `RangeTestResult`, `History` and `TunePlan` print in a few
hundred characters (not thousands of raw numbers) and render as small HTML tables."""

import html
import math
import re

import pytest
import torch
from torch import nn

from superconverge._display import clip, html_table, number
from superconverge.data import ArrayData
from superconverge.finder.result import build_result
from superconverge.training import History, Trainer
from superconverge.tuning.plan import TunePlan

LRS = [10 ** (-6 + 7 * i / 99) for i in range(100)]
LIMIT = 300  # characters: a repr reads at a glance


def _range_test():
    lowest = LRS[70]
    losses = [1.0 + abs(math.log10(lr) - math.log10(lowest)) for lr in LRS]
    curve = {"lrs": LRS, "losses": losses, "smoothed": losses, "stop_reason": "end of the sweep"}
    return build_result([curve], diverge_factor=4.0, rule="minimum", policy="one_cycle",
                        settings={})  # fmt: skip


def _history():
    """A real fit: 3 epochs of 8 steps on tiny tensors, with validation."""
    generator = torch.Generator().manual_seed(0)
    data = ArrayData(torch.randn(64, 4, generator=generator), torch.arange(64) % 3)
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 3), nn.functional.cross_entropy, data, data, batch_size=8,
                      progress=False)  # fmt: skip
    return trainer.fit_one_cycle(3, 0.05)


def _plan():
    evidence = [
        {"step": "batch_size", "decision": 64, "why": "given", "seconds": 0.5, "details": {}},
        {"step": "lr_bounds", "decision": {"max_lr": 0.0702, "min_lr": 0.00702},
         "why": "short runs <lowest validation loss>", "seconds": 3.0, "details": {}},
    ]  # fmt: skip
    results = {
        "status": "completed",
        "final_val_loss": 0.0977,
        "final_val_metrics": {"accuracy": 0.958},
        "test": {"loss": 0.0923, "accuracy": 0.9694},
        "verdict": {"kind": "good", "explanation": "levelled off", "next_step": "keep these"},
    }
    return TunePlan(epochs=3, batch_size=64, max_lr=0.0702, min_lr=0.00702, weight_decay=1e-4,
                    momentum=(0.95, 0.85), evidence=evidence, results=results)  # fmt: skip


def test_helpers_round_and_clip():
    assert number(0.070223) == "0.0702" and number((0.95, 0.85)) == "(0.95, 0.85)"
    assert number(None) == "none" and number(math.nan) == "nan"
    assert clip("x" * 10, 5) == "xxxx…" and clip("a\n  b", 10) == "a b"


def test_a_long_table_keeps_its_first_and_last_rows():
    rows = [(i, float(i)) for i in range(100)]
    text = html_table("t", rows, ("i", "value"), max_rows=9)
    cells = re.findall(r"<tr><td>(\d+)</td>", text)
    assert cells == ["0", "1", "2", "95", "96", "97", "98", "99"]  # with the … row: 9 rows
    assert text.count("…") == 1


def test_range_test_result_repr_is_short_and_says_the_bounds():
    result = _range_test()
    text = repr(result)
    assert len(text) <= LIMIT, text
    assert text.startswith(f"RangeTestResult(max_lr={result.max_lr:.3g}, ")
    assert f"min_lr={result.min_lr:.3g}" in text and "rule='minimum'" in text
    assert "; 100 points from lr 1e-06 to 10; stopped: 'end of the sweep')" in text
    assert len(str(result.to_dict())) > 4000  # what a notebook used to show


def test_range_test_result_html_is_a_table_of_the_bounds_and_rules():
    result = _range_test()
    page = result._repr_html_()
    assert page.startswith("<div><b>RangeTestResult</b>") and "<table>" in page
    assert f"<td>max_lr</td><td>{result.max_lr:.3g}</td>" in page
    for name in result.suggestions:
        assert f"<td>rule {name}</td>" in page
    assert len(page) < 3000


def test_history_repr_of_a_real_fit_is_short():
    history = _history()
    text = repr(history)
    assert len(text) <= LIMIT, text
    last = history.epochs[-1]
    assert text.startswith("History(status='completed', 3 epochs, 24 steps; last epoch: ")
    assert f"train_loss {last['train_loss']:.3g}" in text
    assert f"val_loss {last['val_loss']:.3g}" in text
    best = min(history.epoch_values("val_loss"))
    assert f"best val_loss {best:.3g} at epoch " in text
    assert text.endswith("; peak lr 0.05)")
    # a searched cycle: its max_lr, not the rise's highest LR (a user read the edge as the peak)
    history.lr_search = {"max_lr": 0.0179, "step": 20}
    history.step_lrs[3] = [0.125]
    assert repr(history).endswith("; max_lr 0.0179 (searched))")


def test_a_diverged_history_keeps_its_message_short():
    history = History(status="diverged", message="max_lr 1e+05 diverged at step 45 " + "x" * 500)
    text = repr(history)
    assert len(text) <= LIMIT and "message='max_lr 1e+05 diverged at step 45" in text
    assert repr(History()) == "History(status='running', 0 epochs, 0 steps)"


def test_history_html_has_the_epoch_table():
    history = _history()
    page = history._repr_html_()
    assert "<th>epoch</th><th>train_loss</th>" in page
    assert page.count("<tr><td>") >= 3 + 3  # the summary rows and one row per epoch
    escaped = History(status="diverged", message="loss <nan>")._repr_html_()
    assert "loss &lt;nan&gt;" in escaped and "<nan>" not in escaped


def test_tune_plan_repr_is_short_and_says_what_was_chosen():
    text = repr(_plan())
    assert len(text) <= LIMIT, text
    assert text == (
        "TunePlan(batch_size=64, max_lr=0.0702, min_lr=0.00702, weight_decay=0.0001, "
        "momentum=(0.95, 0.85), epochs=3, policy='smith', optimizer='sgd', val_loss 0.0977, "
        "test accuracy 0.969, verdict='good')"
    )


def test_tune_plan_html_shows_the_choices_the_evidence_and_the_results():
    page = _plan()._repr_html_()
    assert "<td>max_lr</td><td>0.0702</td>" in page
    assert "<td>lr_bounds</td><td>max_lr 0.0702, min_lr 0.00702</td>" in page
    assert html.escape("<lowest validation loss>") in page  # escaped, not markup
    assert "<td>test accuracy</td><td>0.969</td>" in page and "<td>verdict</td>" in page


def test_a_verdict_and_a_superconvergence_sign_print_without_their_curves():
    # both printed whole lists of losses / LRs (a notebook cell of numbers)
    from superconverge.diagnostics.verdicts import diagnose_losses
    from superconverge.finder.result import Superconvergence

    verdict = diagnose_losses([2.0 - i / 100 for i in range(100)], [2.0 - i / 99 for i in range(100)])
    assert len(verdict.evidence["train_losses"]) == 100
    assert len(repr(verdict)) <= LIMIT and "evidence" not in repr(verdict)
    assert verdict.to_dict()["evidence"] == verdict.evidence  # kept, only not shown
    sign = Superconvergence(True, "high accuracy up to lr 3", tuple(LRS), (0.9,) * 100)
    assert repr(sign) == "Superconvergence(likely=True, explanation='high accuracy up to lr 3')"


@pytest.mark.parametrize("make", [_range_test, _history, _plan])
def test_a_repr_is_one_line(make):
    assert "\n" not in repr(make())
