"""``python launch.py task=NAME key=value ...``: one job; add ``-m`` for a sweep."""

from launcher.cli import main

if __name__ == "__main__":
    main()
