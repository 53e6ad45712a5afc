"""SST-2 as in-memory tensors, and a small bag-of-words model for it (benchmarks only).

The files are GLUE's SST-2 (``train.tsv``: 67,349 phrases and sentences; ``dev.tsv``: 872
sentences, our validation split) and the labelled sentence-level SST test set (``test.tsv``:
1,821 sentences); see ``shared/data/README.md``. Text is already lower-cased and tokenised with
spaces, so a word is whatever lies between spaces.

Inputs are word ids padded with 0 to the longest sentence (capped at `max_words`); id 1 is a
word outside the vocabulary. The vocabulary is built from the training split only: the words
seen at least `min_count` times there.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

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


class BagOfWords(nn.Module):
    """fastText's shape (Joulin et al., arXiv:1607.01759): the mean of the word vectors of a
    sentence (padding left out), one hidden layer, then the classes."""

    def __init__(self, vocabulary_size: int, dim: int = 64, num_classes: int = 2) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocabulary_size, dim, mode="mean", padding_idx=PAD)
        self.hidden = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(self.embedding(ids))))
