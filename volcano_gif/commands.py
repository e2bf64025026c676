"""Run external programs: argument lists only, never a shell.

Every external command of the package goes through :func:`run`,
:func:`run_capturing` or :func:`run_measured`. A
failure raises :class:`CommandError` with the command, its exit code and the
end of its standard error. :func:`run_measured` also returns the command's
peak resident memory: the kernel's high-water mark of the process
(``VmHWM`` in ``/proc/PID/status``), read every 10 ms until it ends. Not
``os.wait4``'s ``ru_maxrss``: a child keeps the high-water mark of the address
space it was forked from, so every child of a 170 MiB Python process would
report at least 170 MiB.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_STDERR_TAIL = 2000
#: How often a command is looked at: its memory high-water mark, its time.
_POLL_SECONDS = 0.01
_PATIENCE = 3.0  # a command with a timeout is said to be awaited after this or a fifth of it


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
    return _run(args, cwd, env).stdout


def run_capturing(
    args: Sequence[str], cwd: Path | None = None, timeout: float | None = None
) -> tuple[str, str]:
    """Run ``args``; return its standard output and standard error, or raise."""
    finished = _run(args, cwd, None, timeout=timeout)
    return finished.stdout, finished.stderr


def run_measured(
    args: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Finished:
    """Run ``args``; return its output and peak memory, or raise :class:`CommandError`."""
    return _run(args, cwd, env, measure=True)


def said_lines(text: str) -> list[str]:
    """The lines of what a command said (its standard error), stripped, blank ones left out."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def on_one_line(text: str) -> str:
    """What a command said, on one line: its lines joined by `` / ``; empty if nothing."""
    return " / ".join(said_lines(text))


def last_line(text: str) -> str:
    """The last line a command said (often why it failed); empty if nothing."""
    lines = said_lines(text)
    return lines[-1] if lines else ""


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


def _waited(
    process: subprocess.Popen[bytes], args: Sequence[str], measure: bool, timeout: float | None
) -> tuple[int, float]:
    """``process``'s exit code, and its peak memory in MiB if ``measure`` (else 0); with a
    ``timeout``, it is said to be awaited (after 3 s or a fifth of it), then killed (124)."""
    peak, began, said = 0.0, time.monotonic(), False
    while process.poll() is None:
        peak = max(peak, _high_water_mib(process.pid)) if measure else 0.0
        waited = time.monotonic() - began
        if timeout is not None and waited > max(_PATIENCE, timeout / 5) and not said:
            said = True
            logger.warning("waiting for %s to answer (up to %.0f s)", shlex.join(args), timeout)
        if timeout is not None and waited > timeout:
            process.kill()
            process.wait()
            raise CommandError(args, 124, f"{args[0]}: no answer in {timeout:.0f} s")
        time.sleep(_POLL_SECONDS)
    return process.returncode, peak


def _run(
    args: Sequence[str],
    cwd: Path | None,
    env: Mapping[str, str] | None,
    *,
    measure: bool = False,
    timeout: float | None = None,
) -> Finished:
    """Run ``args`` to its end, its output in temporary files (no pipe can fill up and stall it)."""
    logger.debug("running: %s", shlex.join(args))
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                list(args), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=cwd, env=env
            )
        except OSError as error:
            raise CommandError(args, 127, str(error)) from None
        returncode, peak_mib = _waited(process, args, measure, timeout)
        stdout.seek(0)
        stderr.seek(0)
        out, err = (stream.read().decode(errors="replace") for stream in (stdout, stderr))
    if returncode != 0:
        raise CommandError(args, returncode, err)
    return Finished(list(args), out, err, peak_mib)
