"""OmegaConf resolvers for our configs.

``${hash:...}`` names an output by the parameters that made it (gokart's idea:
``output_dir: outputs/thumbs-${hash:${.size},${.format}}`` writes to a new folder when
a parameter changes, instead of skipping items as already done).
``${launcher.samples:NAME}`` is the bundled sample data of an example task, wherever
the package is installed, so ``task=thumbnail`` runs from any directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


def config_hash(*values: Any) -> str:
    """A short, stable hex digest of config values (nodes are hashed by their content)."""
    plain = [
        OmegaConf.to_container(v, resolve=True) if isinstance(v, (DictConfig, ListConfig)) else v
        for v in values
    ]
    blob = json.dumps(plain, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def sample_dir(name: str) -> str:
    """The folder of an example task's bundled inputs, inside the installed package."""
    return str(Path(__file__).resolve().parent / "examples" / "samples" / name)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("hash"):
        OmegaConf.register_new_resolver("hash", config_hash)
    if not OmegaConf.has_resolver("launcher.samples"):
        OmegaConf.register_new_resolver("launcher.samples", sample_dir)
