"""Lightning and Hugging Face on CUDA (marker `gpu`, out of the default run): `pytest -m gpu` on
a machine with CUDA and the [lightning] and [huggingface] extras. Each compares the GPU run with
what the plan says, step by step, as the CPU tests do."""

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SWEEP = {"start_lr": 1e-4, "end_lr": 10.0, "num_steps": 40}


def _planned(plan, steps):
    return [(plan.lr(k), plan.momentum(k)) for k in range(steps)]


def test_lightning_range_test_then_one_cycle_on_the_gpu(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from superconverge.lightning import OneCycle
    from tests.lightning.digits_module import (
        DigitsModule,
        RecordOptimizerSteps,
        digits_loader,
        trainer,
    )

    class Where(pl.Callback):  # Lightning moves the module back to the CPU after fit
        def on_train_start(self, trainer, pl_module):
            self.device = next(pl_module.parameters()).device.type

    callback, record, where = OneCycle(**SWEEP), RecordOptimizerSteps(), Where()
    module = DigitsModule("adamw")
    trainer([callback, record, where], tmp_path, accelerator="gpu", deterministic=False).fit(
        module, digits_loader()
    )
    assert where.device == "cuda"
    assert callback.result is not None and callback.result.max_lr is not None
    assert callback.plan.total_steps == 2 * 16
    assert record.seen == _planned(callback.plan, 32)  # lr and β1 at every update, on the GPU


def test_tune_module_on_the_gpu_trains_the_lightning_module_there(tmp_path):
    pytest.importorskip("lightning")
    from sklearn.datasets import load_digits
    from torch.utils.data import TensorDataset

    from superconverge.lightning import tune_module
    from tests.lightning.digits_module import DigitsModule

    x, y = load_digits(return_X_y=True)
    inputs, targets = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    train = TensorDataset(inputs[:1200], targets[:1200])
    val = TensorDataset(inputs[1200:1500], targets[1200:1500])
    plan = tune_module(DigitsModule, train, val, epochs=3, device="cuda", out_dir=tmp_path)
    assert plan.results["status"] == "completed"
    module = plan.trainer.model.module
    assert next(module.parameters()).device.type == "cuda"
    assert plan.results["final_val_loss"] < 0.5  # ln(10) = 2.3 is chance


def test_hugging_face_one_cycle_trainer_on_the_gpu_follows_its_plan(tmp_path):
    pytest.importorskip("transformers")
    from superconverge.huggingface import OneCycleTrainer
    from tests.huggingface.tiny import RandomIds, arguments, tiny_bert

    model = tiny_bert()
    trainer = OneCycleTrainer(
        model=model, args=arguments(tmp_path, use_cpu=False, num_train_epochs=2),
        train_dataset=RandomIds(64), lr_find_settings={"start_lr": 1e-5, "end_lr": 1.0,
                                                      "num_steps": 20},
    )  # fmt: skip
    seen = []

    def record(optimizer, args, kwargs):
        group = optimizer.param_groups[0]
        seen.append((float(group["lr"]), float(group["betas"][0])))

    create = trainer.create_optimizer

    def create_optimizer(*args, **kwargs):
        optimizer = create(*args, **kwargs)
        if trainer.lr_find_result is not None:  # the training's optimizer, not the sweep's
            optimizer.register_step_pre_hook(record)
        return optimizer

    trainer.create_optimizer = create_optimizer
    trainer.train()
    assert next(model.parameters()).device.type == "cuda"
    result = trainer.lr_find_result
    assert result is not None and result.max_lr is not None
    plan = trainer.lr_scheduler.plan
    assert plan.total_steps == 16  # 64 samples / 8 per batch, 2 epochs
    assert seen == _planned(plan, 16)
