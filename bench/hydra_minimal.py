"""S1's floor: the smallest ``@hydra.main`` app, processing one item in-process.

Any Hydra-configured launcher pays at least this much to start; ``launch.py``
is compared with it for ``--help`` and for a one-item job.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> None:
    x = 0
    x * x  # noqa: B018 - the one item


if __name__ == "__main__":
    main()
