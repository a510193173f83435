"""``task.storage_options``: the fsspec options a job opens its URLs with (an endpoint, a
profile, credentials), taken out of the task config so that no secret is written down.

Hydra writes the composed config (``.hydra/``, a sweep's ``multirun.yaml``), a sweep
its overrides (``sweep.json``), submitit its job files: a credential typed as a value
would land in all of them. So a secret-named option (``key``, ``secret``, ``token``,
``password``...) must come from the environment through an interpolation,
``${oc.env:NAME}``, which they all record as typed, never resolved. A literal one is
refused before any work, and taken back out of the files Hydra wrote already.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from launcher.errors import ConfigError

KEY = "storage_options"
SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential")
REDACTED = "<redacted>"


def split(task_cfg: Any) -> tuple[Any, dict[str, Any] | None]:
    """The task config without ``storage_options`` (resolved: it leaves its config), and
    those options resolved; None when there are none. A secret typed as a literal value
    is a ConfigError naming its key."""
    from omegaconf import OmegaConf

    if task_cfg is None or KEY not in task_cfg:
        return task_cfg, None
    literal = dict(_literal_secrets(task_cfg[KEY], f"task.{KEY}"))
    if literal:
        _scrub_hydra_files(set(literal.values()))
        keys = ", ".join(literal)
        raise ConfigError(
            f"{keys}: a secret given as a value would be written into .hydra/, the sweep's "
            "records and submitit's job files. Take it from the environment instead: "
            f"{next(iter(literal))}='${{oc.env:NAME}}' (an interpolation is recorded as "
            "typed), or leave it out and let the store's client find it in its standard "
            "places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws)."
        )
    rest = OmegaConf.to_container(task_cfg, resolve=True)
    options = rest.pop(KEY) or {}
    if not isinstance(options, dict):
        raise ConfigError(f"task.{KEY} must be a mapping of fsspec options, got {options!r}.")
    return OmegaConf.create(rest), options


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def _literal_secrets(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(key path, value)`` of each secret-named option typed as a value."""
    from omegaconf import OmegaConf

    if not OmegaConf.is_dict(node):
        return
    for key in node:
        if OmegaConf.is_interpolation(node, key):
            continue
        value = node[key]
        if OmegaConf.is_dict(value):
            yield from _literal_secrets(value, f"{path}.{key}")
        elif _is_secret(str(key)) and value not in (None, ""):
            yield f"{path}.{key}", str(value)


def _scrub_hydra_files(values: set[str]) -> None:
    """Hydra wrote the config (and the overrides typed) before a job could refuse it: take
    the secret values back out of the job's ``.hydra/`` and the sweep's ``multirun.yaml``."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    files: list[Path] = []
    output_dir = OmegaConf.select(hydra, "runtime.output_dir", default=None)
    subdir = OmegaConf.select(hydra, "output_subdir", default=None)
    if output_dir and subdir:
        files += Path(output_dir, subdir).glob("*.yaml")
    sweep_dir = OmegaConf.select(hydra, "sweep.dir", default=None)
    if sweep_dir:
        files.append(Path(sweep_dir, "multirun.yaml"))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        scrubbed = text
        for value in values:
            scrubbed = scrubbed.replace(value, REDACTED)
        if scrubbed != text:
            path.write_text(scrubbed, encoding="utf-8")
