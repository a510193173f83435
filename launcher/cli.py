"""Entry point shared by ``launch.py`` and ``python -m launcher``.

Hydra exits with 1 on any error it catches; we map the errors it raises
before our task function starts (unknown group option, unknown key, wrong
type) to exit code 2, the code for "bad config", and exit with the job's own
code otherwise (the highest over a sweep's jobs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


def config_dir() -> str:
    """The project's ``conf/`` (beside the package in a checkout), else ``./conf``."""
    return str(CONFIG_DIR if CONFIG_DIR.is_dir() else Path(os.getcwd()) / "conf")


def main() -> None:
    if sys.argv[1:2] == ["status"]:  # `python -m launcher status DIR`: no Hydra involved
        from launcher.status import main as status

        sys.exit(status(sys.argv[2:]))
    if sys.argv[1:] in (["--help"], ["-h"]):
        from launcher.help import help_text

        print(help_text(Path(config_dir())), end="")
        sys.exit(0)

    import hydra

    from launcher import app
    from launcher.config import register_configs
    from launcher.resolvers import register_resolvers

    register_resolvers()
    register_configs()
    entry = hydra.main(version_base=None, config_path=config_dir(), config_name="config")(app.run)
    try:
        entry()
    except SystemExit as e:
        if e.code not in (0, None) and not app.state.started:
            sys.exit(2)
        raise
    app.exit_process(app.state.exit_code)
