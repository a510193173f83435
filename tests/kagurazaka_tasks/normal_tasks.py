"""kagurazaka-style CPU tasks, written as a kagurazaka user would; run by its CLI and by ours."""

from __future__ import annotations

import argparse
import os

from kagurazaka import KagurazakaTask, moemoecue_normal
from kagurazaka.template.io import (
    FinishCheckByOutputFileExistence,
    InputByExts,
    NoHardShard,
    OutputByApendingExt,
    SoftShard,
)
from kagurazaka.template.mixin import KAGURAZAKA_MIXIN_PLACEHOLDER
from wordlib import count_words  # beside this file: found because its folder is on sys.path


def parse(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--label", default="words")
    return parser.parse_args(args)


class WordCount(KagurazakaTask):
    """A plain subclass: items, done check and processing are all its own."""

    def __init__(self, args: list[str]) -> None:
        self.opts = parse(args)

    def generate_tasks(self) -> list[dict]:
        names = sorted(os.listdir(self.opts.input))
        return [{"name": n, "path": os.path.join(self.opts.input, n)} for n in names]

    def out(self, name: str) -> str:
        return os.path.join(self.opts.output, name + ".count")

    def is_executed(self, name: str, **kwargs) -> bool:
        return os.path.exists(self.out(name))

    def process(self, name: str, path: str) -> None:
        os.makedirs(self.opts.output, exist_ok=True)
        with open(self.out(name), "w") as f:
            f.write(count_words(path, self.opts.label))


@moemoecue_normal(
    hard_shard_mode=NoHardShard(
        input_path=KAGURAZAKA_MIXIN_PLACEHOLDER,
        output_path=KAGURAZAKA_MIXIN_PLACEHOLDER,
    ),
    input_mode=InputByExts(exts=[".txt"]),
    output_mode=OutputByApendingExt(ext=".count"),
    finish_check_mode=FinishCheckByOutputFileExistence(),
)
class TemplateWordCount(KagurazakaTask):
    """The template lists the inputs, names the outputs and checks them; only process is left."""

    def __init__(self, args: list[str]) -> None:
        self.opts = parse(args)

    def process(self, input, output) -> None:
        with open(output.path, "w") as f:
            f.write(count_words(input.path, self.opts.label))


HERE = os.path.dirname(os.path.abspath(__file__))


@moemoecue_normal(
    hard_shard_mode=NoHardShard(input_path=HERE, output_path=os.path.join(HERE, "unused")),
    soft_shard=SoftShard(shard_idx=0, shard_num=2),
    input_mode=InputByExts(exts=[".py"]),
    mixin_mode=False,
)
class PresetShard(KagurazakaTask):
    """Patched at import (mixin_mode=False) with a soft shard of its own, which shard.* replaces."""

    def process(self, input) -> None:
        pass
