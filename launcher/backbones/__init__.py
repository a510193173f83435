"""Backbones: how a job's pending items are executed on one machine.

One module per backbone behind one contract: ``Backbone(cfg).run(driven, plan, state)``,
``driven`` the job's task as the launcher drives it (:class:`launcher.driving.Driven`).
``auto`` picks ``torch`` for a TorchTask and ``mp`` otherwise; its config holds
the keys of both, so ``backbone.num_workers=8`` means what the chosen one means.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Protocol

from launcher.backbones.mp import MpConfig
from launcher.backbones.torch import TorchConfig
from launcher.driving import Driven
from launcher.errors import ConfigError
from launcher.plan import Plan
from launcher.run_state import RunState
from launcher.task import Task, TorchTask

# name -> (module, backbone class, config class)
REGISTRY: dict[str, tuple[str, str, type]] = {
    "mp": ("launcher.backbones.mp", "MpBackbone", MpConfig),
    "torch": ("launcher.backbones.torch", "TorchBackbone", TorchConfig),
}


@dataclass
class AutoConfig(TorchConfig, MpConfig):
    """``backbone=auto``: every key of mp and torch; the task's kind decides which applies."""

    name: str = "auto"


class Backbone(Protocol):
    def prepare(self, driven: Driven) -> None:
        """Start, before the task's setup and planning, what can warm up meanwhile."""

    def run(self, driven: Driven, plan: Plan, state: RunState) -> None:
        """Execute the plan's items; what it learns goes into ``state`` (counts, failures,
        ``backbone_facts`` for the report), never onto the backbone itself."""

    def describe(self) -> dict[str, Any]:
        """The backbone as configured, for the start line and the report."""


def backbone_config(cfg: Any, task: Task) -> tuple[str, Any]:
    """The backbone a (structured) ``backbone`` config names for this task, and its own
    config (``auto`` resolved); its numbers are checked against its ``BOUNDS`` with the
    rest of the config (:func:`launcher.composed.build_task`)."""
    if not dataclasses.is_dataclass(cfg):  # a user's option that starts from none of ours
        raise ConfigError(
            f"the backbone option{_chosen()} has no schema: its YAML file does not start from "
            "one of ours, so neither its backbone nor its keys can be known. Begin it with "
            "`defaults: [mp, _self_]` (or torch, or auto), then its own keys, e.g. "
            "`num_workers: 32`."
        )
    name = cfg.name
    if name == "auto":
        name = "torch" if isinstance(task, TorchTask) else "mp"
    config_cls = REGISTRY[name][2]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    own = config_cls(
        **{k: v for k, v in dataclasses.asdict(cfg).items() if k in fields and k != "name"}
    )
    return name, own


def _chosen() -> str:
    """`` backbone=NAME`` as the command line chose it, when Hydra knows."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    choice = HydraConfig.get().runtime.choices.get("backbone")
    return f" backbone={choice}" if choice else ""


def make_backbone(name: str, own: Any) -> Backbone:
    """Instantiate the backbone ``name`` on its own checked config."""
    module, cls, _ = REGISTRY[name]
    return getattr(import_module(module), cls)(own)
