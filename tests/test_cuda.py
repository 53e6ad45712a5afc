"""The GPU paths (marker `gpu`, out of the default run): `pytest -m gpu` on a machine with CUDA.

Each test checks numbers, not only that a step ran: where the CPU gives a reference the GPU run
is compared with it, and the CUDA-only decisions (the batch-size probe) are checked against the
memory they measured.
"""

import math

import pytest
import torch

import superconverge as sc
from superconverge.data import ArrayData, ArrayLoader, Augment, load
from superconverge.models import build
from superconverge.training import Trainer
from superconverge.tuning import probes
from superconverge.tuning.settings import DEFAULT_SETTINGS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
LOSS = torch.nn.functional.cross_entropy


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def images(count: int, size: int = 28, channels: int = 1, seed: int = 0) -> ArrayData:
    """Two classes told apart by the mean brightness of the image: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 2, (count,), generator=generator)
    inputs = torch.randn(count, channels, size, size, generator=generator) * 0.5
    inputs += (targets.float() * 2 - 1).view(-1, 1, 1, 1)
    return ArrayData(inputs, targets)


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return build("mlp")


def test_one_cycle_on_cuda_follows_the_cpu_run(digits):
    """Same weights, data order and plan: the GPU's losses track the CPU's (float32 rounding)."""
    runs = {}
    for device in ("cpu", "cuda"):
        trainer = Trainer(mlp(), LOSS, digits.train, digits.val, batch_size=64, device=device,
                          precision="32", progress=False)  # fmt: skip
        history = trainer.fit_one_cycle(3, 0.1)
        assert next(trainer.module.parameters()).device.type == device
        runs[device] = history
    cpu, gpu = (torch.tensor(runs[d].step_losses) for d in ("cpu", "cuda"))
    assert len(cpu) == len(gpu)
    assert torch.allclose(cpu, gpu, rtol=1e-3, atol=1e-4)
    assert runs["cpu"].step_lrs == runs["cuda"].step_lrs
    assert runs["cuda"].epochs[-1]["val_accuracy"] == pytest.approx(
        runs["cpu"].epochs[-1]["val_accuracy"], abs=0.01
    )


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_a_cnn_in_channels_last(precision):
    data = images(512)
    torch.manual_seed(0)
    trainer = Trainer(build("mnist-cnn", num_classes=2), LOSS, data, images(256, seed=1),
                      batch_size=64, device="cuda", precision=precision, progress=False)  # fmt: skip
    history = trainer.fit_one_cycle(2, 0.05)
    assert history.status == "completed"
    assert all(math.isfinite(loss) for loss in history.step_losses)
    assert history.epochs[-1]["val_accuracy"] > 0.95
    if precision == "fp16":
        assert trainer.scaler is not None and trainer.scaler.get_scale() > 0


def test_lr_find_on_cuda_restores_weights_and_optimizer_bitwise(digits):
    trainer = Trainer(mlp(), LOSS, digits.train, digits.val, batch_size=64, device="cuda",
                      progress=False)  # fmt: skip
    trainer.fit_one_cycle(1, 0.05)  # the optimizer now has momentum buffers on the GPU
    weights = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    buffers = [s["momentum_buffer"].clone() for s in trainer.optimizer.state.values()]
    result = trainer.lr_find()
    assert result.max_lr is not None and 1e-4 < result.max_lr < 10
    for key, value in trainer.module.state_dict().items():
        assert value.device.type == "cuda"
        assert torch.equal(value, weights[key]), key
    after = [s["momentum_buffer"] for s in trainer.optimizer.state.values()]
    assert all(torch.equal(a, b) for a, b in zip(after, buffers, strict=True))


def test_checkpoint_written_on_cuda_resumes_on_the_cpu(digits, tmp_path):
    trainer = Trainer(mlp(), LOSS, digits.train, digits.val, batch_size=64, device="cuda",
                      out_dir=tmp_path, progress=False)  # fmt: skip
    trainer.fit_one_cycle(2, 0.05)
    expected = trainer.evaluate(digits.test)
    history = Trainer.resume(tmp_path / "checkpoint.pt", mlp(), LOSS, digits.train, digits.val,
                             batch_size=64, device="cpu", out_dir=tmp_path, progress=False)  # fmt: skip
    assert history.status == "completed"
    restored = Trainer(mlp(), LOSS, digits.train, device="cpu", batch_size=64, progress=False)
    restored.load_checkpoint(tmp_path / "checkpoint.pt")
    assert restored.evaluate(digits.test)["accuracy"] == pytest.approx(expected["accuracy"])


def test_loader_and_augment_run_on_the_gpu():
    data = images(300, size=32, channels=3)
    loader = ArrayLoader(data, 64, seed=0, device=torch.device("cuda"), augment=Augment())
    batches = list(loader)
    assert sum(len(targets) for _, targets in batches) == 300
    inputs, targets = batches[0]
    assert inputs.device.type == "cuda" and targets.device.type == "cuda"
    assert inputs.shape == (64, 3, 32, 32)


def test_largest_batch_probe_measures_peak_memory_under_the_margin():
    data = images(4096, size=32, channels=3)

    def resnet() -> torch.nn.Module:
        return build("cifar-resnet", num_classes=2)

    device = torch.device("cuda")
    best, peaks = probes.largest_batch_on_gpu(resnet, data, LOSS, device, max_batch=4096)
    assert best in peaks and peaks[best] <= DEFAULT_SETTINGS.gpu_memory_margin
    assert all(peaks[size] < peaks[size * 2] for size in peaks if size * 2 in peaks)
    # with a quarter of the measured peak as the room the probe must stop at a smaller batch, by the same measurements
    fraction = peaks[best] / 4
    smaller, peaks_again = probes.largest_batch_on_gpu(resnet, data, LOSS, device, max_batch=4096,
                                                       margin=fraction)  # fmt: skip
    assert smaller < best
    assert peaks_again[smaller] <= fraction


def test_find_batch_size_on_cuda_is_the_memory_probe_with_the_lr_moved():
    data = images(4096, size=32, channels=3)

    def resnet() -> torch.nn.Module:
        return build("cifar-resnet", num_classes=2)

    found = sc.find_batch_size(resnet, data, LOSS, device="cuda", max_batch=512, max_lr=0.4,
                               lr_batch_size=512)  # fmt: skip
    assert found.method == "gpu memory" and found.device.startswith("cuda")
    assert found.measurements[found.batch_size] <= DEFAULT_SETTINGS.gpu_memory_margin
    # measured at the size named, not at two samples: the peak grows with the batch
    peaks = [found.measurements[size] for size in sorted(found.measurements)]
    assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks)
    assert found.max_lr == pytest.approx(0.4 * found.batch_size / 512)


def test_tune_on_cuda_probes_memory_and_trains(digits, tmp_path):
    plan = sc.tune(mlp, digits.train, digits.val, epochs=4, test_data=digits.test, out_dir=tmp_path)
    batch_step = plan.evidence[0]
    assert "peak_memory_fraction" in batch_step["details"]
    assert plan.batch_size <= len(digits.train) // DEFAULT_SETTINGS.min_steps_per_epoch
    assert plan.results["status"] == "completed"
    assert plan.results["test"]["accuracy"] > 0.9


class _DigitsItems(torch.utils.data.Dataset):
    """A user's own map-style Dataset: one (inputs, target) pair per item, on the CPU."""

    def __init__(self, data: ArrayData):
        self.inputs, self.targets = data.inputs, data.targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.inputs[index], self.targets[index]


def test_a_dataset_with_workers_on_cuda_follows_the_cpu_run(digits):
    """The library's own DataLoader (2 workers, pinned memory on CUDA) feeds the same batches."""
    runs = {}
    for device in ("cpu", "cuda"):
        trainer = Trainer(mlp(), LOSS, _DigitsItems(digits.train), _DigitsItems(digits.val),
                          batch_size=64, device=device, precision="32", num_workers=2,
                          progress=False)  # fmt: skip
        runs[device] = trainer.fit_one_cycle(2, 0.1)
    cpu, gpu = (torch.tensor(runs[d].step_losses) for d in ("cpu", "cuda"))
    assert len(cpu) == len(gpu) == 2 * math.ceil(len(digits.train) / 64)
    assert torch.allclose(cpu, gpu, rtol=1e-3, atol=1e-4)


def test_tune_with_adamw_over_a_dataset_on_cuda_and_its_plan_runs_again(digits, tmp_path):
    train, val, test = (_DigitsItems(d) for d in (digits.train, digits.val, digits.test))
    plan = sc.tune(mlp, train, val, epochs=3, optimizer="adamw", test_data=test, device="cuda",
                   num_workers=2, out_dir=tmp_path / "tune")  # fmt: skip
    assert plan.optimizer == "adamw" and plan.results["status"] == "completed"
    assert plan.environment["device"].startswith("cuda")
    assert plan.compute["x_final_run"] <= 2.0 + 1e-9
    assert plan.results["test"]["accuracy"] > 0.9
    again = sc.TunePlan.from_json((tmp_path / "tune" / "plan.json").read_text())
    again.run(mlp, train, val, test_data=test, device="cuda", out_dir=tmp_path / "again")
    assert again.trainer.device.type == "cuda"
    assert again.results["status"] == "completed"
    assert again.results["test"]["accuracy"] > 0.9


def test_fp16_one_cycle_with_adamw_cycles_beta1_and_resumes_exactly(digits, tmp_path):
    """GradScaler state and β1 travel in the checkpoint: a resumed fp16 run ends where the whole
    one did."""

    from tests.training.test_checkpoint import KillAfterEpoch

    def run(out, stop_after=None):
        stop = [] if stop_after is None else [KillAfterEpoch(stop_after)]
        trainer = Trainer(mlp(), LOSS, digits.train, digits.val, batch_size=64, device="cuda",
                          precision="fp16", optimizer="adamw", out_dir=out, progress=False,
                          callbacks=stop)  # fmt: skip
        return trainer, trainer.fit_one_cycle(3, 3e-3)

    whole, history = run(tmp_path / "whole")
    assert trainer_betas(whole) and history.status == "completed"
    assert whole.scaler is not None and whole.scaler.get_scale() > 0
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", stop_after=1)
    resumed = Trainer.resume(tmp_path / "cut" / "checkpoint.pt", mlp(), LOSS, digits.train,
                             digits.val, batch_size=64, device="cuda", precision="fp16",
                             optimizer="adamw", out_dir=tmp_path / "cut", progress=False)  # fmt: skip
    assert resumed.status == "completed"
    assert resumed.step_losses[-5:] == pytest.approx(history.step_losses[-5:], rel=1e-2, abs=1e-3)


def trainer_betas(trainer: Trainer) -> bool:
    """β1 ends the cycle at its high value (0.95) after rising from the low one."""
    return all(group["betas"][0] == pytest.approx(0.95) for group in trainer.optimizer.param_groups)


def test_a_cuda_index_past_the_devices_is_a_usage_error_before_any_work(tmp_path, capsys):
    from superconverge.cli.main import main

    past = f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(ValueError, match=rf"device must be available, got '{past}'"):
        Trainer(mlp(), LOSS, images(8), device=past)
    assert main(["tune", "--device", past, "--out", str(tmp_path / "run")]) == 2
    assert f"'{past}'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
