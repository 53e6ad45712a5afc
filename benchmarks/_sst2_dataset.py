"""SST-2 as a plain map-style `Dataset` of token ids, and a small EmbeddingBag classifier.

What a user with a text task brings: sentences read from ``sst2/*.tsv`` (train, dev, test),
a vocabulary of the training words seen at least twice (id 0 pads, id 1 is unknown), items of
``(token ids, label)`` of varying length and a collate function that pads them.
"""

from __future__ import annotations

import collections
import csv
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

PAD, UNKNOWN = 0, 1


def _read(path: Path) -> list[tuple[list[str], int]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        return [(sentence.split(), int(label)) for label, sentence in rows]


class Sentences(Dataset):
    """Item i: ``(token ids as int64, label)``; nothing but the ids lives in memory."""

    def __init__(self, rows: list[tuple[list[str], int]], vocab: dict[str, int]) -> None:
        self.ids = [
            torch.tensor([vocab.get(w, UNKNOWN) for w in words] or [UNKNOWN]) for words, _ in rows
        ]
        self.labels = [label for _, label in rows]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.ids[index], self.labels[index]


def pad_collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = nn.utils.rnn.pad_sequence([i for i, _ in items], batch_first=True, padding_value=PAD)
    return ids, torch.tensor([label for _, label in items])


def load_sst2(root: str | Path | None = None) -> tuple[Sentences, Sentences, Sentences, int]:
    """(train, val = GLUE dev, test = labelled SST test, vocabulary size)."""
    base = Path(root) if root is not None else Path(os.environ["SUPERCONVERGE_DATA"]) / "sst2"
    train, dev, test = (_read(base / f"{n}.tsv") for n in ("train", "dev", "test"))
    counts = collections.Counter(w for words, _ in train for w in words)
    vocab = {w: i + 2 for i, w in enumerate(sorted(w for w, c in counts.items() if c >= 2))}
    return Sentences(train, vocab), Sentences(dev, vocab), Sentences(test, vocab), len(vocab) + 2


class BagOfWords(nn.Module):
    """Mean of word embeddings (padding excluded), then a linear layer: fastText-sized."""

    def __init__(self, vocab_size: int, dim: int = 64, num_classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=PAD)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids))
