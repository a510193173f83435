# tasks/wordcount.py
from pathlib import Path

from launcher import Task, atomic_write


class WordCount(Task):
    def process(self, key, input, output):  # one item; raise to mark it failed
        n = len(Path(input).read_text(encoding="utf-8").split())
        with atomic_write(output, "w") as f:  # whole file or nothing, even on kill -9
            f.write(f"{n}\n")
