"""The pure helpers of benchmarks/contenders.py and benchmarks/_sst2.py: sample counting, step
counts, the warmup-cosine multiplier, AlgoPerf's NAdamW step, the tables' verdicts, SST-2 files."""

import json
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _sst2  # noqa: E402
import contenders  # noqa: E402


def test_counter_counts_training_forward_passes_only():
    counter = contenders.SampleCounter()
    model = contenders.CountingFactory(lambda: torch.nn.Linear(3, 2), 0, counter)()
    model(torch.zeros(5, 3)).sum().backward()  # training: counted
    with torch.no_grad():
        model(torch.zeros(7, 3))  # no gradients (an evaluation in train mode): not counted
    model.eval()
    model(torch.zeros(11, 3))  # eval mode: not counted
    assert counter.samples == 5


def test_factory_gives_every_contender_the_same_initial_weights():
    counter = contenders.SampleCounter()
    factory = contenders.CountingFactory(lambda: torch.nn.Linear(3, 2), 4, counter)
    assert torch.equal(factory().weight, factory().weight)


@pytest.mark.parametrize(
    ("samples", "size", "steps"),
    [(100, 100, 2), (300, 100, 6), (164, 100, 3), (1, 100, 1), (0, 100, 0), (64, 1000, 1)],
)
def test_steps_for_counts_partial_last_batches(samples, size, steps):
    # batch 64: an epoch of 100 samples is 2 steps (64 + 36); 64 more samples are 1 step
    assert contenders.BATCH == 64
    assert contenders._steps_for(samples, size) == steps


def test_warmup_cosine_multiplier_by_hand():
    factor = contenders._warmup_cosine(total_steps=10, warmup_fraction=0.2)  # 2 warmup steps
    assert [factor(s) for s in (0, 1)] == pytest.approx([0.5, 1.0])
    assert factor(2) == pytest.approx(1.0)  # the cosine starts at the peak
    assert factor(6) == pytest.approx(0.5)  # half-way through the 8 cosine steps
    assert factor(10) == pytest.approx(0.0)
    assert factor(50) == pytest.approx(0.0)  # holds past the end


def test_cosine_without_warmup_starts_at_the_peak():
    factor = contenders._warmup_cosine(total_steps=4, warmup_fraction=0.0)
    assert factor(0) == pytest.approx(1.0)  # the single "warmup" step is the peak itself


def test_nadamw_first_step_by_hand():
    # step 1: m = (1-b1) g, v = (1-b2) g^2; denom = |g|; Nesterov b1 m + (1-b1) g = (1-b1)(1+b1) g;
    # step size lr / (1-b1): the update is lr (1+b1) sign(g), after decay by (1 - lr wd)
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = contenders.NAdamW([p], lr=0.1, betas=(0.9, 0.99), eps=0.0, weight_decay=0.5)
    p.grad = torch.tensor([3.0, -0.5])
    optimizer.step()
    expected = torch.tensor([1.0, -2.0]) * (1 - 0.1 * 0.5) - 0.1 * 1.9 * torch.tensor([1.0, -1.0])
    assert torch.allclose(p.detach(), expected)


def _record(contender, seed, accuracy, samples, compute="equal-compute"):
    setup = contenders.DEFAULTS["digits"]
    return {"setup": setup.key(), "data": "digits", "seed": seed, "contender": contender,
            "compute": compute, "test": {"accuracy": accuracy}, "val": {"accuracy": accuracy},
            "samples": samples, "plain_samples": 100, "seconds": 1.0, "setting": "-"}  # fmt: skip


def test_summary_has_median_and_worst_over_seeds():
    records = [_record("adam", s, a, 100 * (s + 1)) for s, a in enumerate((0.9, 0.7, 0.8))]
    (row,) = contenders.summary_rows(records, contenders.DEFAULTS["digits"], "equal-compute")
    assert row[:6] == ["Adam defaults", "80.00", "70.00", "80.00", "200", "2.00"]
    assert contenders.summary_rows(records, contenders.DEFAULTS["digits"], "equal-epochs") == []


def test_verdicts_name_who_beats_the_recipe_and_the_grid_target():
    records = [_record("recipe", 0, 0.90, 400, "both"), _record("adam", 0, 0.92, 400),
               _record("prodigy", 0, 0.85, 400), _record("grid", 0, 0.902, 3200, "both")]  # fmt: skip
    # the recipe's own earlier or rejected variants are rows of the tables, never rivals
    records += [_record("recipe-fixed", 0, 0.95, 400, "both"),
                _record("recipe-reserve", 0, 0.96, 400, "both")]  # fmt: skip
    lines = contenders.verdicts(records, contenders.DEFAULTS["digits"])
    assert lines[0] == "- equal-compute: recipe median 90.00%; beaten by Adam defaults (+2.00)"
    rows = contenders.summary_rows(records, contenders.DEFAULTS["digits"], "equal-compute")
    assert [row[0] for row in rows][:3] == [
        "recipe (tune)",
        "recipe, final run of the epochs asked for (--exact-epochs)",
        "recipe, half the allowance held back for the final run (rejected)",
    ]
    assert "0.20 points below" in lines[1] and "0.12 of its compute: met" in lines[1]


def test_results_file_round_trip(tmp_path):
    path = tmp_path / "results.jsonl"
    assert contenders.read_results(path) == []
    path.write_text(json.dumps(_record("adam", 0, 0.5, 10)) + "\n\n")
    assert contenders.read_results(path)[0]["contender"] == "adam"


def test_missing_extras_stop_with_one_line(monkeypatch):
    monkeypatch.setattr(contenders, "_importable", lambda module: module != "optuna")
    with pytest.raises(SystemExit, match=r"^contenders.py needs optuna: pip install optuna$"):
        contenders.check_extras(["recipe", "optuna", "prodigy"])
    contenders.check_extras(["recipe", "adam"])  # nothing extra needed: no exit


def test_sst2_vocabulary_and_padding():
    vocabulary = _sst2.build_vocabulary([["b", "a", "b"], ["a", "c"], ["d"]], min_count=2)
    assert vocabulary == {"a": 2, "b": 3}  # ties in count: alphabetical
    ids = _sst2.encode([["a", "zz", "b"], []], vocabulary, max_words=2)
    assert ids.tolist() == [[2, 1], [0, 0]]  # cut at max_words; unknown 1; padding 0
    with pytest.raises(ValueError, match="min_count"):
        _sst2.build_vocabulary([], min_count=0)


def test_sst2_files_and_the_model(tmp_path):
    for name, rows in (("train", ["1\ta good film", "0\ta bad film", "1\tgood"]),
                       ("dev", ["1\tgood film"]), ("test", ["0\tbad", "1\tunseen words"])):  # fmt: skip
        (tmp_path / f"{name}.tsv").write_text("label\tsentence\n" + "\n".join(rows) + "\n")
    train, val, test, size = _sst2.load_sst2(tmp_path)
    assert size == 2 + 3  # a, film, good (seen twice); bad once
    assert train.targets.tolist() == [1, 0, 1] and len(val) == 1
    assert test.inputs.tolist() == [[1, 0], [1, 1]]
    logits = _sst2.BagOfWords(size, dim=4)(train.inputs)
    assert logits.shape == (3, 2) and bool(torch.isfinite(logits).all())
    # padding is left out of the mean: a sentence equals itself padded
    model = _sst2.BagOfWords(size, dim=4)
    assert torch.allclose(model(torch.tensor([[2, 3]])), model(torch.tensor([[2, 3, 0, 0]])))


def test_sst2_as_a_dataset_reads_the_same_files(tmp_path):
    for name, rows in (("train", ["1\tb a b", "0\ta c"]), ("dev", ["1\tb zz"]), ("test", ["0\t "])):
        (tmp_path / f"{name}.tsv").write_text("label\tsentence\n" + "\n".join(rows) + "\n")
    train, val, test, size = _sst2.load_sst2_dataset(tmp_path)
    assert size == 2 + 2 and len(train) == 2  # a and b seen twice; ids in alphabetical order
    assert train[0][0].tolist() == [3, 2, 3] and train[0][1] == 1
    assert val[0][0].tolist() == [3, 1] and test[0][0].tolist() == [1]  # unknown 1; empty: [1]
    ids, labels = _sst2.pad_collate([train[0], val[0]])
    assert ids.tolist() == [[3, 2, 3], [3, 1, 0]] and labels.tolist() == [1, 1]
    model = _sst2.BagOfWords(size, dim=4, hidden=False)  # the linear model of the Dataset runs
    assert model.hidden is None and model(ids).shape == (2, 2)


def test_sst2_bad_header(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nx\t1\n")
    with pytest.raises(ValueError, match="header"):
        _sst2.read_tsv(tmp_path / "train.tsv")
    with pytest.raises(FileNotFoundError, match=r"dev\.tsv"):
        _sst2.read_tsv(tmp_path / "dev.tsv")


def test_grid_spans_three_decades():
    assert len(contenders.GRID_LRS) == 8 and len(contenders.GRID_WEIGHT_DECAYS) == 4
    assert math.log10(contenders.GRID_LRS[-1] / contenders.GRID_LRS[0]) == pytest.approx(
        3, abs=0.01
    )


def test_optuna_short_trials_stay_within_the_budget_and_leave_one_full_run():
    pytest.importorskip("optuna")
    from superconverge.data import ArrayData

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(1200, 6, generator=generator)
    data = ArrayData(inputs, (inputs[:, 0] > 0).long())
    setup = contenders.Setup("digits", 2, "mlp", 0, 0)

    def build_model():
        return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))

    task = contenders.Task(setup, data, data.subset(torch.arange(60)), data, build_model, None)
    counter = contenders.SampleCounter()
    factory = contenders.CountingFactory(build_model, 0, counter)
    budget = 2 * task.plain_samples  # a full run: 2,400 samples; a short trial: 2 x 200 = 400
    result = contenders.run_optuna_short(task, factory, budget)
    assert counter.samples <= budget
    # as many trials as fit beside the final run: 2,400 / 400 = 6 (pruned ones cost less)
    trials = result["setting"].split("; ")[1]
    completed, pruned = int(trials.split()[0]), int(trials.split(", ")[1].split()[0])
    assert completed + pruned >= 6
    assert counter.samples >= task.plain_samples + 6 * 200  # the final run, and trials' epochs
    assert result["status"] == "completed" and 0.0 <= result["test"]["accuracy"] <= 1.0
