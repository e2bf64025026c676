"""Run external programs: argument lists only, never a shell.

Every external command of the package goes through :func:`run`,
:func:`run_capturing`, :func:`run_concurrently` or :func:`run_measured`. A
failure raises :class:`CommandError` with the command, its exit code and the
end of its standard error. :func:`run_measured` also returns the command's
peak resident memory: the kernel's high-water mark of the process
(``VmHWM`` in ``/proc/PID/status``), read every 10 ms until it ends. Not
``os.wait4``'s ``ru_maxrss``: a child keeps the high-water mark of the address
space it was forked from, so every child of a 170 MiB Python process would
report at least 170 MiB.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_STDERR_TAIL = 2000
#: How often run_measured reads a command's memory high-water mark.
_POLL_SECONDS = 0.01


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


@dataclass(frozen=True)
class Finished:
    """A command that ended well: its output and its peak resident memory."""

    args: list[str]
    stdout: str
    stderr: str
    peak_mib: float  # the process's own peak resident memory (VmHWM), MiB; 0 if not measured


def run(args: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run ``args``; return its standard output, or raise :class:`CommandError`."""
    return run_concurrently([args], cwd, env)[0]


def run_capturing(
    args: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Run ``args``; return its standard output and standard error, or raise."""
    finished = _run_all([args], cwd, env)[0]
    return finished.stdout, finished.stderr


def run_measured(
    args: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Finished:
    """Run ``args``; return its output and peak memory, or raise :class:`CommandError`."""
    return _run_all([args], cwd, env, measure=True)[0]


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
    return [finished.stdout for finished in _run_all(commands, cwd, env)]


def _high_water_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _wait_measuring(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for ``process``; return its exit code and its peak memory in MiB."""
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, _high_water_mib(process.pid))
        time.sleep(_POLL_SECONDS)
    return process.returncode, peak


def _run_all(
    commands: Sequence[Sequence[str]],
    cwd: Path | None,
    env: Mapping[str, str] | None,
    *,
    measure: bool = False,
) -> list[Finished]:
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
            if measure:
                returncode, peak_mib = _wait_measuring(process)
                logger.debug("peak memory %.0f MiB: %s", peak_mib, args[0])
            else:
                returncode, peak_mib = process.wait(), 0.0
            stdout.seek(0)
            stderr.seek(0)
            out, err = (stream.read().decode(errors="replace") for stream in (stdout, stderr))
            outputs.append(Finished(args, out, err, peak_mib))
            if returncode != 0 and failure is None:
                failure = CommandError(args, returncode, err)
        if failure is not None:
            raise failure
        return outputs
