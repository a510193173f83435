"""Backbones: how a job's pending items are executed on one machine.

One module per backbone behind one contract: ``Backbone(cfg).run(task, plan, job)``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Protocol

from launcher.job import Job
from launcher.plan import Plan
from launcher.task import Task

# name -> (module, backbone class); configs are registered in launcher.config
REGISTRY: dict[str, tuple[str, str]] = {
    "mp": ("launcher.backbones.mp", "MpBackbone"),
}


class Backbone(Protocol):
    def run(self, task: Task, plan: Plan, job: Job) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def make_backbone(cfg: Any) -> Backbone:
    """Instantiate the backbone a (structured) ``backbone`` config names."""
    module, cls = REGISTRY[cfg.name]
    return getattr(import_module(module), cls)(cfg)
