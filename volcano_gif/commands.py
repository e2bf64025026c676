"""Run external programs: argument lists only, never a shell.

Every external command of the package goes through :func:`run`,
:func:`run_capturing` or :func:`run_concurrently`. A failure raises
:class:`CommandError` with the command, its exit code and the end of its
standard error.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_STDERR_TAIL = 2000


class CommandError(RuntimeError):
    """An external command failed."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.args_list = list(args)
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip()[-_STDERR_TAIL:]
        super().__init__(
            f"command failed with exit code {returncode}: {shlex.join(self.args_list)}"
            + (f"\n{tail}" if tail else "")
        )


def run(args: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run ``args``; return its standard output, or raise :class:`CommandError`."""
    return run_concurrently([args], cwd, env)[0]


def run_capturing(
    args: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Run ``args``; return its standard output and standard error, or raise."""
    return _run_all([args], cwd, env)[0]


def run_concurrently(
    commands: Sequence[Sequence[str]],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """Start every command at once, wait for all, return their standard outputs.

    Output goes to temporary files, so no pipe can fill up and stall a command.
    If any failed, raise :class:`CommandError` for the first that did, after all
    have ended, so none is left running.
    """
    return [stdout for stdout, _ in _run_all(commands, cwd, env)]


def _run_all(
    commands: Sequence[Sequence[str]],
    cwd: Path | None,
    env: Mapping[str, str] | None,
) -> list[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        started = []
        try:
            for args in commands:
                logger.debug("running: %s", shlex.join(args))
                stdout = stack.enter_context(tempfile.TemporaryFile())
                stderr = stack.enter_context(tempfile.TemporaryFile())
                process = subprocess.Popen(
                    list(args), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                    cwd=cwd, env=dict(env) if env is not None else None,
                )  # fmt: skip
                started.append((list(args), process, stdout, stderr))
        except OSError as error:
            for _, process, _, _ in started:
                process.kill()
                process.wait()
            raise CommandError(args, 127, str(error)) from None
        outputs = []
        failure: CommandError | None = None
        for args, process, stdout, stderr in started:
            returncode = process.wait()
            stdout.seek(0)
            stderr.seek(0)
            out, err = (stream.read().decode(errors="replace") for stream in (stdout, stderr))
            outputs.append((out, err))
            if returncode != 0 and failure is None:
                failure = CommandError(args, returncode, err)
        if failure is not None:
            raise failure
        return outputs
