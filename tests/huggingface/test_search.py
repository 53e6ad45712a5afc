"""`OneCycleTrainer(max_lr="search")`: the cycle's rise as the range test, inside a Hugging Face
``Trainer``, on a tiny BERT (no data files)."""

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from superconverge.huggingface import OneCycleTrainer  # noqa: E402
from superconverge.training import EdgeSettings  # noqa: E402
from tests.huggingface.test_trainer import _Recorder  # noqa: E402
from tests.huggingface.tiny import RandomIds, arguments, tiny_bert  # noqa: E402
from tests.training.test_edge import observed_losses  # noqa: E402

# 64 samples at batch 8: 8 updates an epoch; 12 epochs: 96 updates, a rise of 29
DATA, EPOCHS = 64, 12


def _trainer(path, model, **kwargs):
    settings = {"num_train_epochs": EPOCHS, "learning_rate": 1e-3, **kwargs}
    return OneCycleTrainer(model=model, args=arguments(path, **settings),
                           train_dataset=RandomIds(DATA), max_lr="search")  # fmt: skip


def _recording(trainer):
    recorder, create = _Recorder(), trainer.create_optimizer

    def create_optimizer(*args, **kwargs):
        optimizer = create(*args, **kwargs)
        optimizer.register_step_pre_hook(recorder)
        return optimizer

    trainer.create_optimizer = create_optimizer
    return recorder


def test_the_rise_finds_its_edge_and_every_update_follows_the_plan(tmp_path):
    trainer = _trainer(tmp_path, tiny_bert())
    recorder = _recording(trainer)
    trainer.train()
    edge = trainer.lr_search
    assert edge is not None and edge["step"] < 29
    plan = trainer.lr_scheduler.plan
    assert plan.policy == "one_cycle_search" and plan.max_lr == edge["max_lr"]
    assert len(recorder.seen) == EPOCHS * 8
    for step, (lr, beta1) in enumerate(recorder.seen):
        assert lr == pytest.approx(plan.lr(step), rel=1e-9), step
        assert beta1 == pytest.approx(plan.momentum(step), rel=1e-9), step
    assert max(lr for lr, _ in recorder.seen[edge["step"] + 1 :]) <= edge["max_lr"] * (1 + 1e-9)
    assert trainer.search_history.notes and "LR search:" in trainer.search_history.notes[-1]
    assert not (tmp_path / "lr_find.json").exists()  # no range test before training


def test_a_resume_after_the_edge_ends_as_the_uninterrupted_run(tmp_path):
    full_model = tiny_bert()
    full = _trainer(tmp_path / "full", full_model, save_strategy="epoch")
    full.train()
    edge = full.lr_search
    assert edge is not None and edge["step"] < 48
    middle = tmp_path / "full" / "checkpoint-48"  # after 6 of 12 epochs, past the edge
    saved = torch.load(middle / "scheduler.pt", weights_only=True)
    assert saved["step_count"] == 48 and saved["search"]["edge"] == edge

    torch.manual_seed(123)
    resumed_model = tiny_bert()
    with torch.no_grad():  # other weights: all must come from the checkpoint
        for p in resumed_model.parameters():
            p.add_(0.1)
    resumed = _trainer(tmp_path / "resumed", resumed_model)
    resumed.train(resume_from_checkpoint=str(middle))
    assert resumed.lr_search == edge and resumed.lr_scheduler.plan == full.lr_scheduler.plan
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [({"max_lr": "serch"}, TypeError, r"max_lr must be .*'search'.*got 'serch'"),
     ({"max_lr": "search", "one_cycle_settings": {"warmup_fraction": 0.2}}, ValueError,
      r"leave one_cycle_settings unset"),
     ({"max_lr": "search", "lr_find_settings": {"num_steps": 50}}, ValueError,
      r"leave lr_find_settings unset"),
     ({"max_lr": 1e-3, "search": EdgeSettings()}, ValueError, r"search sets the constants"),
     ({"max_lr": "search", "search": {"divisor": 3}}, TypeError, r"EdgeSettings.*got dict")],
)  # fmt: skip
def test_bad_search_settings_are_named_when_the_trainer_is_built(tmp_path, settings, error,
                                                                 message):  # fmt: skip
    with pytest.raises(error, match=message):
        OneCycleTrainer(model=tiny_bert(), args=arguments(tmp_path), train_dataset=RandomIds(),
                        **settings)  # fmt: skip


def test_a_run_too_short_to_search_is_named_before_training(tmp_path):
    trainer = OneCycleTrainer(model=tiny_bert(), args=arguments(tmp_path, max_steps=3),
                              train_dataset=RandomIds(), max_lr="search")  # fmt: skip
    with pytest.raises(ValueError, match=r"at least 4 optimizer updates; the Trainer runs 3"):
        trainer.train()


def test_an_update_the_trainer_skipped_is_not_read_into_the_next(tmp_path, monkeypatch):
    import accelerate

    seen, calls = observed_losses(monkeypatch), [0]

    def skipped(self):  # fp16's scaler skips the step on an overflow: updates 3 and 4 here
        calls[0] += 1
        return calls[0] in (3, 4)

    monkeypatch.setattr(accelerate.Accelerator, "optimizer_step_was_skipped", property(skipped))
    trainer = _trainer(tmp_path, tiny_bert())
    trainer.train()
    assert trainer.lr_search is not None
    # 2 updates made no scheduler step: the plan's steps are 2 behind the Trainer's
    assert trainer.lr_scheduler.step_count == EPOCHS * 8 - 2
    # each loss read is one update's (about log 2 at the start), never two or three added up
    first = [loss for _, loss in seen[:8]]
    assert max(first) < 1.0, first


def test_with_accumulation_every_update_reads_the_mean_of_its_micro_batches(
    tmp_path, monkeypatch
):
    seen = observed_losses(monkeypatch)
    # 8 batches an epoch in updates of 3, 3 and 2: the last, shorter one is not read
    trainer = _trainer(tmp_path, tiny_bert(), gradient_accumulation_steps=3)
    trainer.train()
    assert trainer.lr_search is not None
    first = [loss for _, loss in seen[:4]]  # about log 2 each: one update's mean, alike
    assert max(first) < 1.0 and min(first) > 0.5, first
    assert [step for step, _ in seen[:4]] == [0, 1, 3, 4]  # updates 2 and 5 were the short ones


class _NoLossKwargs(torch.nn.Module):
    """A model whose forward takes no ``**kwargs``: the Trainer divides its loss by the
    update's count of micro-batches (a full update's and the short last one's differ)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.out = torch.nn.Embedding(100, 8), torch.nn.Linear(8, 2)

    def forward(self, input_ids=None, attention_mask=None, labels=None):
        logits = self.out(self.embed(input_ids).mean(1))
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def test_a_short_last_update_is_no_false_edge_when_the_trainer_scales_the_loss(
    tmp_path, monkeypatch
):
    # 9 batches an epoch in updates of 8 and 1: the short one read 8x a full one's loss, and
    # the rise ended at its first (before: max_lr 2e-4 where the same data without
    # accumulation found about 0.1)
    seen = observed_losses(monkeypatch)
    settings = {"num_train_epochs": 60, "gradient_accumulation_steps": 8}
    trainer = OneCycleTrainer(model=_NoLossKwargs(), args=arguments(tmp_path, **settings),
                              train_dataset=RandomIds(72), max_lr="search")  # fmt: skip
    trainer.train()
    edge = trainer.lr_search
    assert edge is not None and edge["max_lr"] > 0.01, edge
    first = [loss for _, loss in seen[:10]]
    assert max(first) < 1.5 * min(first), first


def test_the_plain_trainers_callback_says_where_the_search_is():
    from superconverge.huggingface import OneCycleCallback

    with pytest.raises(ValueError, match=r"use OneCycleTrainer\(max_lr='search'\)"):
        OneCycleCallback(max_lr="search")


def test_a_second_train_reports_only_its_own_search(tmp_path):
    trainer = _trainer(tmp_path, tiny_bert())
    trainer.train()
    first = list(trainer.search_history.notes)
    trainer.train()
    assert trainer.lr_search is not None and "LR search:" in trainer.search_history.notes[-1]
    assert not set(first) & set(trainer.search_history.notes)


def _saved_run(path, max_lr):
    trainer = OneCycleTrainer(
        model=tiny_bert(), args=arguments(path, num_train_epochs=4, save_strategy="epoch"),
        train_dataset=RandomIds(DATA), max_lr=max_lr,
    )  # fmt: skip
    trainer.train()
    return path / "checkpoint-8"


@pytest.mark.parametrize(
    ("saved", "asked", "message"),
    [(1e-3, "search",
      r"OneCycleTrainer\(max_lr='search'\) cannot resume from .*checkpoint-8: it was written by a "
      r"cycle at a fixed max_lr \(scheduler.pt holds only \{'step_count': 8\}\).*resume with the "
      r"first run's max_lr"),
     ("search", 1e-3,
      r"OneCycleTrainer\(max_lr=0.001\) cannot resume from .*checkpoint-8: it was written by a "
      r"max_lr='search' run \(scheduler.pt holds the search and its plan.*resume with "
      r"max_lr='search'"),
     ("search", None, r"OneCycleTrainer\(max_lr=None \(a range test\)\) cannot resume")],
    ids=["fixed-into-search", "search-into-fixed", "search-into-range-test"],
)  # fmt: skip
def test_a_checkpoint_of_the_other_kind_of_cycle_is_refused(tmp_path, saved, asked, message):
    # a user's check: a fixed max_lr run's checkpoint-80 resumed with max_lr="search" jumped the
    # rise to step 80: LR 10, then 1e9, the weights wrecked without a word
    checkpoint = _saved_run(tmp_path / "first", saved)
    trainer = OneCycleTrainer(
        model=tiny_bert(), args=arguments(tmp_path / "second", num_train_epochs=4),
        train_dataset=RandomIds(DATA), max_lr=asked,
    )  # fmt: skip
    trainer.run_lr_find = None  # refused before a range test would run
    with pytest.raises(ValueError, match=message):
        trainer.train(resume_from_checkpoint=str(checkpoint))
