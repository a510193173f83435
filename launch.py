"""``python launch.py task=NAME key=value ...`` in a checkout: one job; add ``-m`` for a sweep.

The same entry point as the installed ``shard-launcher`` and ``python -m launcher``.
"""

from launcher.cli import main

if __name__ == "__main__":
    main()
