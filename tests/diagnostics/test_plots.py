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


def test_a_run_stopped_inside_an_epoch_is_drawn_at_its_steps_not_stretched():
    # an auditor's check: a run that diverged at its second step of 81 was drawn reaching half
    # an epoch (its steps divided by the steps it made, for want of a finished epoch)
    from superconverge.diagnostics.plots import plot_history
    from superconverge.training.history import History

    history = History(step_losses=[2.3, 2.2], step_lrs=[[0.1], [0.2]], step_momenta=[[0.9], [0.9]],
                      status="diverged", steps_per_epoch=81)  # fmt: skip
    loss_axes = plot_history(history).axes[0]
    assert max(max(line.get_xdata()) for line in loss_axes.lines) == 1 / 81
