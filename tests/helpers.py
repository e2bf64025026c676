"""Shared test helpers: a private copy of the project, and running its scripts."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.workspace import REPO, copy_project, run_env

__all__ = ["REPO", "copy_project", "project_env", "run"]


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
