"""Run by test_resume.py in a subprocess: train the digits MLP, maybe get killed, maybe resume.

usage: train_script.py OUT_DIR MODE [KILL_AT]
MODE: full (uninterrupted), kill (SIGKILL self at global step KILL_AT), kill-in-save (SIGKILL
while writing the second checkpoint), resume (continue from OUT_DIR/checkpoint.pt).
With TRAIN_DISCRIMINATIVE=1 in the environment the fit has the first param group frozen and
discriminative LRs over the others (one optimizer group per param group, as `fine_tune` trains);
with TRAIN_FINE_TUNE=1 it is `fine_tune` itself (2 frozen epochs, then 2 of all groups).
"""

import os
import signal
import sys
from pathlib import Path

import torch

from superconverge import _files as files_module
from superconverge.data import load
from superconverge.models import build
from superconverge.training import Callback, Trainer

EPOCHS = 4
DISCRIMINATIVE = bool(os.environ.get("TRAIN_DISCRIMINATIVE"))
FINE_TUNE = bool(os.environ.get("TRAIN_FINE_TUNE"))


class KillAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, step, loss):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    out, mode = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    splits = load("digits")
    torch.manual_seed(0)
    model = build("mlp", dropout=0.1)  # dropout: the RNG state must survive the restart too
    kwargs = {"batch_size": 32, "out_dir": out, "seed": 3, "overwrite": True, "progress": False}
    if mode == "resume":
        Trainer.resume(
            out / "checkpoint.pt",
            model,
            torch.nn.functional.cross_entropy,
            splits.train,
            splits.val,
            **kwargs,
        )
    else:
        callbacks = [KillAt(int(sys.argv[3]))] if mode == "kill" else []
        if mode == "kill-in-save":
            real_replace, calls = os.replace, {"n": 0}

            def replace_then_die(src, dst):
                calls["n"] += 1
                if calls["n"] == 2:  # the second checkpoint: its temp file is written, not renamed
                    os.kill(os.getpid(), signal.SIGKILL)
                real_replace(src, dst)

            files_module.os.replace = replace_then_die
        trainer = Trainer(
            model,
            torch.nn.functional.cross_entropy,
            splits.train,
            splits.val,
            callbacks=callbacks,
            **kwargs,
        )
        if FINE_TUNE:
            trainer.fine_tune(EPOCHS // 2, base_lr=0.05, freeze_epochs=EPOCHS // 2)
        elif DISCRIMINATIVE:
            trainer.freeze_to(1)
            trainer.fit_one_cycle(EPOCHS, (0.005, 0.05))
        else:
            trainer.fit_one_cycle(EPOCHS, 0.05)
    torch.save(model.state_dict(), out / "final_weights.pt")


if __name__ == "__main__":
    main()
