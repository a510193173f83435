"""shard-launcher's Hydra plugins: Hydra loads launchers, sweepers and search paths only from here.

Importing this package registers nothing: the ``hydra/launcher`` and
``hydra/sweeper`` options are YAML files in ``conf/``, which the search path
plugin puts on every Hydra app's search path (as a plugin's options must be).
"""
