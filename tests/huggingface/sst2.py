"""SST-2 for the Hugging Face tests and measurements: a word-level vocabulary built from the
training split, fixed-length id tensors, and a tiny BERT (2 layers, hidden 64) from a config."""

import os
from collections import Counter
from pathlib import Path

import torch

PAD, UNKNOWN = 0, 1


def sst2_dir():
    return Path(os.environ.get("SUPERCONVERGE_DATA", "/work/shared/data")) / "sst2"


def read_split(name, limit=None):
    lines = (sst2_dir() / f"{name}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("\t") for line in lines[:limit]]
    return [sentence for _, sentence in rows], [int(label) for label, _ in rows]


def build_vocabulary(sentences, size=5000):
    counts = Counter(word for sentence in sentences for word in sentence.split())
    return {word: index + 2 for index, (word, _) in enumerate(counts.most_common(size - 2))}


class Sst2Dataset(torch.utils.data.Dataset):
    """Dict samples (input_ids, attention_mask, labels), as a Trainer's collator expects."""

    def __init__(self, sentences, labels, vocabulary, length=32):
        ids = torch.full((len(sentences), length), PAD, dtype=torch.long)
        for row, sentence in enumerate(sentences):
            words = [vocabulary.get(w, UNKNOWN) for w in sentence.split()][:length]
            ids[row, : len(words)] = torch.tensor(words, dtype=torch.long)
        self.ids, self.labels = ids, torch.tensor(labels, dtype=torch.long)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        ids = self.ids[index]
        return {
            "input_ids": ids,
            "attention_mask": (ids != PAD).long(),
            "labels": self.labels[index],
        }


def tiny_bert(vocab_size, seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def datasets(train_size=2048, val_size=None, vocab_size=5000):
    sentences, labels = read_split("train")
    vocabulary = build_vocabulary(sentences, vocab_size)
    train = Sst2Dataset(sentences[:train_size], labels[:train_size], vocabulary)
    val_sentences, val_labels = read_split("dev", val_size)
    return train, Sst2Dataset(val_sentences, val_labels, vocabulary), vocab_size


def training_arguments(path, **kwargs):
    """The tests' `TrainingArguments`: 2 epochs of batch 16 on the CPU, a log line a step, no
    checkpoints, no reporting; `kwargs` override."""
    from transformers import TrainingArguments

    settings = {
        "output_dir": str(path), "num_train_epochs": 2, "per_device_train_batch_size": 16,
        "report_to": [], "logging_steps": 1, "save_strategy": "no", "use_cpu": True,
        "disable_tqdm": True, "seed": 0, **kwargs,
    }  # fmt: skip
    return TrainingArguments(**settings)
