"""One fit as its own object: `FitLoop` holds the steps, the epochs, the history, the scheduler,
the loss smoother and the best validation loss of one call to `Trainer.fit` (or a resume), and
is dropped afterwards."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

import torch

from superconverge._compare import times, worse
from superconverge._warnings import user_stacklevel
from superconverge.batches import forward, split_batch
from superconverge.data.loader import ArrayLoader
from superconverge.data.sources import has_position
from superconverge.finder.smoothing import NON_FINITE, SMOOTHING, LossSmoother
from superconverge.pytorch.optimizers import optimizer_step
from superconverge.pytorch.scheduler import (
    HyperparamScheduler,
    get_momentum,
    lr_scales,
    momentum_key,
    set_lr_scales,
)
from superconverge.pytorch.snapshot import TrainingSnapshot
from superconverge.training.callbacks import CancelEpoch, CancelFit, overrides
from superconverge.training.checkpoint import BEST, CHECKPOINT, build_payload
from superconverge.training.edge import EdgeSearch
from superconverge.training.history import History
from superconverge.training.progress import FitProgress, say, tell

if TYPE_CHECKING:
    from superconverge.training.trainer import Trainer

logger = logging.getLogger(__name__)
backward = torch.autograd.backward  # Tensor.backward without its untyped wrapper

WARMUP_STEPS = 10  # no divergence verdict before the smoothed loss has settled
# LR factor per back-off (the AlgoPerf-winning submission halves its LR on a stall)
BACKOFF_FACTOR = 0.5
# a stall: an epoch's mean training loss this many times the best epoch's (a network knocked
# back to chance by a too-high LR ends its epochs flat at ln(classes), below the divergence
# detector's 4x; measured in docs/benchmarks.md, "A guard for the final run")
STALL_FACTOR = 1.5
# fraction of the fit's first loss below which the divergence rule's minimum is not taken: a
# trained model's loss near 0 rising 4x (0.002 to 0.008) is a few batches' noise. Small, so that
# a loss that fell 100x and climbs 4x again still counts (a regression from 1e4 to 10 is caught
# at 400, not at 40: the price of the floor)
DIVERGENCE_FLOOR_FRACTION = 0.01


class FitLoop:
    """One fit of `trainer` following `scheduler` from `start_epoch` to `epochs`.

    Callbacks read the attributes: ``epoch`` (0-based), ``step`` (the optimizer step just
    made), ``loss`` (its loss, a tensor), ``lr`` (its LR), ``record`` (the latest epoch's row).
    """

    def __init__(
        self,
        trainer: Trainer,
        scheduler: HyperparamScheduler,
        history: History,
        *,
        epochs: int,
        start_epoch: int = 0,
        best_val_loss: float = math.inf,
        backoff: int = 0,
        edge: EdgeSearch | None = None,
    ) -> None:
        self.trainer, self.scheduler, self.history = trainer, scheduler, history
        history.steps_per_epoch = trainer.steps_per_epoch  # also for a resumed fit's History
        # `fit_one_cycle(max_lr="search")`: the rise searches the peak until its edge; where it
        # was found (the epoch's start for a back-off after it, and the weights restored)
        self.edge = edge
        self.edge_restart: tuple[Any, TrainingSnapshot] | None = None
        # divergences answered by restoring the epoch's starting weights and halving the LR
        self.backoff_left = backoff
        self.epochs, self.start_epoch = epochs, start_epoch
        self.best_val_loss = best_val_loss
        self.smoother = self._new_smoother()
        self.epoch = start_epoch
        self.step = scheduler.step_count
        self.loss: torch.Tensor = torch.zeros(())
        self.lr = math.nan  # the LR of step `step`
        self.record: dict[str, float] = {}
        callbacks = trainer.callbacks
        self._before_batch = [c for c in callbacks if overrides(c, "before_batch")]
        self._after_batch = [c for c in callbacks if overrides(c, "after_batch", "on_step_end")]
        # loaders with a position had their first batch checked without drawing it (a peek)
        self._first_checked = has_position(trainer.train_loader)
        self.progress = FitProgress(
            trainer.progress,
            epochs=epochs,
            total_steps=epochs * trainer.steps_per_epoch,
            start_step=scheduler.step_count,
            interval_s=trainer.progress_interval,
        )

    # ----------------------------------------------------------------- the fit
    def run(self) -> History:
        trainer, history = self.trainer, self.history
        history.status = "running"
        if self.start_epoch == 0:
            torch.manual_seed(trainer.seed)  # dropout and friends start from the same state
        last_good = TrainingSnapshot(trainer.module, trainer.optimizer, trainer.scaler, rng=False)
        try:
            self._event("before_fit")
            epoch = self.start_epoch
            while epoch < self.epochs:
                self.epoch = epoch
                self._event("before_epoch")
                start = self._epoch_start()
                self.record = self._train_epoch()
                restart, self.edge_restart = self.edge_restart, None
                if restart is not None:  # the edge was found in this epoch: a back-off starts there
                    start, last_good = restart
                # the epoch of the edge holds the rise's steps past it, and a rise still
                # searching is judged by the search's own rules: no stall to read there
                searching = self.edge is not None and self.edge.searching
                stalled = restart is None and not searching and self._stalled()
                if history.status == "diverged" or stalled:
                    scales = lr_scales(trainer.optimizer)  # the restore resets them
                    last_good.restore_training_state()
                    if self._back_off(start, scales):
                        continue  # the same epoch again, from its first weights, lower
                    if trainer.rank == 0:
                        # once: the CLI shows Python warnings as its "warning:" lines
                        warnings.warn(history.message, RuntimeWarning, stacklevel=user_stacklevel())
                    break
                improved = self._end_epoch()
                last_good = TrainingSnapshot(
                    trainer.module, trainer.optimizer, trainer.scaler, rng=False
                )
                # the callbacks whose state the checkpoint saves end their epoch before it is
                # saved, so that state holds this epoch (a user's counter resumed one epoch
                # behind); the others after it, so a kill there keeps the epoch
                kept = [c for c in trainer.callbacks if getattr(c, "checkpoint_key", None)]
                others = [c for c in trainer.callbacks if not getattr(c, "checkpoint_key", None)]
                try:
                    self._event("after_epoch", kept)
                except CancelFit:  # the fit ends with this epoch: it is kept all the same
                    self._save_epoch(improved)
                    raise
                self._save_epoch(improved)
                self._event("after_epoch", others)
                epoch += 1
            else:
                history.status = "completed"
        except CancelFit as cancel:
            history.status = "cancelled"
            history.message = (
                str(cancel) or f"a callback cancelled the fit in epoch {self.epoch + 1}"
            )
        except KeyboardInterrupt:
            history.status = "interrupted"
            history.message = "interrupted; the last epoch checkpoint is intact"
            raise
        except Exception as error:  # a callback's, a metric's, the data's: it said "running"
            history.status = "failed"
            history.message = f"{type(error).__name__}: {error}"
            raise
        finally:
            self._event("after_fit")
            folder = trainer.run_folder
            if folder is not None:
                # the weights the fit ended with, callbacks' included; an interrupted or failed
                # fit leaves its last epoch's checkpoint.pt alone
                ended = history.status in ("completed", "cancelled", "diverged")
                if ended and history.epochs:
                    folder.save_model(trainer.module)
                folder.write_history(history, table=False)
        return history

    def _new_smoother(self) -> LossSmoother:
        """The divergence rule for this fit (again after a back-off): its reference is the
        fit's own first loss, kept across back-offs and resumes."""
        losses = self.history.step_losses
        first = losses[0] if losses and math.isfinite(losses[0]) else None
        return LossSmoother(
            SMOOTHING,
            self.trainer.diverge_factor,
            WARMUP_STEPS,
            floor_fraction=DIVERGENCE_FLOOR_FRACTION,
            first=first,
        )

    def _epoch_start(self) -> tuple[dict[str, int], dict[str, int] | None, int]:
        """Where this epoch starts: the scheduler's and loader's state and the steps recorded."""
        loader = self.trainer.train_loader
        position = loader.state_dict() if has_position(loader) else None
        return self.scheduler.state_dict(), position, len(self.history.step_losses)

    def _stalled(self) -> bool:
        """Whether this epoch lost the ground earlier ones gained: its mean training loss is
        `STALL_FACTOR` times the best epoch's. Only asked while back-offs are left (a fit
        without them trains on, as a plain loop would)."""
        if self.backoff_left <= 0:
            return False
        best = min((r["train_loss"] for r in self._stall_references()), default=math.inf)
        loss = self.record["train_loss"]
        if not (math.isfinite(best) and worse(loss, best, STALL_FACTOR)):
            return False
        peak = self.scheduler.plan.max_lr or self.scheduler.last_lr
        self.history.message = (
            f"max_lr {peak:.3g} stalled: the epoch's mean training loss "
            f"{loss:.4g} is {times(loss, best)} the best epoch's {best:.4g}"
        )
        return True

    def _stall_references(self) -> list[dict[str, float]]:
        """The epochs a stall is measured against: all, unless the LR search restored weights
        from before the epoch it found its edge in. Then the epochs up to the edge trained
        weights that are gone (an auditor's 200-epoch fit: the search restored step 0's after 9
        epochs, and the guard, comparing with those, halved the LR twice)."""
        epochs, edge = self.history.epochs, self.history.lr_search
        if not edge or edge.get("restored_step") is None:
            return epochs
        per_epoch = max(1, self.trainer.steps_per_epoch)
        edge_epoch = int(edge["step"]) // per_epoch
        if int(edge["restored_step"]) // per_epoch >= edge_epoch:  # within the edge's epoch
            return epochs
        return epochs[edge_epoch + 1 :]

    def _back_off(
        self, start: tuple[dict[str, int], dict[str, int] | None, int], scales: list[float]
    ) -> bool:
        """After a divergence or a stall (the epoch's starting weights already restored): when
        retries are left, halve the LR from here on and rewind the epoch's schedule, batches and
        records, so the epoch runs again; False when none are left."""
        if self.backoff_left <= 0:
            return False
        self.backoff_left -= 1
        trainer, history = self.trainer, self.history
        scheduler_state, position, steps = start
        # every step this attempt made, also those a divergence dropped unrecorded (_flush)
        history.discarded_steps += self.scheduler.step_count - scheduler_state["step_count"]
        set_lr_scales(trainer.optimizer, [scale * BACKOFF_FACTOR for scale in scales])
        self.scheduler.load_state_dict(scheduler_state)  # rewrites the LR with the new scale
        if position is not None:
            trainer.train_loader.load_state_dict(position)
        for values in (history.step_losses, history.step_lrs, history.step_momenta):
            del values[steps:]
        self.smoother = self._new_smoother()
        note = (
            f"epoch {self.epoch + 1}: {history.message.split('; try')[0]}; restored the weights "
            f"of the epoch's start and continued at {BACKOFF_FACTOR:g}x the LR (now "
            f"{min(scales) * BACKOFF_FACTOR:.3g}x the plan's)"
        )
        history.notes.append(note)
        history.status, history.message = "running", ""
        if trainer.rank == 0:
            logger.warning(note)
        return True

    def _end_epoch(self) -> bool:
        """Validate, record and log the epoch; whether its validation loss is the best so far."""
        trainer, history, record = self.trainer, self.history, self.record
        if trainer.val_loader is not None:
            metrics = trainer.evaluate()
            record["val_loss"] = metrics["loss"]
            record |= {f"val_{k}": v for k, v in metrics.items() if k != "loss"}
        history.epochs.append(record)
        if self.epoch + 1 == self.epochs:
            history.status = "completed"
        if trainer.rank == 0:
            _log_epoch(record, self.epochs, self.progress.on)
        val_loss = record.get("val_loss", math.nan)
        improved = math.isfinite(val_loss) and val_loss < self.best_val_loss
        if improved:
            self.best_val_loss = val_loss  # before the payload: it holds the best so far
        return improved

    def _save_epoch(self, improved: bool) -> None:
        """Save the checkpoint (and best.pt when the epoch's validation loss is the best so far)
        with the callbacks' state after their epoch end."""
        trainer, history = self.trainer, self.history
        folder = trainer.run_folder
        if folder is None or not folder.writer:
            return
        loader = trainer.train_loader
        payload = build_payload(
            module=trainer.module,
            optimizer=trainer.optimizer,
            scheduler=self.scheduler,
            loader_state=loader.state_dict() if has_position(loader) else None,
            scaler=trainer.scaler,
            history=history,
            epochs=self.epochs,
            epochs_done=self.epoch + 1,
            best_val_loss=self.best_val_loss,
            then=trainer.then,
            settings=trainer.checkpoint_settings(),
        )
        if self.edge is not None:
            payload["edge"] = self.edge.state_dict()
            copies = self.edge.copies_state()  # before the edge: a resume restores the same
            if copies:
                payload["edge_copies"] = copies
        payload["backoff_left"] = self.backoff_left  # a resumed fit keeps what was left of it
        keeping = {
            key: callback
            for callback in trainer.callbacks
            if (key := getattr(callback, "checkpoint_key", None))
        }
        if keeping:  # callbacks whose state a resumed fit continues (`WeightAverage`'s mean)
            payload["callbacks"] = {key: cast(Any, c).state_dict() for key, c in keeping.items()}
            # by name, for a resume that is not given them (`Trainer.load_checkpoint` says so)
            payload["callback_names"] = {key: type(c).__name__ for key, c in keeping.items()}
        folder.save(CHECKPOINT, payload)
        if improved:  # best.pt is the epoch's weights: the search's copies are checkpoint.pt's
            folder.save(BEST, {k: v for k, v in payload.items() if k != "edge_copies"})
        folder.write_history(history)

    def _event(self, name: str, callbacks: list[Any] | None = None) -> None:
        for callback in self.trainer.callbacks if callbacks is None else callbacks:
            getattr(callback, name)(self)

    # ----------------------------------------------------------------- one epoch
    def _batches(self) -> Iterable[Any]:
        """The training batches of this epoch; in the fit's first epoch the first batch is
        checked against the model and loss before any step, without drawing an extra one."""
        trainer = self.trainer
        loader = trainer.train_loader
        batches: Iterable[Any] = loader
        if not (isinstance(loader, ArrayLoader) and trainer.batch_fn is None):
            # the one batch hook: pairs, dicts, or the user's batch_fn
            batch_fn = trainer.batch_fn
            batches = (split_batch(batch, batch_fn, "train_data") for batch in loader)
        if self._first_checked:
            return batches
        self._first_checked = True
        iterator: Iterator[Any] = iter(batches)
        first = next(iterator, None)
        if first is None:
            return ()
        trainer.check_batch(first[0], first[1])
        return itertools.chain([first], iterator)

    def _train_epoch(self) -> dict[str, float]:
        trainer, history, scheduler = self.trainer, self.history, self.scheduler
        model, optimizer, scaler = trainer.model, trainer.optimizer, trainer.scaler
        loss_fn, accumulation, autocast = (
            trainer.loss_fn,
            trainer.accumulation_steps,
            trainer.autocast,
        )
        max_grad_norm = trainer.max_grad_norm
        clipped = list(trainer.module.parameters()) if max_grad_norm is not None else None
        no_sync = cast(Any, model).no_sync if trainer.world_size > 1 and accumulation > 1 else None
        free = contextlib.nullcontext()
        scales = [group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        fixed_momenta = (
            [get_momentum(g) for g in optimizer.param_groups]
            if scheduler.plan.momentum is None
            else None
        )
        has_momentum = [momentum_key(g) is not None for g in optimizer.param_groups]
        single = len(scales) == 1 and scales[0] == 1.0 and has_momentum[0]
        step_lrs, step_momenta = history.step_lrs, history.step_momenta
        edge = self.edge if self.edge is not None and self.edge.searching else None
        before_batch, after_batch = self._before_batch, self._after_batch
        sync_every = trainer.sync_every
        batches = len(trainer.train_loader)
        progress = self.progress
        progress.start_epoch(self.epoch + 1, batches)
        pending: list[torch.Tensor] = []
        micro_losses: list[torch.Tensor] = []
        first_step = len(history.step_losses)
        samples = epoch_steps = 0
        start = time.perf_counter()
        model.train()
        loader = trainer.train_loader
        index = loader.batch_index if has_position(loader) else 0
        # dict inputs reach the model as keywords; outputs with logits are scored by them
        plain = isinstance(loader, ArrayLoader) and trainer.batch_fn is None
        call = type(model).__call__ if plain else forward
        # per-step work is kept to what the step needs: every microsecond shows on small models
        move = trainer.move_batch
        try:
            for inputs, targets in self._batches():
                if move is not None:
                    inputs, targets = move(inputs), move(targets)
                if before_batch and index % accumulation == 0:
                    for callback in before_batch:
                        callback.before_batch(self)
                index += 1
                samples += len(targets)
                stepping = index % accumulation == 0 or index == batches
                with no_sync() if no_sync is not None and not stepping else free:
                    with autocast:
                        loss = loss_fn(call(model, inputs), targets)
                    backward(scaler.scale(loss / accumulation if accumulation > 1 else loss))
                if not stepping:
                    micro_losses.append(loss.detach())
                    continue
                optimizer_step(optimizer, scaler, clipped, max_grad_norm)
                if micro_losses:
                    micro_losses.append(loss.detach())
                    step_loss = torch.stack(micro_losses).mean()
                    micro_losses = []
                else:
                    step_loss = loss.detach()
                lr, momentum = scheduler.last_lr, scheduler.last_momentum
                if single:  # the common case, without a list comprehension per step
                    step_lrs.append([lr])
                    step_momenta.append(fixed_momenta or [momentum])
                else:
                    step_lrs.append([lr * s for s in scales])
                    step_momenta.append(
                        fixed_momenta or [momentum if m else None for m in has_momentum]
                    )
                scheduler.step()
                epoch_steps += 1
                if edge is not None:
                    # the search reads every loss until its edge (one sync per step; the mean
                    # over the ranks, so that every rank finds the same edge), and answers a
                    # non-finite one itself: no divergence check until then
                    (value,) = self._read([step_loss])
                    history.step_losses.append(value)
                    if edge.observe(self, scheduler.step_count - 1, value):
                        found, edge = edge.edge or {}, None
                        if progress.on:  # the steps since the last shown, this one included
                            unshown = epoch_steps % sync_every or sync_every
                            progress.advance(
                                unshown * accumulation, scheduler.step_count, value, lr
                            )
                        self.smoother = self._new_smoother()
                        # a back-off later in this epoch starts from the edge, not the rise;
                        # unless a non-finite loss ended the rise and no copy came back: its
                        # update is in the weights, and the epoch's start is the last good
                        if math.isfinite(value) or found.get("restored_step") is not None:
                            self.edge_restart = (
                                self._epoch_start(),
                                TrainingSnapshot(trainer.module, optimizer, scaler, rng=False),
                            )
                        tell(f"fit_one_cycle: {history.notes[-1]}", logger)  # as a range test's
                    elif progress.on and epoch_steps % sync_every == 0:
                        progress.advance(sync_every * accumulation, scheduler.step_count, value, lr)
                else:
                    pending.append(step_loss)
                if after_batch:  # after the bookkeeping: a CancelEpoch here loses nothing
                    self.step, self.loss, self.lr = scheduler.step_count - 1, step_loss, lr
                    for callback in after_batch:
                        callback.after_batch(self)
                if len(pending) >= sync_every:
                    if not self._flush(pending):
                        break
                    pending = []
                    if progress.on:
                        step, loss_value = scheduler.step_count, history.step_losses[-1]
                        progress.advance(sync_every * accumulation, step, loss_value, lr)
        except CancelEpoch:
            if isinstance(loader, ArrayLoader) and loader.batch_index:  # the next epoch's order
                loader.load_state_dict(
                    {**loader.state_dict(), "epoch": loader.epoch + 1, "batch_index": 0}
                )
        except CancelFit:  # the steps made keep their losses, as they keep their LRs
            if pending and history.status != "diverged":
                self._flush(pending)
            raise
        except KeyboardInterrupt:  # the same: the losses not yet read (33 losses for 41 LRs)
            if pending and trainer.world_size == 1:  # no collective: other ranks may be gone
                history.step_losses.extend(loss.item() for loss in pending)
            elif pending:
                del history.step_lrs[len(history.step_losses) :]
                del history.step_momenta[len(history.step_losses) :]
            raise
        finally:
            progress.end_epoch()
        if pending and history.status != "diverged":
            self._flush(pending)
        seconds = time.perf_counter() - start
        losses, count = history.step_losses[first_step:], epoch_steps
        if self.edge is not None:  # the search answered a non-finite loss itself: not the epoch's
            losses = [v for v in losses if math.isfinite(v)]
            count = len(losses)
        train_loss = math.fsum(losses) / max(1, count)
        return {
            "epoch": float(self.epoch + 1),
            "train_loss": train_loss,
            "seconds": seconds,
            "samples_per_s": samples * trainer.world_size / seconds if seconds > 0 else math.nan,
            # the LR of the epoch's last step (the scheduler's is the next step's, already
            # written: an EarlyStopping-cut history showed an epoch above its peak LR)
            # (the last group's, as the plots show: with discriminative LRs the first group is
            # the lowest-LR body, a reviewer's check)
            "lr": float(history.step_lrs[-1][-1] if epoch_steps else scheduler.last_lr),
        }

    # ----------------------------------------------------------------- divergence
    def _read(self, pending: list[torch.Tensor]) -> list[float]:
        """The losses as numbers from the device: the mean over the ranks under DDP."""
        world_size = self.trainer.world_size
        if world_size > 1:
            stacked = torch.stack(pending).double()
            torch.distributed.all_reduce(stacked)
            values: list[float] = (stacked / world_size).tolist()
            return values
        if len(pending) == 1 or self.trainer.device.type == "cpu":
            return [loss.item() for loss in pending]  # no stacking: cheaper for a few values
        gathered: list[float] = torch.stack(pending).tolist()  # one wait for the GPU
        return gathered

    def _flush(self, pending: list[torch.Tensor]) -> bool:
        """Read pending losses from the device and check for divergence; False stops the epoch."""
        history = self.history
        for value in self._read(pending):
            history.step_losses.append(value)
            self.smoother.add(value)
            reason = self.smoother.divergence()
            if reason is not None:
                history.status = "diverged"
                history.message = self._divergence_message(len(history.step_losses) - 1, reason)
                # the steps made after the divergent one, before their losses were read, are
                # undone with it: their LRs leave the history, which follows the recorded losses
                del history.step_lrs[len(history.step_losses) :]
                del history.step_momenta[len(history.step_losses) :]
                return False
        return True

    def _divergence_message(self, step: int, what: str) -> str:
        lrs = self.history.step_lrs
        lr = lrs[step][-1] if step < len(lrs) else math.nan
        peak = self.scheduler.plan.max_lr or lr
        # below both the peak and the LR that diverged (which may be lower, early in the rise)
        lower = min(peak, lr) if math.isfinite(lr) else peak
        text = f"max_lr {peak:.3g} diverged at step {step} (lr {lr:.3g}): {what}; "
        last = self.trainer.last_range_test
        if last is not None and last.max_lr is not None:
            text += f"the range test suggested {last.max_lr:.3g}; "
        text += f"try a lower max_lr (e.g. {lower / 3:.3g}); the last good weights were restored"
        return text + self._data_hint(step, what)

    def _data_hint(self, step: int, what: str) -> str:
        """Where a loss no higher than twice its first turned non-finite in one step, on data
        not scanned whole (a Dataset, a loader: their first batch only), a NaN in that batch is
        as likely as the LR (a user's NaN target at step 11 was blamed on the LR at every LR)."""
        losses = self.history.step_losses
        before = losses[step - 1] if 0 < step <= len(losses) else math.nan
        first = self.smoother.first
        if (
            what != NON_FINITE
            or isinstance(self.trainer.train_loader, ArrayLoader)
            or not (math.isfinite(before) and math.isfinite(first) and before <= 2 * first)
        ):
            return ""
        return (
            f"; the loss was {before:.3g} one step before: a jump from there to NaN/inf is also "
            "what a NaN or inf in that batch's inputs or targets gives, at any LR (of data not "
            "in memory, only the first batch is checked)"
        )


def _log_epoch(record: dict[str, float], epochs: int, progress: bool) -> None:
    """The epoch's line: shown with the progress, a debug line when progress is off (the
    recipe's short runs: ``--verbose`` shows them)."""
    if not progress and not logger.isEnabledFor(logging.DEBUG):
        return  # nobody reads it: skip the formatting (short epochs pay for it)
    parts = [f"epoch {int(record['epoch'])}/{epochs}", f"train_loss {record['train_loss']:.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_")]
    parts.append(f"{record['samples_per_s']:.0f} samples/s")
    if progress:
        say(", ".join(parts))
    else:
        logger.debug(", ".join(parts))
