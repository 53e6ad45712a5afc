"""Run under torchrun (2 gloo processes): OneCycleTrainer's range test, then its cycle, on
scikit-learn's digits; each rank writes its max_lr and weights to ARGV[1]/rank<R>.json."""

import json
import os
import sys
from pathlib import Path

import torch
from transformers import TrainingArguments

from superconverge import data
from superconverge.huggingface import OneCycleTrainer


def main():
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    digits = data.load("digits")


    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(digits.train)

        def __getitem__(self, i):
            return {"x": digits.train.inputs[i].flatten(), "labels": digits.train.targets[i]}


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(64, 64), torch.nn.Linear(64, 10)

        def forward(self, x, labels=None):
            logits = self.b(torch.relu(self.a(x)))
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


    model = Net()
    args = TrainingArguments(output_dir=str(out / "hf"), per_device_train_batch_size=8,
                             num_train_epochs=2, use_cpu=True, report_to=[], save_strategy="no",
                             logging_strategy="no", disable_tqdm=True, seed=0, data_seed=0,
                             max_grad_norm=0.0)  # fmt: skip
    trainer = OneCycleTrainer(model=model, args=args, train_dataset=Pairs())
    trainer.train()
    rank = int(os.environ["RANK"])
    weights = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    (out / f"rank{rank}.json").write_text(json.dumps({
        "max_lr": trainer.lr_find_result.max_lr, "weights": weights}))  # fmt: skip


if __name__ == "__main__":
    main()
    if torch.distributed.is_initialized():  # gloo's threads left to the exit aborted a rank
        torch.distributed.destroy_process_group()
