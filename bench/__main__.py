"""``python -m bench``: see :mod:`bench.cli`.

Nothing is imported at module level: forkserver and spawn workers re-run the
main module as ``__mp_main__``, and a heavy one would be paid by every
worker of every contender's pool, a cost no real ``launch.py`` job has.
"""

if __name__ == "__main__":
    import sys

    from bench.cli import main

    sys.exit(main())
