"""The range test of the Hugging Face front end probes the run it is for: the Trainer's own
gradient clipping (``max_grad_norm``, 1.0 by default) applies to the sweep's updates too."""

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from superconverge.huggingface import OneCycleTrainer, lr_find  # noqa: E402
from tests.huggingface.tiny import CountingBert, RandomIds, arguments, tiny_bert  # noqa: E402


class _GradientNorms:
    """A step pre-hook: the total gradient norm each optimizer update is about to apply."""

    def __init__(self):
        self.norms = []

    def __call__(self, optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([
            torch.linalg.vector_norm(g) for g in grads if g is not None
        ]))))  # fmt: skip


def test_lr_find_clips_the_gradients_as_the_trainer_will(tmp_path):
    # a user's check: TrainingArguments clip at max_grad_norm=1.0 by default, the sweep did not,
    # so it measured unclipped updates (with SGD on a clipped run, a 6x lower suggestion)
    model = tiny_bert()
    loader = torch.utils.data.DataLoader(RandomIds(), batch_size=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    norms = _GradientNorms()
    optimizer.register_step_pre_hook(norms)
    result = lr_find(
        model, loader, optimizer=optimizer, num_steps=12, end_lr=10.0, max_grad_norm=0.01
    )
    assert len(norms.norms) >= 10
    assert max(norms.norms) == pytest.approx(0.01, rel=1e-4)  # every update clipped to 0.01
    assert result.settings["max_grad_norm"] == 0.01
    unclipped = _GradientNorms()
    optimizer.register_step_pre_hook(unclipped)
    lr_find(model, loader, optimizer=optimizer, num_steps=12, end_lr=10.0)
    assert min(unclipped.norms) > 0.01  # the same sweep without clipping: larger updates


def test_one_cycle_trainer_sweeps_with_its_max_grad_norm(tmp_path):
    trainer = OneCycleTrainer(
        model=tiny_bert(), args=arguments(tmp_path, max_steps=4, max_grad_norm=0.5),
        train_dataset=RandomIds(), lr_find_settings={"num_steps": 10},
    )  # fmt: skip
    assert trainer.run_lr_find().settings["max_grad_norm"] == 0.5


def test_max_grad_norm_is_named():
    loader = torch.utils.data.DataLoader(RandomIds(), batch_size=8)
    with pytest.raises(ValueError, match="max_grad_norm must be a finite number >= 0 or None"):
        lr_find(tiny_bert(), loader, max_grad_norm=-1.0)


def _one_cycle_trainer(model, output_dir):
    return OneCycleTrainer(
        model=model, args=arguments(output_dir, max_steps=4, save_strategy="steps", save_steps=2),
        train_dataset=RandomIds(), lr_find_settings={"num_steps": 20, "end_lr": 10.0},
    )  # fmt: skip


def test_a_checkpoint_carries_its_range_test_into_another_output_dir(tmp_path):
    # a user's check: resume_from_checkpoint="run1/checkpoint-2" with output_dir "run2" ran a new
    # range test on the starting weights (the checkpoint loads after it): max_lr 0.0428 instead
    # of the first run's 0.0183, a different cycle, without a word
    first = _one_cycle_trainer(tiny_bert(), tmp_path / "run1")
    first.train()
    checkpoint = tmp_path / "run1" / "checkpoint-2"
    assert (checkpoint / "lr_find.json").is_file()
    (tmp_path / "run1" / "lr_find.json").unlink()  # only the checkpoint's copy is left
    CountingBert.calls = 0
    resumed = _one_cycle_trainer(tiny_bert(CountingBert), tmp_path / "run2")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.lr_find_result == first.lr_find_result
    assert CountingBert.calls == 2  # updates 3 and 4 only: no sweep
    assert resumed.lr_scheduler.plan.max_lr == first.lr_find_result.max_lr


def test_a_resume_without_its_range_test_says_so(tmp_path):
    first = _one_cycle_trainer(tiny_bert(), tmp_path / "run1")
    first.train()
    checkpoint = tmp_path / "run1" / "checkpoint-2"
    (checkpoint / "lr_find.json").unlink(missing_ok=True)
    (tmp_path / "run1" / "lr_find.json").unlink()
    again = _one_cycle_trainer(tiny_bert(), tmp_path / "run2")
    with pytest.warns(UserWarning, match=r"OneCycleTrainer: resuming from .*checkpoint-2 without"):
        again.train(resume_from_checkpoint=str(checkpoint))


def test_resume_true_with_no_checkpoint_is_refused_before_the_sweep(tmp_path):
    # it warned "resuming from None without its range test", swept, then the Trainer refused
    CountingBert.calls = 0
    trainer = _one_cycle_trainer(tiny_bert(CountingBert), tmp_path / "empty")
    with pytest.raises(ValueError, match=r"resume_from_checkpoint=True: no checkpoint-N folder"):
        trainer.train(resume_from_checkpoint=True)
    assert CountingBert.calls == 0
