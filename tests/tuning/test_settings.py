import dataclasses
import pickle

import pytest

from superconverge.tuning.settings import DEFAULT_SETTINGS, RecipeSettings


def test_the_defaults_are_the_measured_constants():
    s = RecipeSettings()
    assert s.lr_divisors == (10.0, 5.0, 3.0)
    assert (s.min_steps_per_epoch, s.min_total_steps, s.min_auto_batch) == (10, 1000, 16)
    assert (s.retry_loss_factor, s.retry_lr_divisor) == (1.5, 3.0)
    assert (s.wide_sweep_end_lr, s.wide_sweep_steps) == (1000.0, 125)
    assert s.constant_momenta == (0.99, 0.97, 0.95, 0.9)
    assert (s.extend_final_run, s.extension_reserve_fraction) == (True, 0.0)
    assert s == DEFAULT_SETTINGS


def test_settings_are_frozen_and_picklable():
    s = RecipeSettings(lr_divisors=(2.0,), retry_loss_factor=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lr_divisors = (1.0,)
    assert pickle.loads(pickle.dumps(s)) == s


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_total_steps", 0, "min_total_steps must be an integer >= 1, got 0"),
        ("lr_extensions", -1, "lr_extensions must be an integer >= 0, got -1"),
        ("batch_candidates", (), "batch_candidates must be integers >= 1"),
        ("lr_divisors", (10.0, 0.0), "lr_divisors must be finite numbers > 0"),
        ("constant_momenta", (1.0,), r"constant_momenta must be in \[0, 1\)"),
        ("throughput_gain", 1.0, r"throughput_gain must be in \[0, 1\), got 1.0"),
        ("gpu_memory_margin", 0.0, r"gpu_memory_margin must be in \(0, 1\]"),
        ("retry_lr_divisor", 1.0, "retry_lr_divisor must be a finite number > 1, got 1.0"),
        ("wide_sweep_end_lr", float("inf"), "wide_sweep_end_lr must be a finite number > 0"),
        ("retry_loss_factor", -0.5, "retry_loss_factor must be a finite number >= 0"),
        ("extension_reserve_fraction", 1.0, r"extension_reserve_fraction must be in \[0, 1\)"),
    ],
)
def test_bad_values_name_the_field_and_the_value(field, value, message):
    with pytest.raises(ValueError, match=message):
        RecipeSettings(**{field: value})


def test_edge_values_are_accepted():
    s = RecipeSettings(lr_extensions=0, throughput_gain=0.0, gpu_memory_margin=1.0,
                       retry_loss_factor=0.0, min_total_steps=1)  # fmt: skip
    assert s.lr_extensions == 0 and s.gpu_memory_margin == 1.0


def test_extend_final_run_must_be_a_bool():
    with pytest.raises(TypeError, match="extend_final_run must be True or False, got 'no'"):
        RecipeSettings(extend_final_run="no")
