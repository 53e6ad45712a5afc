"""OneCycleCallback and an optimizer whose param groups have LRs of their own."""

import warnings

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from transformers import Trainer  # noqa: E402

from superconverge.huggingface import OneCycleCallback  # noqa: E402
from tests.huggingface.tiny import RandomIds, arguments, tiny_bert  # noqa: E402


def _groups(model, scales=None):
    body = {"params": model.bert.parameters(), "lr": 1e-5}
    head = {"params": model.classifier.parameters(), "lr": 1e-3}
    if scales is not None:
        body["lr_scale"], head["lr_scale"] = scales
    return torch.optim.AdamW([body, head])


def test_group_lrs_of_their_own_are_warned_about_and_lr_scale_keeps_them(tmp_path):
    # a user's check: optimizers=(AdamW with a body group at 1e-5 and a head group at 1e-3,
    # None) trained both groups at the plan's LR without a word
    model = tiny_bert()
    trainer = Trainer(
        model=model, args=arguments(tmp_path, max_steps=4), train_dataset=RandomIds(),
        optimizers=(_groups(model), None), callbacks=[OneCycleCallback(1e-3)],
    )  # fmt: skip
    with pytest.warns(UserWarning, match=r"OneCycleCallback: .* LRs of their own \(1e-05, 0.001\)"):
        trainer.train()
    model, callback = tiny_bert(), OneCycleCallback(1e-3)
    optimizer = _groups(model, scales=(0.01, 1.0))
    seen = []
    optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen.append([group["lr"] for group in opt.param_groups])
    )
    trainer = Trainer(
        model=model, args=arguments(tmp_path, max_steps=4), train_dataset=RandomIds(),
        optimizers=(optimizer, None), callbacks=[callback],
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    assert not [w for w in caught if "OneCycleCallback:" in str(w.message)]  # lr_scale says how
    plan = callback.plan
    assert seen == [pytest.approx([plan.lr(k) * 0.01, plan.lr(k)]) for k in range(4)]


def test_one_cycle_trainer_warns_about_group_lrs_of_their_own_too(tmp_path):
    from superconverge.huggingface import OneCycleTrainer

    model = tiny_bert()
    trainer = OneCycleTrainer(
        model=model, args=arguments(tmp_path, max_steps=4), train_dataset=RandomIds(),
        optimizers=(_groups(model), None), max_lr=1e-3,
    )  # fmt: skip
    with pytest.warns(UserWarning, match=r"OneCycleTrainer: .* LRs of their own \(1e-05, 0.001\)"):
        trainer.train()
