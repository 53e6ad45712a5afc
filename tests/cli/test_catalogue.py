"""The CLI's contract, one row per user mistake: the exit status (2 a bad flag or value, 1 a run
that failed), one line on stderr naming the flag (or argument), no traceback, and nothing in
the folder changed: no file written, none overwritten.

Rows run `main` in-process and almost all fail before any training (digits and tiny files only).
"""

import errno
import gzip
import json
import os
import shlex

import pytest

from superconverge.cli.main import main
from tests.cli.plans import DIGITS_PLAN

GOOD_PLAN = DIGITS_PLAN
GOOD_HISTORY = {
    "status": "completed",
    "epochs": [{"epoch": 1.0, "train_loss": 1.0, "val_loss": "nan"}],
    "step_losses": [2.0, 1.0],
    "step_lrs": [[0.01], [0.1]],
    "step_momenta": [[0.95], [0.85]],
}
GOOD_RANGE_TEST = {
    "lrs": [0.001, 0.01, 0.1],
    "losses": [2.3, 2.0, 9.0],
    "smoothed_losses": [2.3, 2.1, 4.0],
    "stop_reason": "end",
    "suggestions": {"minimum": 0.001},
    "max_lr": 0.001,
    "min_lr": 0.0001,
    "rule": "minimum",
    "reason": "minimum/10",
}
EVIL_MODULE = """
import pathlib

def run():
    pathlib.Path(__file__).with_name("ran.txt").write_text("the plan ran my code")

def data():
    run()
"""


def _plan(tmp_path, **changes):
    plan = {**GOOD_PLAN, **changes}
    plan = {key: value for key, value in plan.items() if value != "<drop>"}
    (tmp_path / "plan.json").write_text(json.dumps(plan))


def _text(name, text):
    def setup(tmp_path):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return setup


def _folder(name):
    return lambda tmp_path: (tmp_path / name).mkdir(parents=True)


def _evil_plan(**fields):
    def setup(tmp_path):
        (tmp_path / "evil_plan_code.py").write_text(EVIL_MODULE)
        _plan(tmp_path, **fields)

    return setup


def _idx(header_shape, payload):
    header = bytes([0, 0, 8, len(header_shape)]) + b"".join(
        size.to_bytes(4, "big") for size in header_shape
    )
    return gzip.compress(header + payload)


def _mnist(bad_file):
    """An MNIST folder whose training images are `bad_file` (bytes)."""

    def setup(tmp_path):
        root = tmp_path / "mnist"
        root.mkdir()
        (root / "train-images-idx3-ubyte.gz").write_bytes(bad_file)
        (root / "train-labels-idx1-ubyte.gz").write_bytes(_idx((10,), bytes(10)))
        (root / "t10k-images-idx3-ubyte.gz").write_bytes(_idx((2, 28, 28), bytes(2 * 784)))
        (root / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx((2,), bytes(2)))

    return setup


def _run_folder(**files):
    """A tune run folder with valid-looking JSON files, some replaced by `files`."""

    def setup(tmp_path):
        run = tmp_path / "run"
        run.mkdir()
        contents = {
            "plan.json": json.dumps(GOOD_PLAN),
            "history.json": json.dumps(GOOD_HISTORY),
            "range_tests.json": json.dumps({}),
        }
        contents.update({name.replace("_json", ".json"): text for name, text in files.items()})
        for name, text in contents.items():
            (run / name).write_text(text)

    return setup


def _full_disk(monkeypatch):
    def fsync(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)


SCHEDULE = "schedule one-cycle --total-steps 100 --max-lr 0.1 --out {tmp}/s.png"
LR_FIND = "lr-find --out {tmp}/lr"
TUNE = "tune --out {tmp}/tune"
FIT = "fit --plan {tmp}/plan.json --out {tmp}/refit"
DEEP = "[" * 100_000 + "]" * 100_000

# (arguments, exit status, text the one line must hold: it names the flag, setup)
CASES = {
    # --- schedule -------------------------------------------------------------------------
    # flags that would change nothing are refused (a user's check: each was accepted, exit 0)
    "schedule-base-lr-for-one-cycle": (
        f"{SCHEDULE} --base-lr 0.01", 2, "--base-lr applies to the cyclic policy, not one-cycle",
        None,
    ),
    "schedule-warmup-for-smith": (
        "schedule smith --total-steps 100 --max-lr 0.1 --warmup-fraction 0.5 --out {tmp}/s.png",
        2, "--warmup-fraction applies to the one-cycle, fastai policies, not smith", None,
    ),
    "schedule-momentum-and-no-momentum": (
        f"{SCHEDULE} --no-momentum --momentum 0.9 0.8", 2,
        "--momentum has no effect with --no-momentum", None,
    ),
    "schedule-boundary-past-the-end": (
        "schedule piecewise --total-steps 100 --values 0.1 0.01 --boundaries 150 --out {tmp}/s.png",
        2, "--boundaries 150 at or past --total-steps 100", None,
    ),
    "schedule-negative-max-lr": (f"{SCHEDULE} --max-lr -1", 2, "--max-lr must be > 0", None),
    "schedule-zero-max-lr": (f"{SCHEDULE} --max-lr 0", 2, "--max-lr must be > 0", None),
    "schedule-nan-max-lr": (f"{SCHEDULE} --max-lr nan", 2, "--max-lr must be a finite", None),
    "schedule-inf-max-lr": (f"{SCHEDULE} --max-lr inf", 2, "--max-lr must be a finite", None),
    "schedule-word-max-lr": (f"{SCHEDULE} --max-lr fast", 2, "--max-lr: invalid float", None),
    "schedule-word-steps": (f"{SCHEDULE} --total-steps many", 2, "--total-steps: invalid", None),
    "schedule-float-steps": (f"{SCHEDULE} --total-steps 1e9", 2, "--total-steps: invalid", None),
    "schedule-huge-steps": (
        f"{SCHEDULE} --total-steps 1000000000",
        2,
        "--total-steps must be <= 1000000",
        None,
    ),
    "schedule-one-step": (f"{SCHEDULE} --total-steps 1", 2, "--total-steps must be >= 2", None),
    "schedule-negative-steps": (f"{SCHEDULE} --total-steps -5", 2, "--total-steps must be", None),
    "schedule-no-steps": ("schedule one-cycle --max-lr 0.1", 2, "--total-steps", None),
    "schedule-no-max-lr": (
        "schedule one-cycle --total-steps 100 --out {tmp}/s.png",
        2,
        "--max-lr is required",
        None,
    ),
    "schedule-warmup-above-1": (f"{SCHEDULE} --warmup-fraction 1.5", 2, "--warmup-fraction", None),
    "schedule-warmup-zero": (f"{SCHEDULE} --warmup-fraction 0", 2, "--warmup-fraction", None),
    "schedule-momentum-upside-down": (
        f"{SCHEDULE} --momentum 0.8 0.9",
        2,
        "--momentum must be (high, low)",
        None,
    ),
    "schedule-momentum-above-1": (f"{SCHEDULE} --momentum 1.5 0.5", 2, "--momentum", None),
    "schedule-momentum-one-value": (f"{SCHEDULE} --momentum 0.9", 2, "--momentum", None),
    "schedule-min-above-max": (f"{SCHEDULE} --min-lr 1", 2, "--min-lr", None),
    "schedule-negative-final": (f"{SCHEDULE} --final-lr -1", 2, "--final-lr", None),
    "schedule-bad-shape": (f"{SCHEDULE} --shape spiral", 2, "--shape: invalid choice", None),
    "schedule-bad-policy": ("schedule spiral --total-steps 10", 2, "policy: invalid choice", None),
    "schedule-annihilation-above-1": (
        "schedule smith --total-steps 100 --max-lr 0.1 --annihilation-fraction 1.5 "
        "--out {tmp}/s.png",
        2,
        "--annihilation-fraction",
        None,
    ),
    "schedule-cyclic-no-base": (
        "schedule cyclic --total-steps 100 --max-lr 0.1 --step-size 5 --out {tmp}/s.png",
        2,
        "--base-lr is required",
        None,
    ),
    "schedule-cyclic-no-step-size": (
        "schedule cyclic --total-steps 100 --max-lr 0.1 --base-lr 0.01 --out {tmp}/s.png",
        2,
        "--step-size is required",
        None,
    ),
    "schedule-cyclic-zero-step-size": (
        "schedule cyclic --total-steps 100 --max-lr 0.1 --base-lr 0.01 --step-size 0 "
        "--out {tmp}/s.png",
        2,
        "--step-size",
        None,
    ),
    "schedule-cyclic-base-above-max": (
        "schedule cyclic --total-steps 100 --max-lr 0.1 --base-lr 0.2 --step-size 5 "
        "--out {tmp}/s.png",
        2,
        "--base-lr must be <= --max-lr (0.1), got 0.2",
        None,
    ),
    "schedule-cyclic-negative-gamma": (
        "schedule cyclic --total-steps 100 --max-lr 0.1 --base-lr 0.01 --step-size 5 "
        "--mode exp_range --gamma -1 --out {tmp}/s.png",
        2,
        "--gamma",
        None,
    ),
    "schedule-cyclic-bad-mode": (
        "schedule cyclic --total-steps 100 --max-lr 0.1 --base-lr 0.01 --step-size 5 "
        "--mode sawtooth",
        2,
        "--mode: invalid choice",
        None,
    ),
    "schedule-piecewise-no-values": (
        "schedule piecewise --total-steps 100 --out {tmp}/s.png",
        2,
        "--values is required",
        None,
    ),
    "schedule-piecewise-negative-value": (
        "schedule piecewise --total-steps 100 --values -1 --out {tmp}/s.png",
        2,
        "--values",
        None,
    ),
    "schedule-piecewise-boundary-count": (
        "schedule piecewise --total-steps 100 --values 0.1 0.01 --boundaries 10 20 "
        "--out {tmp}/s.png",
        2,
        "--values must hold one more entry than boundaries",
        None,
    ),
    "schedule-piecewise-word-boundary": (
        "schedule piecewise --total-steps 100 --values 0.1 0.01 --boundaries half",
        2,
        "--boundaries: invalid int",
        None,
    ),
    "schedule-jpg": (
        "schedule one-cycle --total-steps 100 --max-lr 0.1 --out {tmp}/s.jpg",
        2,
        "--out must end in one of .png",
        None,
    ),
    "schedule-out-exists": (SCHEDULE, 2, "--out", _text("s.png", "keep me")),
    "schedule-out-is-a-folder": (SCHEDULE, 2, "--out", _folder("s.png")),
    "schedule-out-under-dev-null": (
        "schedule one-cycle --total-steps 100 --max-lr 0.1 --out /dev/null/x/s.png",
        2,
        "--out /dev/null/x/s.png: cannot create the folder",
        None,
    ),
    "schedule-out-under-a-file": (
        "schedule one-cycle --total-steps 100 --max-lr 0.1 --out {tmp}/notes.txt/s.png",
        2,
        "--out",
        _text("notes.txt", "a file"),
    ),
    "schedule-disk-full": (
        SCHEDULE,
        1,
        "no space left on device while writing {tmp}/s.png; free some space or choose another --out",
        "full-disk",
    ),
    "schedule-typo-flag": (
        f"{SCHEDULE} --max-lrr 0.1",
        2,
        "unrecognized arguments: --max-lrr",
        None,
    ),
    "schedule-typo-policy": ("schedule onecycle --total-steps 9", 2, "policy: invalid", None),
    # --- lr-find --------------------------------------------------------------------------
    "lr-find-zero-batch": (f"{LR_FIND} --batch-size 0", 2, "--batch-size must be >= 1", None),
    "lr-find-steps-per-epoch-of-a-stream": (  # was taken: the same sweep either way
        f"{LR_FIND} --data tests.cli.entry_data:streams --model tests.cli.entry_data:regressor "
        "--loss mse --steps-per-epoch 5",
        2,
        "--steps-per-epoch 5 changes nothing in a range test",
        None,
    ),
    "lr-find-huge-batch": (f"{LR_FIND} --batch-size 100000", 2, "--batch-size must be <=", None),
    "lr-find-word-batch": (f"{LR_FIND} --batch-size big", 2, "--batch-size: invalid int", None),
    "lr-find-few-steps": (f"{LR_FIND} --num-steps 5", 2, "--num-steps must be", None),
    "lr-find-zero-steps": (f"{LR_FIND} --num-steps 0", 2, "--num-steps must be", None),
    "lr-find-start-above-end": (
        f"{LR_FIND} --start-lr 1 --end-lr 0.1",
        2,
        "--start-lr must be < --end-lr",
        None,
    ),
    "lr-find-zero-start": (f"{LR_FIND} --start-lr 0", 2, "--start-lr", None),
    "lr-find-negative-end": (f"{LR_FIND} --end-lr -1", 2, "--end-lr", None),
    "lr-find-zero-repeats": (f"{LR_FIND} --repeats 0", 2, "--repeats must be", None),
    "lr-find-negative-seed": (f"{LR_FIND} --seed -1", 2, "--seed must be in", None),
    "lr-find-huge-seed": (f"{LR_FIND} --seed 99999999999", 2, "--seed must be in", None),
    "lr-find-model-wrong-shape": (f"{LR_FIND} --model resnet9", 2, "--model resnet9 needs", None),
    "lr-find-unknown-model": (f"{LR_FIND} --model vgg", 2, "--model must be one of mlp", None),
    "lr-find-unknown-data": (f"{LR_FIND} --data imagenet", 2, "--data must be one of digits", None),
    "lr-find-width-for-mlp": (f"{LR_FIND} --width 0.5", 2, "--width applies to", None),
    "lr-find-data-dir-for-digits": (
        f"{LR_FIND} --data-dir {{tmp}}",
        2,
        "--data-dir applies to the data sets read from files; digits is built in",
        None,
    ),
    "lr-find-data-dir-missing": (
        f"{LR_FIND} --data mnist --data-dir {{tmp}}/nowhere",
        2,
        "--data-dir",
        None,
    ),
    "lr-find-data-dir-empty": (
        f"{LR_FIND} --data mnist --data-dir {{tmp}}/empty",
        2,
        "--data-dir: train-images-idx3-ubyte.gz not found",
        _folder("empty"),
    ),
    "lr-find-gzip-bomb": (
        f"{LR_FIND} --data mnist --data-dir {{tmp}}/mnist",
        1,
        "train-images-idx3-ubyte.gz: has trailing bytes",
        _mnist(_idx((10, 28, 28), bytes(1 << 24))),
    ),
    "lr-find-idx-declares-more": (
        f"{LR_FIND} --data mnist --data-dir {{tmp}}/mnist",
        1,
        "train-images-idx3-ubyte.gz: truncated",
        _mnist(_idx((60000, 28, 28), bytes(784))),
    ),
    "lr-find-idx-not-idx": (
        f"{LR_FIND} --data mnist --data-dir {{tmp}}/mnist",
        1,
        "not an IDX file",
        _mnist(b"PK\x03\x04 a zip file"),
    ),
    "lr-find-idx-corrupt-gzip": (
        f"{LR_FIND} --data mnist --data-dir {{tmp}}/mnist",
        1,
        "corrupt or truncated gzip",
        _mnist(_idx((10, 28, 28), bytes(7840))[:40]),
    ),
    "lr-find-out-is-a-file": (LR_FIND, 2, "--out", _text("lr", "a file")),
    "lr-find-out-under-dev-null": (
        "lr-find --out /dev/null/x",
        2,
        "--out /dev/null/x: cannot create",
        None,
    ),
    "lr-find-out-holds-results": (
        LR_FIND,
        2,
        "pass --force",
        _text("lr/lr_find.json", "precious"),
    ),
    "lr-find-unknown-optimizer": (f"{LR_FIND} --optimizer lion", 2, "--optimizer", None),
    "lr-find-unknown-rule": (f"{LR_FIND} --rule guess", 2, "--rule: invalid choice", None),
    "lr-find-unknown-policy": (f"{LR_FIND} --policy linear", 2, "--policy: invalid", None),
    "lr-find-typo-flag": (f"{LR_FIND} --num-step 50 --bach-size 3", 2, "--bach-size", None),
    # --- tune -----------------------------------------------------------------------------
    "tune-zero-epochs": (f"{TUNE} --epochs 0", 2, "--epochs must be >= 1", None),
    "tune-study-name-without-a-study": (  # was taken and ignored: a plain run, exit 0
        f"{TUNE} --study-name mine",
        2,
        "--study-name mine names a study in --study URL or --join URL",
        None,
    ),
    "tune-negative-epochs": (f"{TUNE} --epochs -1", 2, "--epochs must be >= 1", None),
    "tune-word-epochs": (f"{TUNE} --epochs three", 2, "--epochs: invalid int", None),
    "tune-word-batch": (f"{TUNE} --batch-size big", 2, "--batch-size must be 'auto'", None),
    "tune-zero-batch": (f"{TUNE} --batch-size 0", 2, "--batch-size must be >= 1", None),
    "tune-huge-batch": (f"{TUNE} --batch-size 100000", 2, "--batch-size must be <=", None),
    "tune-unknown-model": (f"{TUNE} --model vgg", 2, "--model must be one of", None),
    "tune-model-wrong-shape": (f"{TUNE} --model mnist-cnn", 2, "--model mnist-cnn needs", None),
    "tune-model-returns-a-string": (
        f"{TUNE} --model tests.cli.entry:not_a_model",
        2,
        "--model tests.cli.entry:not_a_model must return a torch.nn.Module, got str",
        None,
    ),
    "tune-model-needs-arguments": (
        f"{TUNE} --model tests.cli.entry:needs_arguments",
        2,
        "--model tests.cli.entry:needs_arguments: the function must take no arguments",
        None,
    ),
    "tune-model-raises": (
        f"{TUNE} --model tests.cli.entry:raises",
        1,
        "--model tests.cli.entry:raises raised RuntimeError",
        None,
    ),
    # an entry point that exits ended superconverge silently: status 0 for sys.exit(0)
    "tune-model-exits": (
        f"{TUNE} --model tests.cli.entry:exits",
        1,
        "--model tests.cli.entry:exits called sys.exit(0) instead of returning; fix that function",
        None,
    ),
    "tune-data-exits-as-argparse": (
        f"{TUNE} --data tests.cli.entry:exits_as_argparse",
        1,
        "--data tests.cli.entry:exits_as_argparse called sys.exit(2) instead of returning (an "
        "argparse parser in it?); fix that function",
        None,
    ),
    "tune-data-module-exits-on-import": (
        f"{TUNE} --data exits_on_import:splits",
        1,
        "--data exits_on_import:splits: importing exits_on_import called sys.exit(4) (a "
        "script's top level runs on import: guard it with if __name__ == '__main__':)",
        _text("exits_on_import.py", "import sys\nsys.exit(4)\n"),
    ),
    "tune-data-module-with-a-syntax-error": (  # was exit 1, "raised SyntaxError"
        f"{TUNE} --data typo_mod:splits",
        2,
        "--data typo_mod:splits: typo_mod has a syntax error (invalid syntax; ",
        _text("typo_mod.py", "def splits(:\n    pass\n"),
    ),
    "tune-data-module-missing-a-dependency": (  # was "cannot import needs_dep (...; looked in
        # the current folder and the installed packages)": it was found there
        f"{TUNE} --data needs_dep:splits",
        2,
        "--data needs_dep:splits: importing needs_dep failed: it imports no_such_dep_zz, which "
        "is not installed here",
        _text("needs_dep.py", "import no_such_dep_zz\n"),
    ),
    "tune-model-no-module": (f"{TUNE} --model nosuch_mod:f", 2, "--model nosuch_mod:f", None),
    "tune-model-no-function": (f"{TUNE} --model os:nosuch", 2, "--model os:nosuch", None),
    "tune-model-not-callable": (f"{TUNE} --model os:sep", 2, "--model os:sep", None),
    "tune-model-colon-only": (f"{TUNE} --model :", 2, "--model must be a name or", None),
    "tune-unknown-data": (f"{TUNE} --data imagenet", 2, "--data must be one of", None),
    "tune-data-not-splits": (
        f"{TUNE} --data tests.cli.entry:not_data_splits",
        2,
        "--data tests.cli.entry:not_data_splits must return superconverge.data.DataSplits",
        None,
    ),
    "tune-data-needs-arguments": (
        f"{TUNE} --data tests.cli.entry:needs_arguments",
        2,
        "--data tests.cli.entry:needs_arguments: the function must take no arguments",
        None,
    ),
    "tune-data-raises": (f"{TUNE} --data tests.cli.entry:raises", 1, "--data", None),
    "tune-data-no-validation": (
        f"{TUNE} --data tests.cli.entry:no_validation",
        2,
        "--data gives no validation split",
        None,
    ),
    "tune-data-dir-for-digits": (
        f"{TUNE} --data-dir {{tmp}}",
        2,
        "--data-dir applies to the data sets read from files",
        None,
    ),
    "tune-data-dir-for-entry-point": (
        f"{TUNE} --data tests.cli.entry:tiny_digits --data-dir {{tmp}}",
        2,
        "--data-dir applies to the data sets read from files, not --data",
        None,
    ),
    "tune-data-dir-missing": (
        f"{TUNE} --data fashion-mnist --data-dir {{tmp}}/nowhere",
        2,
        "--data-dir",
        None,
    ),
    "tune-gzip-bomb": (
        f"{TUNE} --data mnist --data-dir {{tmp}}/mnist",
        1,
        "has trailing bytes",
        _mnist(_idx((10, 28, 28), bytes(1 << 24))),
    ),
    "tune-width-for-default-mlp": (f"{TUNE} --width 0.5", 2, "--width applies to", None),
    "tune-width-for-entry-point": (
        f"{TUNE} --width 0.5 --model tests.cli.entry:small_mlp",
        2,
        "--width applies to the built-in models",
        None,
    ),
    "tune-negative-weight-decay": (f"{TUNE} --weight-decays -1", 2, "--weight-decays", None),
    "tune-nan-weight-decay": (f"{TUNE} --weight-decays nan", 2, "--weight-decays", None),
    "tune-zero-workers": (f"{TUNE} --workers 0", 2, "--workers must be", None),
    "tune-negative-seed": (f"{TUNE} --seed -1", 2, "--seed must be in", None),
    "tune-out-is-a-file": (TUNE, 2, "--out", _text("tune", "a file")),
    "tune-out-under-dev-null": ("tune --out /dev/null/x", 2, "--out /dev/null/x", None),
    "tune-out-not-empty": (TUNE, 2, "pass --force", _text("tune/report.html", "keep")),
    "tune-typo-flag": (f"{TUNE} --epocs 3", 2, "unrecognized arguments: --epocs", None),
    # --- fit: the plan is untrusted input ---------------------------------------------------
    "fit-no-plan-flag": ("fit", 2, "--plan", None),
    "fit-plan-missing": (FIT, 2, "--plan", None),
    "fit-plan-is-a-folder": (FIT, 2, "is not a file", _folder("plan.json")),
    "fit-plan-not-json": (FIT, 2, "--plan", _text("plan.json", "epochs: 3")),
    "fit-plan-empty": (FIT, 2, "is not valid JSON", _text("plan.json", "")),
    "fit-plan-binary": (FIT, 2, "--plan", _text("plan.json", "\x00\x01")),
    "fit-plan-deeply-nested": (FIT, 2, "nested too deeply", _text("plan.json", DEEP)),
    "fit-plan-a-list": (FIT, 2, "must hold a JSON object, got list", _text("plan.json", "[1]")),
    "fit-plan-unknown-key": (
        FIT,
        2,
        "unknown plan settings: ['epoch']",
        lambda tmp_path: _plan(tmp_path, epoch=3),
    ),
    "fit-plan-missing-key": (
        FIT,
        2,
        "plan.json: not a tune plan: max_lr missing",
        lambda tmp_path: _plan(tmp_path, max_lr="<drop>"),
    ),
    # a hand-edited data_options or loss: num_workers -3 failed in the loader (exit 1), an
    # unknown key was ignored, a plan's loss was blamed on a --loss flag nobody gave
    "fit-plan-data-options-num-workers": (
        FIT,
        2,
        "--plan {tmp}/plan.json: data_options num_workers must be an integer >= 0, got -3",
        lambda tmp_path: _plan(tmp_path, data_options={"num_workers": -3}),
    ),
    # a reviewer's check: a device that is no device was accepted and copied
    "fit-plan-data-options-device": (
        FIT,
        2,
        "--plan {tmp}/plan.json: data_options device must be auto, cpu, cuda or cuda:N, got "
        "'evilmod:f'",
        lambda tmp_path: _plan(tmp_path, data_options={"device": "evilmod:f"}),
    ),
    "fit-plan-data-options-unknown-key": (
        FIT,
        2,
        "--plan {tmp}/plan.json: unknown data_options: ['num_worker']",
        lambda tmp_path: _plan(tmp_path, data_options={"num_worker": 2}),
    ),
    "fit-plan-loss-unknown": (
        FIT,
        2,
        "--plan {tmp}/plan.json: loss must be one of cross_entropy, mse,",
        lambda tmp_path: _plan(tmp_path, loss="hinge"),
    ),
    "fit-plan-metric-unknown": (
        FIT,
        2,
        "--plan {tmp}/plan.json: metrics must be one of accuracy,",
        lambda tmp_path: _plan(tmp_path, data_options={"metrics": ["f7"]}),
    ),
    "fit-plan-metrics-a-string": (  # was read letter by letter: ":" refused as code to run
        FIT,
        2,
        "--plan {tmp}/plan.json: data_options metrics must be a list of metric names or null, "
        "got 'mine:f1'",
        lambda tmp_path: _plan(tmp_path, data_options={"metrics": "mine:f1"}),
    ),
    # refused before --force moved the run in --out aside (it was left in refit/previous-*/)
    "fit-force-with-a-bad-plan-moves-nothing": (
        f"{FIT} --force",
        2,
        "--plan {tmp}/plan.json: data_options precision must be one of auto, 32, bf16, fp16",
        lambda tmp_path: (
            _plan(tmp_path, data_options={"precision": "fp8"}),
            _text("refit/plan.json", json.dumps(GOOD_PLAN))(tmp_path),
            _text("refit/history.json", json.dumps(GOOD_HISTORY))(tmp_path),
        ),
    ),
    "fit-plan-epochs-a-string": (
        FIT,
        2,
        "field epochs must be int, got '3'",
        lambda tmp_path: _plan(tmp_path, epochs="3"),
    ),
    "fit-plan-epochs-a-float": (
        FIT,
        2,
        "field epochs must be",
        lambda tmp_path: _plan(tmp_path, epochs=2.5),
    ),
    "fit-plan-epochs-a-bool": (
        FIT,
        2,
        "field epochs must be",
        lambda tmp_path: _plan(tmp_path, epochs=True),
    ),
    "fit-plan-max-lr-a-word": (
        FIT,
        2,
        "field max_lr must be",
        lambda tmp_path: _plan(tmp_path, max_lr="fast"),
    ),
    "fit-plan-momentum-a-word": (
        FIT,
        2,
        "field momentum must be",
        lambda tmp_path: _plan(tmp_path, momentum="high"),
    ),
    "fit-plan-momentum-three": (
        FIT,
        2,
        "field momentum must be",
        lambda tmp_path: _plan(tmp_path, momentum=[0.9, 0.8, 0.7]),
    ),
    "fit-plan-unknown-optimizer": (
        FIT,
        2,
        "plan.json: optimizer must be one of 'sgd', 'adam', 'adamw', 'nadamw', got 'adamx'",
        lambda tmp_path: _plan(tmp_path, optimizer="adamx"),
    ),
    "fit-plan-options-a-list": (
        FIT,
        2,
        "field model_options must be",
        lambda tmp_path: _plan(tmp_path, model_options=[1, 2]),
    ),
    "fit-plan-data-a-number": (
        FIT,
        2,
        "field data must be",
        lambda tmp_path: _plan(tmp_path, data=5),
    ),
    "fit-plan-evidence-a-string": (
        FIT,
        2,
        "field evidence must be",
        lambda tmp_path: _plan(tmp_path, evidence="trust me"),
    ),
    "fit-plan-model-os-system": (
        FIT,
        2,
        "--plan {tmp}/plan.json names code to run (--model os:system)",
        lambda tmp_path: _plan(tmp_path, model="os:system"),
    ),
    "fit-plan-model-beside-the-plan": (
        FIT,
        2,
        "--trust-plan-code",
        _evil_plan(model="evil_plan_code:run"),
    ),
    "fit-plan-data-beside-the-plan": (
        FIT,
        2,
        "(--data evil_plan_code:data)",
        _evil_plan(data="evil_plan_code:data"),
    ),
    "fit-plan-both-entry-points": (
        FIT,
        2,
        "(--model evil_plan_code:run --data evil_plan_code:data)",
        _evil_plan(data="evil_plan_code:data", model="evil_plan_code:run"),
    ),
    "fit-trusted-plan-os-system-needs-arguments": (
        f"{FIT} --trust-plan-code",
        2,
        "--plan {tmp}/plan.json: model os:system: the function must take no arguments",
        lambda tmp_path: _plan(tmp_path, model="os:system"),
    ),
    "fit-plan-from-the-python-api": (
        FIT,
        2,
        "names no data/model to rebuild",
        lambda tmp_path: _plan(tmp_path, data=None, model=None),
    ),
    "fit-plan-data-not-built-in": (
        FIT,
        2,
        "names data 'tiny-digits', which is no built-in data set; pass --data",
        lambda tmp_path: _plan(tmp_path, data="tiny-digits"),
    ),
    "fit-plan-unknown-model": (
        FIT,
        2,
        "model must be one of",
        lambda tmp_path: _plan(tmp_path, model="vgg"),
    ),
    "fit-plan-model-wrong-shape": (
        FIT,
        2,
        "model resnet9 needs 3x32x32 inputs",
        lambda tmp_path: _plan(tmp_path, model="resnet9", model_options={}),
    ),
    "fit-plan-unknown-model-option": (
        FIT,
        2,
        "model_options {'depth': 3} do not build mlp",
        lambda tmp_path: _plan(tmp_path, model_options={"depth": 3}),
    ),
    "fit-plan-model-option-wrong-type": (
        FIT,
        2,
        "do not build mlp",
        lambda tmp_path: _plan(tmp_path, model_options={"hidden": "wide"}),
    ),
    "fit-plan-huge-batch": (
        FIT,
        2,
        "batch_size 100000 is more than the",
        lambda tmp_path: _plan(tmp_path, batch_size=100_000),
    ),
    "fit-plan-negative-seed": (
        FIT,
        2,
        "--plan {tmp}/plan.json: seed must be in",
        lambda tmp_path: _plan(tmp_path, seed=-1),
    ),
    "fit-plan-zero-epochs": (
        FIT,
        2,
        "--plan {tmp}/plan.json: epochs",
        lambda tmp_path: _plan(tmp_path, epochs=0),
    ),
    "fit-plan-negative-max-lr": (
        FIT,
        2,
        "--plan {tmp}/plan.json: max_lr",
        lambda tmp_path: _plan(tmp_path, max_lr=-1.0),
    ),
    "fit-unknown-data": (f"{FIT} --data imagenet", 2, "--data must be one of", _plan),
    "fit-data-dir-for-digits": (f"{FIT} --data-dir {{tmp}}", 2, "--data-dir applies", _plan),
    "fit-model-returns-a-string": (
        f"{FIT} --model tests.cli.entry:not_a_model",
        2,
        "--model tests.cli.entry:not_a_model must return a torch.nn.Module",
        _plan,
    ),
    "fit-out-is-a-file": (
        FIT,
        2,
        "--out",
        lambda tmp_path: (_plan(tmp_path), _text("refit", "x")(tmp_path)),
    ),
    "fit-out-not-empty": (
        FIT,
        2,
        "pass --force",
        lambda tmp_path: (_plan(tmp_path), _text("refit/plan.json", "keep")(tmp_path)),
    ),
    # --- report ----------------------------------------------------------------------------
    "report-no-folder": ("report", 2, "folder", None),
    "report-folder-missing": (
        "report {tmp}/nowhere",
        2,
        "FOLDER {tmp}/nowhere is not a folder",
        None,
    ),
    "report-folder-is-a-file": ("report {tmp}/run", 2, "FOLDER", _text("run", "x")),
    "report-folder-empty": ("report {tmp}/run", 2, "plan.json, history.json", _folder("run")),
    "report-plan-not-json": (
        "report {tmp}/run",
        2,
        "FOLDER {tmp}/run/plan.json is not valid JSON (line 1",
        _run_folder(plan_json="{"),
    ),
    "report-history-not-json": (
        "report {tmp}/run",
        2,
        "FOLDER {tmp}/run/history.json is not valid JSON",
        _run_folder(history_json="nan?"),
    ),
    "report-range-tests-deeply-nested": (
        "report {tmp}/run",
        2,
        "range_tests.json is nested too deeply",
        _run_folder(range_tests_json=DEEP),
    ),
    "report-plan-missing-key": (
        "report {tmp}/run",
        2,
        "holds a run that cannot be read (plan.json: not a tune plan: max_lr missing)",
        _run_folder(plan_json=json.dumps({k: v for k, v in GOOD_PLAN.items() if k != "max_lr"})),
    ),
    "report-plan-epochs-a-string": (
        "report {tmp}/run",
        2,
        "(plan.json: field epochs must be int, got '3')",
        _run_folder(plan_json=json.dumps({**GOOD_PLAN, "epochs": "3"})),
    ),
    "report-history-a-list": (
        "report {tmp}/run",
        2,
        "(history.json: a history is a JSON object, got list)",
        _run_folder(history_json="[1, 2]"),
    ),
    "report-history-val-loss-a-string": (
        "report {tmp}/run",
        2,
        "(history.json: field epochs[0]['val_loss'] must be float, got 'x')",
        _run_folder(history_json=json.dumps({**GOOD_HISTORY, "epochs": [{"val_loss": "x"}]})),
    ),
    "report-history-without-epochs": (
        "report {tmp}/run",
        2,
        "(history.json: not a history: epochs missing)",
        _run_folder(
            history_json=json.dumps({k: v for k, v in GOOD_HISTORY.items() if k != "epochs"})
        ),
    ),
    "report-range-test-lrs-a-string": (
        "report {tmp}/run",
        2,
        "(range_tests.json: field lrs must be tuple[float, ...], got 'oops')",
        _run_folder(range_tests_json=json.dumps({"lr_find": {**GOOD_RANGE_TEST, "lrs": "oops"}})),
    ),
    "report-plan-unknown-key": (
        "report {tmp}/run",
        2,
        "cannot be read",
        _run_folder(plan_json=json.dumps({**GOOD_PLAN, "lr": 1})),
    ),
    # the parts of results, compute and evidence the report takes apart: each was an
    # AttributeError / KeyError / TypeError (exit 1)
    "report-plan-test-results-a-list": (
        "report {tmp}/run",
        2,
        "(plan.json: field results.test must be dict[str, float | null], got [1])",
        _run_folder(plan_json=json.dumps({**GOOD_PLAN, "results": {"test": [1]}})),
    ),
    "report-plan-verdict-kind-a-number": (
        "report {tmp}/run",
        2,
        "(plan.json: field results.verdict.kind must be str, got 3)",
        _run_folder(plan_json=json.dumps({**GOOD_PLAN, "results": {"verdict": {"kind": 3}}})),
    ),
    "report-plan-weight-average-a-number": (
        "report {tmp}/run",
        2,
        "(plan.json: field results.weight_average must be dict[str, Any] | null, got 5)",
        _run_folder(plan_json=json.dumps({**GOOD_PLAN, "results": {"weight_average": 5}})),
    ),
    "report-plan-compute-cut": (
        "report {tmp}/run",
        2,
        "(plan.json: not a tune plan: compute.search_samples, compute.final_run_samples, "
        "compute.x_final_run missing)",
        _run_folder(plan_json=json.dumps({**GOOD_PLAN, "compute": {"budget": 2.0}})),
    ),
    "report-plan-step-seconds-a-string": (
        "report {tmp}/run",
        2,
        "(plan.json: field evidence[0].seconds must be float, got '1s')",
        _run_folder(
            plan_json=json.dumps({**GOOD_PLAN, "evidence": [{"step": "lr", "seconds": "1s"}]})
        ),
    ),
    # --- reproduce -------------------------------------------------------------------------
    "reproduce-unknown": ("reproduce imagenet --out {tmp}/r", 2, "NAME must be one of", None),
    "reproduce-zero-seeds": ("reproduce mnist-clr --seeds 0 --out {tmp}/r", 2, "--seeds", None),
    "reproduce-word-seeds": ("reproduce mnist-clr --seeds many", 2, "--seeds: invalid int", None),
    "reproduce-data-dir-missing": (
        "reproduce mnist-clr --data-dir {tmp}/nowhere --out {tmp}/r",
        2,
        "--data-dir {tmp}/nowhere is not a folder",
        None,
    ),
    "reproduce-out-is-a-file": ("reproduce mnist-clr --out {tmp}/r", 2, "--out", _text("r", "x")),
    "reproduce-out-not-empty": (
        "reproduce mnist-clr --out {tmp}/r",
        2,
        "pass --force",
        _text("r/results.md", "keep"),
    ),
    # --- the command itself ----------------------------------------------------------------
    "unknown-command": ("tunee --epochs 1", 2, "invalid choice: 'tunee'", None),
    "debug-before-a-usage-error": (f"--debug {TUNE} --epochs 0", 2, "--epochs", None),
    "debug-after-a-usage-error": (f"{TUNE} --epochs 0 --debug", 2, "--epochs", None),
}


def _snapshot(folder):
    return {
        path.relative_to(folder): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(("arguments", "status", "expected", "setup"), CASES.values(), ids=CASES)
def test_a_mistake_is_one_line_naming_the_flag(
    tmp_path, monkeypatch, capsys, arguments, status, expected, setup
):
    monkeypatch.chdir(tmp_path)  # a module beside plan.json is importable, as for `python -m`
    monkeypatch.syspath_prepend(str(tmp_path))
    if setup == "full-disk":
        _full_disk(monkeypatch)
    elif setup is not None:
        setup(tmp_path)
    before = _snapshot(tmp_path)
    argv = [part.replace("{tmp}", str(tmp_path)) for part in shlex.split(arguments)]

    assert main(argv) == status
    captured = capsys.readouterr()
    if status == 2:  # a usage error is its one line: no run header before it on stdout
        assert captured.out == "", captured.out
    error = captured.err
    assert "Traceback" not in error
    # one error line; a warning on the way (e.g. a damaged file's md5) is one "warning:" line each
    lines = error.strip().splitlines()
    assert len([line for line in lines if not line.startswith("warning: ")]) == 1, error
    assert expected.replace("{tmp}", str(tmp_path)) in error
    after = _snapshot(tmp_path)
    assert {path for path in after if not str(path).startswith("__pycache__")} == set(before)
    assert all(after[path] == content for path, content in before.items())  # nothing overwritten
    assert not (tmp_path / "ran.txt").exists()  # no code a plan named has run


def test_the_catalogue_covers_every_subcommand():
    commands = {arguments.split()[0] for arguments, *_ in CASES.values()}
    assert {"schedule", "lr-find", "tune", "fit", "report", "reproduce"} <= commands
    assert len(CASES) >= 100
