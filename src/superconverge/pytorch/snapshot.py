"""`TrainingSnapshot`: an exact, restorable CPU copy of everything a short training run changes."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from superconverge.data.sources import has_position

# torch leaves is_initialized unannotated; typed here once instead of silencing each call
_cuda_initialized: Callable[[], bool] = torch.cuda.is_initialized


def cuda_in_use() -> bool:
    """Whether CUDA is available and this process already uses it (so it has RNG state)."""
    return torch.cuda.is_available() and bool(_cuda_initialized())


@contextlib.contextmanager
def kept_global_rng() -> Iterator[None]:
    """torch's global RNG (the CPU's, and each CUDA device's once CUDA is in use) given back
    as it was before the block. A fit or `tune` seeds torch for its own reproducibility; left
    at that seed, the caller's next draws repeat themselves (a user's check: two models built
    after two fits had the same initial weights)."""
    devices = list(range(torch.cuda.device_count())) if cuda_in_use() else []
    with torch.random.fork_rng(devices=devices):
        yield


def _to_cpu(value: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU (the snapshot never stays on the GPU)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_cpu(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(item) for item in value)
    return value


def _nbytes(value: Any) -> int:
    """The bytes of every tensor in a nest of dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(_nbytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(item) for item in value)
    return 0


def training_state_nbytes(
    model: nn.Module, optimizer: Any = None, grad_scaler: Any = None, *, grads: bool = True
) -> int:
    """The bytes a `TrainingSnapshot` of these would take, counted on the live tensors (no
    copy made): weights, grads (unless `grads` is False), buffers, optimizer and scaler state."""
    params = list(model.parameters())
    total = sum(int(p.nbytes) for p in params)
    if grads:
        total += sum(int(p.grad.nbytes) for p in params if p.grad is not None)
    total += sum(int(b.nbytes) for b in model.buffers())
    if optimizer is not None:
        total += _nbytes(optimizer.state_dict())
    if grad_scaler is not None:
        total += _nbytes(grad_scaler.state_dict())
    return total


class TrainingSnapshot:
    """Everything a short training run can change, copied to CPU memory, restorable exactly.

    Parameters (values, ``requires_grad``, ``.grad``), every buffer (persistent or not, e.g.
    BatchNorm running statistics and ``num_batches_tracked``), each module's train/eval mode,
    the optimizer's state and param-group hyper-parameters, a grad scaler, ``ArrayLoader``
    positions, and the Python, NumPy and torch (CPU and CUDA) RNG states. With ``grads=False``
    the gradients are not copied and a restore leaves ``.grad`` None: for a copy taken after an
    optimizer step, whose gradients the next step replaces (the in-run search's copies under
    Lightning and Hugging Face, which keep them until the next step; a parameter-size tensor
    less per copy).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        grad_scaler: Any = None,
        loaders: Iterable[object] = (),
        *,
        rng: bool = True,
        grads: bool = True,
    ) -> None:
        self.model = model
        self.params = [
            (
                p,
                _to_cpu(p),
                p.requires_grad,
                None if p.grad is None or not grads else _to_cpu(p.grad),
            )
            for p in model.parameters()
        ]
        self.buffers = [
            (module, name, tensor, _to_cpu(tensor)) for module, name, tensor in _buffers_of(model)
        ]
        self.modes = [(module, module.training) for module in model.modules()]
        self.optimizer = optimizer
        self.optimizer_state = None if optimizer is None else _to_cpu(optimizer.state_dict())
        self.grad_scaler = grad_scaler
        self.scaler_state = None if grad_scaler is None else _to_cpu(grad_scaler.state_dict())
        self.loaders = [(loader, loader.state_dict()) for loader in loaders if has_position(loader)]
        # weights and optimizer only without `rng` (the trainer's last-good copy)
        self.rngs = GlobalRngs() if rng else None

    def values(self) -> dict[str, Any]:
        """What the copy holds (CPU tensors and plain values; not its loaders or RNGs), for a
        checkpoint: `from_values` over the same model and optimizer makes it again."""
        return {
            "params": [value for _, value, _, _ in self.params],
            "requires_grad": [requires_grad for _, _, requires_grad, _ in self.params],
            "grads": [grad for _, _, _, grad in self.params],
            "buffers": [value for _, _, _, value in self.buffers],
            "modes": [training for _, training in self.modes],
            "optimizer": self.optimizer_state,
            "scaler": self.scaler_state,
        }

    @classmethod
    def from_values(
        cls,
        values: dict[str, Any],
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        grad_scaler: Any = None,
    ) -> TrainingSnapshot:
        """The snapshot whose `values` a checkpoint holds, over `model` (the same architecture)
        and `optimizer`: restoring it restores what the saved one would have."""
        snapshot = cls.__new__(cls)
        snapshot.model = model
        snapshot.params = list(
            zip(
                model.parameters(),
                values["params"],
                values["requires_grad"],
                values["grads"],
                strict=True,
            )
        )
        snapshot.buffers = [
            (module, name, tensor, value)
            for (module, name, tensor), value in zip(
                _buffers_of(model), values["buffers"], strict=True
            )
        ]
        snapshot.modes = list(zip(model.modules(), values["modes"], strict=True))
        snapshot.optimizer, snapshot.optimizer_state = optimizer, values["optimizer"]
        snapshot.grad_scaler, snapshot.scaler_state = grad_scaler, values["scaler"]
        snapshot.loaders, snapshot.rngs = [], None
        return snapshot

    def restore_training_state(self) -> None:
        """Weights, buffers, modes, grads and optimizer state (not the RNGs or loaders)."""
        with torch.no_grad():
            for param, value, requires_grad, grad in self.params:
                param.copy_(value)
                param.requires_grad_(requires_grad)
                if grad is None:
                    param.grad = None
                elif param.grad is None:
                    param.grad = grad.to(param.device, copy=True)  # never alias the snapshot
                else:
                    param.grad.copy_(grad)
            for module, name, tensor, value in self.buffers:
                tensor.copy_(value)
                module._buffers[name] = tensor  # noqa: SLF001 - undo a buffer a forward replaced
        for module, training in self.modes:
            module.training = training  # per module: train() would overwrite the children
        # load_state_dict keeps tensors already on the right device as they are: give it copies,
        # or the next steps would update the snapshot in place (caught by the repeats test)
        if self.optimizer is not None and self.optimizer_state is not None:
            self.optimizer.load_state_dict(_to_cpu(self.optimizer_state))
        if self.grad_scaler is not None and self.scaler_state is not None:
            self.grad_scaler.load_state_dict(_to_cpu(self.scaler_state))

    def restore(self) -> None:
        """Everything, RNGs and loader positions included."""
        self.restore_training_state()
        for loader, state in self.loaders:
            loader.load_state_dict(state)
        if self.rngs is not None:
            self.rngs.restore()


def _buffers_of(model: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """Every buffer of `model` with its module and name, non-persistent ones too, in the order
    a snapshot keeps them."""
    return [
        (module, name, tensor)
        for module in model.modules()
        for name, tensor in module._buffers.items()  # noqa: SLF001 - non-persistent ones too
        if tensor is not None
    ]


class GlobalRngs:
    """The process-wide RNG states, captured when built: Python's, NumPy's and torch's (CPU,
    and CUDA where it is in use); `restore` puts them back."""

    def __init__(self) -> None:
        self.python = random.getstate()
        self.numpy = np.random.get_state()
        self.torch = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if cuda_in_use() else None

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
