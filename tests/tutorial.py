"""Run docs/tutorial.md: every ``console`` block, in order, in one bash session.

sybil finds the blocks; this module parses each into commands (``$ ``, with
``> `` continuation lines) and the output shown under them, runs the commands
in one bash session on the localhost Slurm of the ``slurm`` fixture, in a
fresh copy of the project, and compares what they print with what the page
shows. Shown output may use five wildcards and nothing else:

* ``<id>``: a job id;
* ``<time>``: a date, a clock time, a duration, or a number computed from
  measured durations (a rate, a share, a recommended frames per task);
* ``<node>``: a node name;
* ``<size>``: a file size;
* ``<name>``: a user or partition name (the site's, and the reader's own).

The project's folder is shown as ``~/volcano``. Whitespace runs count as one
space. A command that exits with a non-zero status fails the block: the page
shows an expected failure as ``command || echo "exit code $?"``.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sybil import Example
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser
from sybil.parsers.markdown import SkipParser

from tests.helpers import REPO

#: How the project folder is shown on the page.
SHOWN_ROOT = "~/volcano"
#: Seconds a single command may take.
COMMAND_TIMEOUT = 600

WILDCARDS = {
    "<id>": r"\d+",
    "<time>": (
        r"(?:\d{8}T\d{6}|(?:\d{4}-\d\d-\d\d[T ])?\d+(?::\d\d)*(?:[.,]\d+)?(?:[+-]\d\d:\d\d)?)"
    ),
    "<node>": r"[A-Za-z][\w.-]*",
    "<size>": r"\d+(?:\.\d+)?\s?[KMGT]?i?B?",
    "<name>": r"[A-Za-z_][\w.-]*",
}
_WILDCARD_RE = re.compile("|".join(re.escape(token) for token in WILDCARDS))


@dataclass(frozen=True)
class Step:
    """One command of a console block and the output the page shows for it."""

    command: str
    shown: list[str]


def parse_console(source: str) -> list[Step]:
    """``$ cmd`` lines (with ``> `` continuations) and the output lines under each."""
    steps: list[Step] = []
    command: list[str] | None = None
    shown: list[str] = []
    for line in source.splitlines():
        if line.startswith("$ "):
            if command is not None:
                steps.append(Step("\n".join(command), shown))
            command, shown = [line[2:]], []
        elif line.startswith("> ") or line == ">":
            if command is None or shown:
                raise ValueError(f"a continuation line must follow a command: {line!r}")
            command.append(line[2:])
        elif command is None:
            raise ValueError(f"output before any command: {line!r}")
        else:
            shown.append(line)
    if command is not None:
        steps.append(Step("\n".join(command), shown))
    return steps


def line_pattern(shown: str) -> re.Pattern[str]:
    """A shown line as a regular expression: literal text, wildcards, flexible spaces."""
    parts = []
    position = 0
    text = " ".join(shown.split())
    for match in _WILDCARD_RE.finditer(text):
        parts.append(re.escape(text[position : match.start()]))
        parts.append(WILDCARDS[match.group(0)])
        position = match.end()
    parts.append(re.escape(text[position:]))
    return re.compile("".join(parts).replace(r"\ ", r"\s+"))


def matches(shown: list[str], printed: list[str]) -> bool:
    if len(shown) != len(printed):
        return False
    return all(
        line_pattern(want).fullmatch(" ".join(got.split()))
        for want, got in zip(shown, printed, strict=True)
    )


class ShellSession:
    """One long-lived bash; each command's output and exit status, read up to a marker."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT) -> tuple[list[str], int]:
        marker = f"__done_{uuid.uuid4().hex}__"
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\nprintf '\\n{marker} %s\\n' \"$?\"\n")
        self.process.stdin.flush()
        printed: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"timed out after {timeout} s: {command}") from None
            if line is None:
                raise AssertionError(f"the shell ended while running: {command}")
            if line.startswith(marker):
                status = int(line.split()[1])
                break
            printed.append(line.rstrip("\n"))
        if printed and printed[-1] == "":
            printed.pop()  # the newline the marker's printf added
        return printed, status

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def fresh_checkout(target: Path) -> Path:
    """The project's files as a reader's clone has them (no .git, no venv, no outputs).

    Files git does not track yet, but would (not ignored), are included: so a
    change shows here before it is committed, as it will in CI after.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    tracked = [name for name in listed.split("\0") if (REPO / name).is_file()]
    for name in filter(None, tracked):
        source, copy = REPO / name, target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
    return target


def _session(namespace: dict[str, Any]) -> tuple[ShellSession, Path]:
    if "session" not in namespace:
        cluster = namespace["tutorial_slurm"]
        scratch = Path(tempfile.mkdtemp(prefix="tutorial-"))
        root = fresh_checkout(scratch / "volcano")
        scripts = str(Path(sys.executable).parent)  # as if .venv were activated
        env = {
            # A reader's shell: none of our own settings, nor a matplotlib cache of another run.
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("VOLCANO_", "SBATCH_")) and k != "MPLCONFIGDIR"
            },
            "PATH": f"{scripts}{os.pathsep}{os.environ['PATH']}",
            "SLURM_CONF": str(cluster.conf),
            "PYTHONUNBUFFERED": "1",  # stdout and stderr in the order a terminal shows
        }
        namespace["session"] = ShellSession(root, env)
        namespace["root"], namespace["scratch"] = root, scratch
        namespace["executed"] = 0
    return namespace["session"], namespace["root"]


#: With this set to a file, every command's output is written there instead of being
#: compared: how the page's shown output is made before its wildcards are put in.
RECORD = os.environ.get("VOLCANO_TUTORIAL_RECORD")


def evaluate_console(example: Example) -> None:
    session, root = _session(example.namespace)
    for step in parse_console(str(example.parsed)):
        began = time.monotonic()
        printed, status = session.run(step.command)
        took = time.monotonic() - began
        printed = [line.replace(str(root), SHOWN_ROOT) for line in printed]
        if RECORD:
            with open(RECORD, "a", encoding="utf-8") as record:
                shown = step.command.replace("\n", "\n> ")
                record.write(f"$ {shown}\n" + "".join(f"{line}\n" for line in printed)
                             + (f"[exit status {status}]\n" if status else "")
                             + f"[line {example.line}: {took:.1f} s]\n")  # fmt: skip
            continue
        if status != 0:
            raise AssertionError(f"exit status {status}: $ {step.command}\n" + "\n".join(printed))
        if not matches(step.shown, printed):
            raise AssertionError(
                f"$ {step.command}\n--- the page shows:\n"
                + "\n".join(step.shown)
                + "\n--- the command printed:\n"
                + "\n".join(printed)
            )
        example.namespace["executed"] += 1


def _teardown(namespace: dict[str, Any]) -> None:
    if "session" in namespace:
        namespace["session"].close()
        shutil.rmtree(namespace["scratch"], ignore_errors=True)


def tutorial_sybil() -> Sybil:
    return Sybil(
        parsers=[CodeBlockParser("console", evaluate_console), SkipParser()],
        path=str(REPO / "docs"),
        patterns=["tutorial.md"],
        fixtures=["tutorial_slurm"],
        teardown=_teardown,
    )
