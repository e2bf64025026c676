"""Shared test helpers: a private copy of the project, and running its scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.workspace import REPO, copy_project, run_env

__all__ = ["REPO", "copy_project", "installed_program", "project_env", "run"]


class ProgramNotInstalledError(RuntimeError):
    """A program that our own Python dependencies should have installed is missing."""


def installed_program(name: str) -> Path:
    """A program that a Python dependency installs (shellcheck, ruff, mypy).

    It is looked up in this interpreter's scripts folder (the virtual
    environment's ``bin``), never on PATH: the README's test command runs
    ``.venv/bin/python -m pytest`` without activating the environment, and a
    copy that happens to be on PATH would hide a missing dependency.
    """
    folders = dict.fromkeys([sysconfig.get_path("scripts"), str(Path(sys.executable).parent)])
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ProgramNotInstalledError(
        f"{name} is not in {' or '.join(folders)}: "
        "install the test extras with .venv/bin/pip install -e '.[test]'"
    )


def project_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for running the project's scripts with this Python."""
    return run_env(dict(extra or {}))


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
