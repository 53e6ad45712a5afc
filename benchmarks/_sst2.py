"""SST-2 for the benchmarks, read one way and served two ways, and a small bag-of-words model.

The files are GLUE's SST-2 (``train.tsv``: 67,349 phrases and sentences; ``dev.tsv``: 872
sentences, our validation split) and the labelled sentence-level SST test set (``test.tsv``:
1,821 sentences); see ``shared/data/README.md``. Text is already lower-cased and tokenised with
spaces, so a word is whatever lies between spaces. `read_tsv` reads them all.

- `load_sst2`: in-memory tensors (``contenders.py``): word ids padded with 0 to the longest
  sentence (capped at `max_words`).
- `load_sst2_dataset`: what a user with a text task brings (``data_kinds.py``,
  ``adamw_weight_decay.py``): a map-style `Dataset` of ``(token ids, label)`` items of varying
  length and `pad_collate`, which pads them.

Id 1 is a word outside the vocabulary; the vocabulary is built from the training split only:
the words seen at least `min_count` times there.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from superconverge.data import ArrayData

PAD, UNKNOWN = 0, 1
MAX_WORDS = 64  # the longest SST-2 sentence has 56 words; longer text would be cut here


def read_tsv(path: Path) -> tuple[list[list[str]], list[int]]:
    """Sentences (as word lists) and labels of one SST-2 file with a ``label<TAB>sentence``
    header."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found in {path.parent} (SST-2, GLUE's split)")
    words, labels = [], []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header[:2] != ["label", "sentence"]:
            raise ValueError(f"{path}: expected the header 'label<TAB>sentence', got {header!r}")
        for row in reader:
            labels.append(int(row[0]))
            words.append(row[1].split())
    return words, labels


def build_vocabulary(sentences: Sequence[Sequence[str]], min_count: int = 2) -> dict[str, int]:
    """Word -> id for the words seen at least `min_count` times, most frequent first (ties in
    alphabetical order); ids start at 2 (0 pads, 1 is an unknown word).

    Example:
        >>> build_vocabulary([["a", "b", "a"], ["c", "b"]], min_count=2)
        {'a': 2, 'b': 3}
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count!r}")
    counts = Counter(word for sentence in sentences for word in sentence)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return {word: index + 2 for index, word in enumerate(kept)}


def encode(
    sentences: Sequence[Sequence[str]], vocabulary: dict[str, int], max_words: int = MAX_WORDS
) -> torch.Tensor:
    """Word ids, one row per sentence, padded with 0 to the longest (at most `max_words`).

    Example:
        >>> encode([["a", "x"], ["b"]], {"a": 2, "b": 3}).tolist()
        [[2, 1], [3, 0]]
    """
    width = max(1, min(max_words, max((len(s) for s in sentences), default=1)))
    ids = torch.full((len(sentences), width), PAD, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        codes = [vocabulary.get(word, UNKNOWN) for word in sentence[:width]]
        if codes:
            ids[row, : len(codes)] = torch.tensor(codes, dtype=torch.long)
    return ids


def load_sst2(root: Path, min_count: int = 2) -> tuple[ArrayData, ArrayData, ArrayData, int]:
    """Train (GLUE train), validation (GLUE dev), test (SST sentence-level test) and the size
    of the vocabulary (ids included)."""
    train_words, train_labels = read_tsv(root / "train.tsv")
    vocabulary = build_vocabulary(train_words, min_count)
    splits = []
    for words, labels in (
        (train_words, train_labels),
        read_tsv(root / "dev.tsv"),
        read_tsv(root / "test.tsv"),
    ):
        splits.append(ArrayData(encode(words, vocabulary), torch.tensor(labels, dtype=torch.long)))
    return splits[0], splits[1], splits[2], len(vocabulary) + 2


class Sentences(Dataset):
    """Item i: ``(token ids as int64, label)``; nothing but the ids lives in memory (an empty
    sentence is one unknown word)."""

    def __init__(
        self, words: Sequence[Sequence[str]], labels: Sequence[int], vocabulary: dict[str, int]
    ) -> None:
        self.ids = [
            torch.tensor([vocabulary.get(w, UNKNOWN) for w in sentence] or [UNKNOWN])
            for sentence in words
        ]
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.ids[index], self.labels[index]


def pad_collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = nn.utils.rnn.pad_sequence([i for i, _ in items], batch_first=True, padding_value=PAD)
    return ids, torch.tensor([label for _, label in items])


def load_sst2_dataset(
    root: str | Path | None = None,
) -> tuple[Sentences, Sentences, Sentences, int]:
    """(train, val = GLUE dev, test = labelled SST test, vocabulary size) as `Sentences`;
    `root` defaults to ``$SUPERCONVERGE_DATA/sst2``. Ids follow the words' alphabetical order
    (the order the recorded ``data_kinds.py`` and ``adamw_weight_decay.py`` runs used)."""
    base = Path(root) if root is not None else Path(os.environ["SUPERCONVERGE_DATA"]) / "sst2"
    train, dev, test = (read_tsv(base / f"{n}.tsv") for n in ("train", "dev", "test"))
    vocabulary = {w: i + 2 for i, w in enumerate(sorted(build_vocabulary(train[0])))}
    splits = [Sentences(words, labels, vocabulary) for words, labels in (train, dev, test)]
    return splits[0], splits[1], splits[2], len(vocabulary) + 2


class BagOfWords(nn.Module):
    """fastText's shape (Joulin et al., arXiv:1607.01759): the mean of the word vectors of a
    sentence (padding left out), one hidden layer (none with ``hidden=False``: a linear model
    of the mean, as ``data_kinds.py`` and ``adamw_weight_decay.py`` train), then the classes."""

    def __init__(
        self, vocabulary_size: int, dim: int = 64, num_classes: int = 2, *, hidden: bool = True
    ) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocabulary_size, dim, mode="mean", padding_idx=PAD)
        self.hidden = nn.Linear(dim, dim) if hidden else None
        self.out = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mean = self.embedding(ids)
        if self.hidden is not None:
            mean = torch.relu(self.hidden(mean))
        return self.out(mean)
