"""Shared test helpers: a private copy of the project, and running its scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
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


def project_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for running the project's scripts with this Python."""
    env = dict(os.environ)
    env["VOLCANO_PYTHON"] = sys.executable
    env.update(extra or {})
    return env


def run(
    args: Sequence[str | Path],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output (never raises on a non-zero exit)."""
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=dict(env) if env is not None else project_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
