"""Checkpoints that are never half-written and load with ``torch.load(weights_only=True)``,
and the run folder: every file the training package writes goes through `RunFolder`."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from superconverge._files import FolderLock, write_atomically, write_text_atomically
from superconverge.data.loader import has_position
from superconverge.pytorch.optimizers import OPTIMIZERS
from superconverge.pytorch.scheduler import HyperparamScheduler, momentum_key
from superconverge.pytorch.snapshot import cuda_in_use
from superconverge.schedules import Plan
from superconverge.training.history import History

FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
MODEL = "model.pt"  # the weights a fit ended with, after its callbacks (`RunFolder.save_model`)


def save_atomically(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over `path`.

    A crash (even SIGKILL) at any moment leaves either the previous file or the new one, never
    a truncated mix: the rename is atomic on POSIX file systems.
    """
    return write_atomically(path, lambda handle: torch.save(payload, handle))


class CheckpointError(ValueError):
    """A file that does not read as a checkpoint of this library (corrupt, truncated, foreign);
    `path` names it."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_atomically`, with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError: the file is not a superconverge checkpoint (or is corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (MemoryError, OSError):  # the machine's trouble, not the file's: as it is
        raise
    except Exception as error:  # a corrupt or foreign file: say which
        raise CheckpointError(
            path, f"checkpoint {path} cannot be read: {unreadable(error)}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            path, f"checkpoint {path} is not a superconverge checkpoint (format {FORMAT_VERSION})"
        )
    return payload


def unreadable(error: BaseException) -> str:
    """Why ``torch.load`` could not read a file, in a few words: its own message runs to 900
    characters and, for a corrupt file, advises ``weights_only=False`` (a user's check).

    Example:
        >>> unreadable(EOFError())
        'the file is empty or cut short'
    """
    text = str(error)
    if isinstance(error, EOFError):
        return "the file is empty or cut short"
    if not text:
        return type(error).__name__
    if "central directory" in text or "zip archive" in text:
        return "it is cut short or corrupt (not a whole zip archive)"
    if "Weights only load failed" in text:
        return "it is corrupt or not a checkpoint of this library (it holds other objects)"
    first = text.splitlines()[0]
    return f"{type(error).__name__}: {first[:160]}"


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states, in types ``weights_only`` accepts."""
    numpy_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(numpy_state[1], dtype=np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if cuda_in_use():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_signature(model: torch.nn.Module) -> dict[str, list[int]]:
    """Parameter and buffer names with their shapes: tells two architectures apart."""
    return {name: list(tensor.shape) for name, tensor in model.state_dict().items()}


def check_signature(saved: dict[str, list[int]], model: torch.nn.Module, path: str | Path) -> None:
    """Raise a clear error when a checkpoint was written for another model."""
    current = model_signature(model)
    missing = sorted(set(saved) - set(current))
    extra = sorted(set(current) - set(saved))
    shapes = sorted(k for k in set(saved) & set(current) if saved[k] != current[k])
    if missing or extra or shapes:
        details = []
        if missing:
            details.append(f"missing in this model: {missing[:5]}")
        if extra:
            details.append(f"not in the checkpoint: {extra[:5]}")
        if shapes:
            key = shapes[0]
            details.append(f"shape of {key}: checkpoint {saved[key]}, model {current[key]}")
        compiled = "_orig_mod."
        if {k.startswith(compiled) for k in saved} != {k.startswith(compiled) for k in current}:
            # a user's check: the same network, compiled in one run and not in the other
            details.append(
                "one of the two was wrapped by torch.compile (its names start with _orig_mod.): "
                "compile both or neither"
            )
        raise ValueError(f"checkpoint {path} was written for another model ({'; '.join(details)})")


def build_payload(
    *,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: HyperparamScheduler,
    loader_state: dict[str, Any] | None,
    scaler: torch.amp.GradScaler,
    history: History,
    epochs: int,
    epochs_done: int,
    best_val_loss: float,
    then: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a resume needs after `epochs_done` of `epochs` epochs; `best_val_loss`
    includes the epoch being saved, so a resumed run compares later epochs with the true best;
    `then`: the fit that follows this one (`Trainer.then`: `fine_tune`'s second phase);
    `settings`: what a resume must match (`match_saved_settings`)."""
    return {
        "format": FORMAT_VERSION,
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "plan": scheduler.plan.to_dict(),
        "fit": {"epochs": epochs, "epochs_done": epochs_done},
        "loader": loader_state,
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "rng": rng_state(),
        "history": history.to_dict(),
        "best_val_loss": best_val_loss,
        "signature": model_signature(module),
        # what a fresh trainer cannot know: which parameters `freeze_to` froze
        "frozen": [i for i, p in enumerate(module.parameters()) if not p.requires_grad],
        "then": then,
        "settings": settings,
    }


def match_saved_settings(
    payload: dict[str, Any],
    path: str | Path,
    *,
    optimizer: torch.optim.Optimizer,
    batch_size: int | None,
    loader: Any,
    steps_per_epoch: Callable[[], int],
    world_size: int = 1,
) -> None:
    """Refuse, before any step, a resume whose optimizer, `batch_size` or training data differ
    from those of the run that saved `payload`: a foreign optimizer state does not load (a raw
    KeyError), and a schedule planned for other steps per epoch never reaches its end (a 1cycle
    stopped at 86% of its peak LR). A `loader` with a position takes the run's batch size when
    `batch_size` was left unset (None), before `steps_per_epoch()` is read.

    Raises:
        ValueError: naming the argument, the checkpoint's value, the one given, and what to do.
    """
    saved = payload.get("settings") or {}  # None in checkpoints from before they were saved
    _match_optimizer(saved.get("optimizer"), payload, optimizer, path)
    run_batch = saved.get("batch_size") or (payload.get("loader") or {}).get("batch_size")
    if run_batch is not None and batch_size is not None and batch_size != run_batch:
        raise ValueError(
            f"batch_size: the checkpoint {path} was trained at batch_size {run_batch}, this "
            f"resume asks for {batch_size}; leave batch_size unset (the run's is used) or pass "
            f"batch_size={run_batch} (another batch size is a new fit, from the start)"
        )
    before = loader.state_dict() if has_position(loader) else None
    if before is not None and run_batch is not None and loader.batch_size != run_batch:
        # the position is restored from the checkpoint next; a trainer stopped mid-epoch is at
        # a batch where the batch size cannot change (the setter refuses): start of an epoch
        loader.load_state_dict({**before, "batch_index": 0, "batch_size": run_batch})
    run_steps, steps = saved.get("steps_per_epoch"), steps_per_epoch()
    run_world, world = saved.get("world_size"), world_size
    if run_steps is not None and steps != run_steps:
        if before is not None:  # refused: the trainer's loader as it was
            loader.load_state_dict(before)
        if run_world is not None and run_world != world:  # the data were the same, the ranks not
            raise ValueError(
                f"the checkpoint {path} was trained on {run_world} processes, this resume runs "
                f"on {world}: each reads its share of the data, so the schedule's "
                f"{run_steps} steps per epoch become {steps}; resume with torchrun "
                f"--nproc_per_node {run_world}"
                if run_world > 1
                else f"the checkpoint {path} was trained in one process, this resume runs on "
                f"{world}: resume it without torchrun"
            )
        raise ValueError(
            f"train_data: the checkpoint {path}'s schedule was planned for {run_steps} steps "
            f"per epoch, this train_data gives {steps}; resume with the run's training data "
            "(the same samples, steps_per_epoch and accumulation_steps): on other data the "
            "schedule would not end where it was planned"
        )


def _match_optimizer(
    saved: str | None, payload: dict[str, Any], optimizer: torch.optim.Optimizer, path: str | Path
) -> None:
    """`match_saved_settings`' optimizer check: the class saved with the checkpoint, or, in one
    from before classes were saved, where its param groups keep their momentum."""
    now = type(optimizer).__name__
    if saved is None:
        groups = payload["optimizer"]["param_groups"]
        saved_key, key = momentum_key(groups[0]), momentum_key(optimizer.param_groups[0])
        if saved_key == key:
            return
        saved = f"an optimizer whose momentum is in {saved_key!r}"
        now = f"{now}, whose momentum is in {key!r}"
    elif saved == now:
        return
    names = [name for name, (cls, _) in OPTIMIZERS.items() if cls.__name__ == saved]
    todo = f"pass optimizer={names[0]!r}" if names else "pass the optimizer it was trained with"
    raise ValueError(
        f"optimizer: the checkpoint {path} was trained with {saved}, this trainer builds {now}; "
        f"{todo} (its saved state belongs to that optimizer)"
    )


class RunFolder:
    """The files of one run folder (``checkpoint.pt``, ``best.pt``, ``model.pt``,
    ``history.csv``, ``history.json``), each written atomically, by rank 0 only.

    A folder that holds another run's checkpoint is refused unless `overwrite`, and so is one
    that holds an earlier fit's of this object (`end_run`): each fit is a run of its own.
    """

    def __init__(self, path: str | Path, *, overwrite: bool, writer: bool) -> None:
        self.path, self.overwrite, self.writer = Path(path), overwrite, writer
        self._written: set[Path] = set()  # the files of the run in progress, which it replaces
        self._ended: set[Path] = set()  # the files of this object's earlier fits

    def check_free(self) -> None:
        """Raise FileExistsError when a checkpoint of another run, or of an earlier fit of this
        object, is in the way."""
        if self.overwrite or not self.writer:
            return
        for name in (CHECKPOINT, BEST, MODEL):
            path = self.path / name
            if not path.exists() or path in self._written:
                continue
            if path in self._ended:
                raise FileExistsError(
                    f"out_dir {self.path} holds {name} of this Trainer's earlier fit, which a "
                    "new fit would replace; to replace it, set trainer.overwrite = True (or "
                    "build the Trainer with overwrite=True); to keep it, train into another "
                    "out_dir (a new Trainer on the same model)"
                )
            raise FileExistsError(
                f"out_dir {self.path} already holds {name} from another run; pass "
                "overwrite=True, choose another out_dir, or Trainer.resume() it"
            )

    def end_run(self) -> None:
        """The fit that wrote the files ended (completed, stopped or interrupted): a later fit
        is another run, which may not replace them unless `overwrite`."""
        self._ended |= self._written
        self._written = set()

    def continue_run(self) -> None:
        """This object continues the run whose files are in the folder (a resume, or the
        second phase of `fine_tune`): they are its own, so the fit may replace them."""
        for name in (CHECKPOINT, BEST, MODEL):
            if (self.path / name).exists():
                self._written.add(self.path / name)

    def save(self, name: str, payload: dict[str, Any]) -> None:
        if self.writer:
            self._written.add(save_atomically(payload, self.path / name))

    def save_model(self, module: torch.nn.Module) -> None:
        """``model.pt``: the module's ``state_dict()`` as the fit left it, on the CPU. It can
        differ from ``checkpoint.pt``'s weights, which are the last epoch's as trained: a
        callback may have put others in the model when the fit ended (`WeightAverage`'s mean,
        `KeepBest`'s best epoch). Load it with ``model.load_state_dict(torch.load(path))``."""
        if self.writer:
            # a torch.compile'd model's own weights: they load into the network it compiled
            # (its wrapper's names, "_orig_mod.0.weight", did not)
            module = getattr(module, "_orig_mod", module)
            weights = {k: v.detach().to("cpu") for k, v in module.state_dict().items()}
            self._written.add(save_atomically(weights, self.path / MODEL))

    def write_history(self, history: History, *, table: bool = True) -> None:
        """``history.json`` (always) and the epoch table ``history.csv`` (with `table`)."""
        if not self.writer:
            return
        write_text_atomically(self.path / "history.json", history.to_json())
        if table:
            write_text_atomically(self.path / "history.csv", history.to_csv())


def holding(folder: RunFolder | None) -> contextlib.AbstractContextManager[Any]:
    """One writer per run folder: its writer (rank 0) holds `FolderLock` while it fits; a second
    process writing there fails at once with FolderBusyError, naming the first."""
    if folder is None or not folder.writer:
        return contextlib.nullcontext()
    return FolderLock(folder.path)


def restore_training_state(
    payload: dict[str, Any],
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Any,
    scaler: torch.amp.GradScaler,
) -> None:
    """Load a payload's weights, optimizer, loader position (when `loader` is given and one was
    saved), grad-scaler state and RNG states."""
    module.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if loader is not None and payload.get("loader") is not None:
        loader.load_state_dict(payload["loader"])
    if payload.get("scaler") is not None:
        scaler.load_state_dict(payload["scaler"])
    set_rng_state(payload["rng"])


@dataclass(frozen=True)
class ResumedFit:
    """What a checkpoint says about the fit it interrupted (`restore_fit`)."""

    scheduler: HyperparamScheduler
    history: History
    epochs: int
    epochs_done: int
    best_val_loss: float


def restore_fit(
    payload: dict[str, Any],
    path: str | Path,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Any,
    scaler: torch.amp.GradScaler,
) -> ResumedFit:
    """Check that `payload` (read from `path`) was written for `module`, restore the training
    state into the objects given (`restore_training_state`), and return the interrupted fit: its
    scheduler at the saved step, its history, its epochs and its best validation loss."""
    check_signature(payload["signature"], module, path)
    restore_training_state(payload, module, optimizer, loader, scaler)
    # lr_scale came with the optimizer's groups; the scheduler's state is its step
    scheduler = HyperparamScheduler(optimizer, Plan.from_dict(payload["plan"]))
    scheduler.load_state_dict(payload["scheduler"])
    fit = payload["fit"]
    return ResumedFit(
        scheduler=scheduler,
        history=History.from_dict(payload["history"]),
        epochs=fit["epochs"],
        epochs_done=fit["epochs_done"],
        best_val_loss=float(payload.get("best_val_loss", math.inf)),
    )
