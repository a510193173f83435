"""``python -m launcher ...`` runs a job exactly like ``python launch.py ...``."""

from launcher.cli import main

if __name__ == "__main__":
    main()
