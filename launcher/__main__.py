"""``python -m launcher ...`` runs a job exactly like ``python launch.py ...``;
``python -m launcher status DIR`` shows where a run or sweep stands."""

from launcher.cli import main

if __name__ == "__main__":
    main()
