"""A tiny BERT from a config and random token ids: Hugging Face tests that need no data files
and no downloads."""

import pytest
import torch

transformers = pytest.importorskip("transformers")  # a skip, not an error, where it is missing


class RandomIds(torch.utils.data.Dataset):
    """Dict samples as a Trainer's collator expects; the label is whether the first id is high."""

    def __init__(self, size=32, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(2, 50, (size, 8), generator=generator)
        self.labels = (self.ids[:, 0] > 25).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


class CountingBert(transformers.BertForSequenceClassification):
    calls = 0

    def forward(self, input_ids=None, labels=None, **kwargs):  # named: the Trainer keeps these
        type(self).calls += 1
        return super().forward(input_ids=input_ids, labels=labels, **kwargs)


def tiny_bert(cls=transformers.BertForSequenceClassification):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    return cls(config)


def arguments(path, **kwargs):
    settings = {
        "output_dir": str(path), "per_device_train_batch_size": 8, "report_to": [],
        "save_strategy": "no", "use_cpu": True, "disable_tqdm": True, "seed": 0, **kwargs,
    }  # fmt: skip
    return transformers.TrainingArguments(**settings)
