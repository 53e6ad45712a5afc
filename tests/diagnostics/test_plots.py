"""The schedule plot's labels say what a reader takes them for."""

from superconverge.diagnostics.plots import plot_plan
from superconverge.schedules import piecewise_constant
from superconverge.training.edge import EdgeSearch


def _labels(figure):
    return [text.get_text() for text in figure.axes[0].texts]


def test_a_searched_plan_labels_its_rises_edge_and_its_max_lr_apart():
    # a user's check: schedule.png labelled the rise's edge "peak 0.101" under a title of
    # max lr 0.00952907, the cycle's peak
    search = EdgeSearch(1000, warn_short=False)
    plan = search.descent_plan(200, 0.01)  # the rise's first 200 steps, then max_lr 0.01
    figure = plot_plan(plan)
    labels = _labels(figure)
    assert labels[0].startswith("start") and labels[-1].startswith("end")
    assert labels[1].startswith("rise's edge") and labels[2] == "max_lr 0.01"
    assert "max lr 0.01," in figure._suptitle.get_text()


def test_a_plan_that_starts_at_its_peak_has_one_label_there():
    labels = _labels(plot_plan(piecewise_constant([0.35, 0.035], [50], total_steps=100)))
    assert labels == ["start 0.35", "end 0.035"]
