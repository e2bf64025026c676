"""Fixtures shared by tests/ and docs/: the localhost Slurm clusters (tests/clusters.py)."""

pytest_plugins = ["tests.clusters"]
