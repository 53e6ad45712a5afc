"""A model that learns too slowly for the usual sweep to show it: 8,000 SST-2 phrases, a bag of
word embeddings, batch 16 (a user's run: tune chose SGD at max_lr 2e-07, where four short runs
ended at the same validation loss, and trained to chance; AdamW alone stopped with "found none")."""

from collections import Counter

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import superconverge as sc
from superconverge.tuning import RecipeSettings
from tests.huggingface.sst2 import read_split, sst2_dir


class Phrases(Dataset):
    def __init__(self, sentences, labels, vocabulary):
        self.ids = [
            torch.tensor([vocabulary.get(w, 0) for w in s.split()] or [0]) for s in sentences
        ]
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.ids[index], self.labels[index]


def collate(items):
    ids = [i for i, _ in items]
    offsets = torch.tensor([0] + [len(i) for i in ids[:-1]]).cumsum(0)
    return (torch.cat(ids), offsets), torch.tensor([label for _, label in items])


class Bag(nn.Module):
    def __init__(self, words):
        super().__init__()
        self.embedding = nn.EmbeddingBag(words, 32, mode="mean")
        self.head = nn.Linear(32, 2)

    def forward(self, batch):
        ids, offsets = batch
        return self.head(self.embedding(ids, offsets))


@pytest.mark.data
@pytest.mark.skipif(not sst2_dir().is_dir(), reason="SUPERCONVERGE_DATA has no sst2")
def test_a_family_whose_short_runs_do_not_learn_is_dropped_and_a_longer_sweep_finds_an_lr():
    torch.set_num_threads(1)
    sentences, labels = read_split("train", 8000)
    counts = Counter(w for s in sentences for w in s.split())
    vocabulary = {w: i + 1 for i, (w, c) in enumerate(counts.most_common()) if c >= 2}
    train = Phrases(sentences, labels, vocabulary)
    val = Phrases(*read_split("dev"), vocabulary)
    plan = sc.tune(
        lambda: Bag(len(vocabulary) + 1),
        train,
        val,
        epochs=2,
        collate_fn=collate,
        seed=0,
        settings=RecipeSettings(lr_search="short_runs"),
    )
    why = plan.evidence[1]["why"]
    assert "sgd dropped: its short runs did not learn: validation loss" in why, why
    assert "swept over 300 steps: no optimizer's shorter sweep found an LR" in why
    assert plan.optimizer == "adamw" and plan.max_lr > 1e-4
    # it learns: at chance (0.509 of dev is the majority class) it did not
    assert plan.results["final_val_accuracy"] > 0.6
