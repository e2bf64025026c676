"""Shared test helpers: a private copy of the project, and running its scripts."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tools.learners import run_captured
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
    return run_captured(
        [str(arg) for arg in args], cwd, env if env is not None else project_env(), timeout
    )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first, then theirs), from /proc."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [found for child in children for found in (int(child), *descendants(int(child)))]


def command_line(pid: object) -> bytes:
    """The NUL-separated command line of ``pid``; empty once it has ended.

    A process can end between listing and reading: /proc then answers
    ENOENT, or ESRCH while it is a zombie.
    """
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` every 50 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@functools.cache
def clean_frame_digests(frame_count: int, size: tuple[int, int] = (640, 480)) -> dict[str, str]:
    """SHA-256 of every frame as a clean render on this machine makes it.

    Rendered once per test session for each frame count and size, then reused.
    """
    import hashlib
    import tempfile

    from volcano_gif.layout import frame_name
    from volcano_gif.task.data import load_grid
    from volcano_gif.task.render import FrameRenderer

    renderer = FrameRenderer(load_grid(REPO / "data/volcano.csv"), frame_count, *size)
    with tempfile.TemporaryDirectory(prefix="clean-frames-") as scratch:
        folder = Path(scratch)
        renderer.render_many(range(1, frame_count + 1), folder)
        return {
            frame_name(n): hashlib.sha256((folder / frame_name(n)).read_bytes()).hexdigest()
            for n in range(1, frame_count + 1)
        }


def argv(line: str) -> list[str]:
    """A command's arguments, written as one types them: split as a shell splits them."""
    import shlex

    return shlex.split(line)
