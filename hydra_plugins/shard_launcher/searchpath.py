"""A user's ``./conf`` on the search path of shard-launcher's app, and of no other."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class UserConfigSearchPath(SearchPathPlugin):
    """Adds ``./conf`` after shard-launcher's own configs (see :mod:`launcher.searchpath`)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if any(
            e.provider == "main" and e.path.endswith("/launcher/conf")
            for e in search_path.get_path()
        ):
            from launcher.searchpath import add_user_config_dir

            add_user_config_dir(search_path)
