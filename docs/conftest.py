"""pytest runs every shell block of docs/tutorial.md on the localhost Slurm (tests/tutorial.py)."""

from tests.tutorial import tutorial_sybil

pytest_collect_file = tutorial_sybil().pytest()
