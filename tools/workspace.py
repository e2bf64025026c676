"""A private copy of the runnable project, for tests and benchmark runs."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: What a user's checkout holds that a run needs.
PROJECT_FILES = ["volcano.py", "generate_frames.slurm", "create_gif.slurm", "submit-gif-job"]
PROJECT_DIRS = ["volcano_gif", "data"]


def copy_project(target: Path) -> Path:
    """Copy the runnable project into ``target`` (no images/ or output/ yet)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, target / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target
