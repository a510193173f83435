"""Benchmarks: the launcher against its peers on the same items, in one run, as ratios.

``python -m bench --help``; see bench/README.md for the workloads and the latest figures.
"""
