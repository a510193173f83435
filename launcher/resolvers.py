"""OmegaConf resolvers: ``${hash:...}`` names an output by the parameters that made it.

gokart's idea: ``output_dir: outputs/thumbs-${hash:${.size},${.format}}`` writes to a
new folder when a parameter changes, instead of skipping items as already done.
"""

from __future__ import annotations

import hashlib
import json
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


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("hash"):
        OmegaConf.register_new_resolver("hash", config_hash)
