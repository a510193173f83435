"""shard-launcher's Hydra plugins: Hydra loads launchers and sweepers only from here."""
