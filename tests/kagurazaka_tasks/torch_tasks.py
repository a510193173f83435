"""kagurazaka-style torch tasks: each process option and each bookkeeping option, and the template.

Every input file holds 4 numbers; a fixed Linear layer sums them and the task
writes the sum to ``<name>.sum``. The asserts check that batches arrive
collated as kagurazaka's DataLoader collates them.
"""

from __future__ import annotations

import argparse
import os

import torch
from kagurazaka import KagurazakaVanillaTorchTaskV1, moemoecue_torch_vanilla_v1
from kagurazaka.template.io import (
    FinishCheckByOutputFileExistence,
    InputByExts,
    NoHardShard,
    OutputByApendingExt,
)
from kagurazaka.template.mixin import KAGURAZAKA_MIXIN_PLACEHOLDER
from kagurazaka.template.task.torch_vanilla import KagurazakaVanillaTorchMixinV1
from torch.utils.data import DataLoader, Dataset, default_collate


def read(path: str) -> torch.Tensor:
    with open(path) as f:
        return torch.tensor([float(v) for v in f.read().split()])


def write(path: str, value: torch.Tensor) -> None:
    with open(path, "w") as f:
        f.write(f"{float(value):g}\n")


class Numbers(Dataset):
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.names = sorted(n for n in os.listdir(folder) if n.endswith(".txt"))

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        return {"name": self.names[i], "x": read(os.path.join(self.folder, self.names[i])), "i": i}


class SumModel(KagurazakaVanillaTorchTaskV1):
    """Shared parts: args, the model, the dataset."""

    def __init__(self, args: list[str]) -> None:
        parser = argparse.ArgumentParser()
        parser.add_argument("--input", required=True)
        parser.add_argument("--output", required=True)
        self.opts = parser.parse_args(args)
        os.makedirs(self.opts.output, exist_ok=True)

    def load_model(self, device) -> None:
        assert isinstance(device, str), "kagurazaka passes the device as a string"
        self.model = torch.nn.Linear(4, 1, bias=False).to(device)
        torch.nn.init.ones_(self.model.weight)

    def get_dataset(self) -> Dataset:
        return Numbers(self.opts.input)

    def out(self, name: str) -> str:
        return os.path.join(self.opts.output, name + ".sum")

    def is_each_executed(self, name: str, i, **kwargs) -> bool:
        assert isinstance(i, torch.Tensor) and i.dim() == 0, "an element of a collated int batch"
        return os.path.exists(self.out(name))

    def inference(self, device, batch_size, x, name, i, **kwargs):
        assert x.shape == (batch_size, 4) and len(name) == batch_size
        assert isinstance(i, torch.Tensor), "ints are collated into a tensor"
        return self.model(x.to(device))[:, 0]


class SumEach(SumModel):
    """Process option A (inference + postprocess_each), bookkeeping option A (is_each_executed)."""

    def postprocess_each(self, batch_idx, batch_size, name, result, i, **kwargs) -> None:
        assert isinstance(i, torch.Tensor) and 0 <= batch_idx < batch_size
        write(self.out(name), result)


def tagged_collate(samples: list[dict]) -> dict:
    return {**default_collate(samples), "tag": "collated by the task"}


class SumBatch(SumModel):
    """Process option B (inference + postprocess), bookkeeping option B (is_executed(batch));
    data from get_dataloader() with its own collate_fn."""

    def get_dataset(self) -> Dataset:
        raise AssertionError("only get_dataloader() is used")

    def get_dataloader(self) -> DataLoader:
        return DataLoader(Numbers(self.opts.input), batch_size=3, collate_fn=tagged_collate)

    def is_executed(self, batch) -> bool:
        assert batch["tag"] == "collated by the task"
        return all(os.path.exists(self.out(n)) for n in batch["name"])

    def postprocess(self, batch_size, results, name, tag, **batch) -> None:
        assert tag == "collated by the task" and len(results) == batch_size
        for n, value in zip(name, results, strict=True):
            write(self.out(n), value)


class SumStep(SumModel):
    """Process option C: the whole step."""

    def process(self, device, batch) -> None:
        for n, value in zip(batch["name"], self.model(batch["x"].to(device))[:, 0], strict=True):
            write(self.out(n), value)


@moemoecue_torch_vanilla_v1(
    hard_shard_mode=NoHardShard(
        input_path=KAGURAZAKA_MIXIN_PLACEHOLDER,
        output_path=KAGURAZAKA_MIXIN_PLACEHOLDER,
    ),
    input_mode=InputByExts(exts=[".txt"]),
    output_mode=OutputByApendingExt(ext=".sum"),
    finish_check_mode=FinishCheckByOutputFileExistence(),
    dataloader={"batch_size": 4},
)
class TemplateSum(KagurazakaVanillaTorchTaskV1, KagurazakaVanillaTorchMixinV1):
    """The template lists inputs, loads through load_data, names outputs and checks them."""

    def __init__(self, args: list[str]) -> None:
        pass

    def load_model(self, device) -> None:
        self.model = torch.nn.Linear(4, 1, bias=False).to(device)
        torch.nn.init.ones_(self.model.weight)

    def load_data(self, input, **kwargs) -> dict:
        return {"x": read(input.path)}

    def inference(self, device, batch_size, x, **kwargs):
        return self.model(x.to(device))[:, 0]

    def postprocess_each(self, batch_idx, batch_size, output, result, **kwargs) -> None:
        write(output.path, result)
