"""A private copy of the runnable project, for tests and benchmark runs."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: What a user's checkout holds that a run needs.
PROJECT_FILES = [
    "volcano.py",
    "generate_frames.slurm",
    "create_gif.slurm",
    "compare_frames.slurm",
    "submit-gif-job",
]
PROJECT_DIRS = ["volcano_gif", "data"]


def copy_project(target: Path) -> Path:
    """Copy the runnable project into ``target`` (no images/ or output/ yet)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, target / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def run_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment, with the project's scripts set to run this Python."""
    return {**os.environ, "VOLCANO_PYTHON": sys.executable, **(extra or {})}
