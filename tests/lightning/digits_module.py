"""A small LightningModule on scikit-learn's digits, shared by the Lightning tests and the
DDP script: BatchNorm (buffers the range test must restore) and dropout (RNG it must restore)."""

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")  # a skip, not an error, where it is missing


def digits_dataset(size=512):
    x, y = load_digits(return_X_y=True)
    inputs = torch.tensor(x[:size] / 16.0, dtype=torch.float32)
    return TensorDataset(inputs, torch.tensor(y[:size], dtype=torch.long))


def digits_loader(batch_size=32, *, shuffle=True, seed=0, size=512):
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        digits_dataset(size), batch_size=batch_size, shuffle=shuffle, generator=generator
    )


class DigitsModule(pl.LightningModule):
    def __init__(self, optimizer="sgd", dropout=0.1, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 10)
        )
        self.optimizer_name = optimizer

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        loss = nn.functional.cross_entropy(self.net(inputs), targets)
        self.log("train_loss", loss, on_step=True)
        return loss

    def configure_optimizers(self):
        if self.optimizer_name == "adamw":
            return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=1e-4)
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def trainer(callbacks, tmp_path, **kwargs):
    settings = {
        "max_epochs": 2, "accelerator": "cpu", "devices": 1, "logger": False,
        "enable_checkpointing": False, "enable_progress_bar": False,
        "enable_model_summary": False, "default_root_dir": str(tmp_path), "deterministic": True,
        **kwargs,
    }  # fmt: skip
    return pl.Trainer(callbacks=callbacks, **settings)


class RecordOptimizerSteps(pl.Callback):
    """The lr and momentum each optimizer update used, read by a torch step pre-hook."""

    def __init__(self):
        self.seen = []

    def on_train_start(self, trainer, pl_module):
        optimizer = trainer.optimizers[0]

        def record(opt, args, kwargs):
            group = opt.param_groups[0]
            momentum = group["betas"][0] if "betas" in group else group["momentum"]
            self.seen.append((float(group["lr"]), float(momentum)))

        self.handle = optimizer.register_step_pre_hook(record)

    def on_train_end(self, trainer, pl_module):
        self.handle.remove()
