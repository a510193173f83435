"""OmegaConf resolvers for our configs.

``${hash:...}`` names an output by the parameters that made it (gokart's idea:
``output_dir: outputs/thumbs-${hash:${.size},${.format}}`` writes to a new folder when
a parameter changes, instead of skipping items as already done).
``${launcher.samples:NAME}`` is the bundled sample data of an example task, wherever
the package is installed, so ``task=thumbnail`` runs from any directory.
A job writes the values behind a hash-named output folder into
``<folder>/params.json`` (:func:`hash_values`, then :func:`write_hash_params`), so a
folder says what made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from launcher import location
from launcher.io import write_json_atomic
from launcher.layout import params_file
from launcher.location import is_url

_HASH_CALL = re.compile(r"\$\{hash:(.*)\}")
_REFERENCE = re.compile(r"\$\{\.*([\w.]+)\}")


def config_hash(*values: Any) -> str:
    """A short, stable hex digest of config values (nodes are hashed by their content)."""
    plain = [
        OmegaConf.to_container(v, resolve=True) if isinstance(v, (DictConfig, ListConfig)) else v
        for v in values
    ]
    blob = json.dumps(plain, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def hash_values(cfg: DictConfig, node: str, key: str) -> list[Any] | None:
    """The values the ``${hash:...}`` of ``cfg[node][key]`` hashes, resolved where it
    stands (relative references too); None when its unresolved value calls no hash."""
    import copy

    from omegaconf import open_dict, read_write

    expression = OmegaConf.to_container(cfg[node], resolve=False).get(key)
    call = _HASH_CALL.search(expression) if isinstance(expression, str) else None
    if call is None:
        return None
    probe = copy.deepcopy(cfg)
    with read_write(probe), open_dict(probe):
        probe[node]["_hash_values"] = "${oc.create:[" + call.group(1) + "]}"
        values = OmegaConf.to_container(probe[node]["_hash_values"], resolve=True)
    return list(values)


def write_hash_params(output_dir: str, expression: Any, values: list[Any]) -> str | None:
    """Write ``params.json`` into the folder of ``output_dir`` (the resolved path) that
    ``values`` named (``expression`` is the config's unresolved value); return its path,
    or None when no folder of the path is their hash."""
    url = is_url(output_dir)
    scheme, sep, rest = output_dir.partition("://") if url else ("", "", output_dir)
    parts = Path(rest).parts
    digest = config_hash(*values)
    for depth, part in enumerate(parts, 1):
        if part != digest:
            continue
        call = _HASH_CALL.search(expression) if isinstance(expression, str) else None
        names = _REFERENCE.findall(call.group(1)) if call else []
        named = len(names) == len(values)
        record = {
            "hash": part,
            "output_dir": expression,
            "params": dict(zip(names, values, strict=True)) if named else values,
        }
        folder = f"{scheme}{sep}{'/'.join(parts[:depth])}" if url else os.path.join(*parts[:depth])
        location.makedirs(folder)
        path = params_file(folder)
        write_json_atomic(path, record)
        return path
    return None


def sample_dir(name: str) -> str:
    """The folder of an example task's bundled inputs, inside the installed package."""
    return str(Path(__file__).resolve().parent / "examples" / "samples" / name)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("hash"):
        OmegaConf.register_new_resolver("hash", config_hash)
    if not OmegaConf.has_resolver("launcher.samples"):
        OmegaConf.register_new_resolver("launcher.samples", sample_dir)
