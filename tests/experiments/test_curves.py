import math

import torch

from superconverge import schedules
from superconverge.data import load
from superconverge.experiments.curves import TestCurve, first_reaching
from superconverge.models import build
from superconverge.training import Trainer


def test_first_reaching_returns_the_first_point_at_or_above_the_target():
    points = [(10, 1.0, 0.5), (20, 2.0, math.nan), (30, 3.0, 0.9), (40, 4.0, 0.95)]
    assert first_reaching(points, 0.9) == (30, 3.0)
    assert first_reaching(points, 0.5) == (10, 1.0)
    assert first_reaching(points, 0.99) is None


def test_curve_points_count_steps_and_training_time_on_digits():
    splits = load("digits")
    torch.manual_seed(0)
    per_epoch = TestCurve(splits.test)
    every_five = TestCurve(splits.test, every=5)
    trainer = Trainer(build("mlp", in_features=64), torch.nn.functional.cross_entropy,
                      splits.train, batch_size=128, callbacks=[per_epoch, every_five],
                      progress=False)  # fmt: skip
    trainer.fit(3, schedules.one_cycle(3 * 11, 0.1))
    assert [p[0] for p in per_epoch.points] == [11, 22, 33]  # 1,293 images / 128 = 11 steps
    assert [p[0] for p in every_five.points] == [5, 10, 15, 20, 25, 30]
    seconds = [p[1] for p in per_epoch.points]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert per_epoch.points[-1][2] > 0.8  # it learned: real accuracy, not a placeholder


def test_a_second_fit_draws_its_own_curve():
    # a reviewer's check: a final run redone at a lower LR (tune(callbacks=[curve])) would have
    # appended its points to the first attempt's
    splits = load("digits")
    curve = TestCurve(splits.test)
    torch.manual_seed(0)
    trainer = Trainer(build("mlp"), torch.nn.functional.cross_entropy, splits.train,
                      batch_size=64, callbacks=[curve], progress=False)  # fmt: skip
    trainer.fit(2, schedules.constant(0.01))
    trainer.fit(1, schedules.constant(0.01))
    assert [point[0] for point in curve.points] == [len(trainer.train_loader)]
