"""`History`: history.json round trips, files of earlier versions load, broken ones are named."""

import json
import math
import re

import pytest

from superconverge.training.history import History


def _history() -> History:
    return History(
        step_losses=[2.0, math.nan, math.inf],
        step_lrs=[[0.1], [0.2], [0.3]],
        step_momenta=[[0.95], [0.9], [None]],
        epochs=[{"epoch": 1.0, "train_loss": 1.5, "val_loss": -math.inf, "val_accuracy": 0.5}],
        status="completed",
        notes=["a note"],
        discarded_steps=2,
        steps_per_epoch=3,
    )


def test_a_history_with_non_finite_numbers_round_trips():
    text = _history().to_json()
    assert '"nan"' in text and '"-inf"' in text  # standard JSON
    again = History.from_json(text)
    assert math.isnan(again.step_losses[1]) and again.step_losses[2] == math.inf
    assert again.epochs[0]["val_loss"] == -math.inf and again.to_json() == text
    assert again.steps_per_epoch == 3


def test_a_history_of_an_earlier_version_loads():
    # no message, plan, notes or discarded_steps; after a divergence the LRs of the steps made
    # before its loss was read (they were never recorded losses): dropped on reading
    old = {"status": "diverged", "epochs": [], "step_losses": [2.0, 9.0],
           "step_lrs": [[0.1], [0.2], [0.4]], "step_momenta": [[0.9], [0.8], [0.7]]}  # fmt: skip
    history = History.from_dict(old)
    assert history.step_lrs == [[0.1], [0.2]] and history.step_momenta == [[0.9], [0.8]]
    assert history.message == "" and history.notes == [] and history.discarded_steps == 0
    assert history.steps_per_epoch is None  # not recorded before 2026-12-04


def _broken(**change) -> dict:
    data = _history().to_dict()
    data["epochs"][0] |= change.pop("epoch", {})
    data |= change
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_broken(epoch={"val_loss": "x"}), "field epochs[0]['val_loss'] must be float, got 'x'"),
        (_broken(step_losses=[2.0, "x", 1.0]), "field step_losses[1] must be float, got 'x'"),
        (_broken(step_lrs="oops"), "field step_lrs must be list[list[float]], got 'oops'"),
        (_broken(step_momenta=[[0.9], [True], [None]]), "field step_momenta[1][0] must be"),
        (_broken(epochs={"1": {}}), "field epochs must be list[dict[str, float]], got {'1': {}}"),
        (_broken(status="done"), "field status must be one of ['running', 'completed',"),
        (_broken(discarded_steps=1.5), "field discarded_steps must be int, got 1.5"),
        (_broken(discarded_steps=-1), "field discarded_steps must be >= 0, got -1"),
        (_broken(step_lrs=[[0.1]], step_momenta=[[0.9]]), "got 1 and 1 entries for 3 steps"),
        (_broken(step_lrs=[[0.1]] * 4), "got 4 and 3 entries for 3 steps"),
        (_broken(notes="x"), "field notes must be list[str], got 'x'"),
        (_broken(loss=[]), "unknown history fields: ['loss']"),
    ],
)
def test_a_history_of_the_wrong_shape_is_named_field_by_field(data, message):
    # a user's check: a val_loss of "x" raised "TypeError: must be real number, not str"
    with pytest.raises(ValueError, match=re.escape(message)):
        History.from_json(json.dumps(data))


@pytest.mark.parametrize("field", ["status", "epochs", "step_losses", "step_lrs", "step_momenta"])
def test_a_history_missing_its_records_says_so(field):
    # without epochs it loaded as a run of 0 epochs
    data = _history().to_dict()
    del data[field]
    with pytest.raises(ValueError, match=f"^not a history: {field} missing$"):
        History.from_dict(data)
