"""Run docs/tutorial.md: every command block, in order, in one bash session.

The page is written to be copied: a ``bash`` block holds commands exactly as a
reader pastes them (no prompts, no output, heredocs complete), and the
``output`` block right after it shows what they print, all of them together.
sybil finds each pair; this module splits the commands (a line, with its ``\\``
continuations and its heredoc), runs them one by one in one bash session, in a
fresh copy of the project, and compares everything they printed with the
output block. A command block with no output block after it must print nothing.
Where it runs:

* by default, on the tutorial's own localhost cluster (the ``tutorial_slurm``
  fixture: a site's configuration, from a new state folder), as the
  unprivileged learner, who makes the copy's ``.venv`` first, as the set-up says;
* with ``VOLCANO_TUTORIAL_CLUSTER=current``, on whatever cluster this shell's
  Slurm clients reach (its ``SLURM_CONF``, or ``/etc/slurm/slurm.conf``), as
  the current user, root or not, with this Python's environment: the check an
  instructor runs on the site before a workshop. The reader's shell is yours,
  as a learner's login shell is: its ``SBATCH_PARTITION``, ``SBATCH_ACCOUNT``
  and every other site setting stay (only this harness's own ``VOLCANO_TUTORIAL_*``,
  ``PYTHONUNBUFFERED`` and ``MPLCONFIGDIR`` go). The copy goes in a new folder
  under ``$VOLCANO_TUTORIAL_DIR`` (default: your home, which the compute
  nodes see), and every output that differs from the page is reported, not
  only the first of a block.

In both, the session's ``HOME`` is a scratch folder holding the copy as
``~/volcano``, so the page's ``cd ~/volcano`` works and no real home is touched.
``VOLCANO_TUTORIAL_PACE=SECONDS`` waits that long before each command, as a
learner typing does: whatever the page does "while tasks wait" must still work.

An output block's info string may add conditions: ``output slurm>=23.02``
and ``output slurm<23.02`` are alternatives for the Slurm versions that print
them differently (the harness takes the one for this cluster's version);
``output site`` marks output that depends on the site's settings (its
MaxArraySize, its partitions): on another cluster a difference there is
reported as the site's, and does not fail the page.

Shown output may use seven wildcards and nothing else:

* ``<id>``: a job id;
* ``<time>``: a date, a clock time, a duration, or a number computed from
  measured durations (a rate, a share, a recommended frames per task);
* ``<node>``: a node name;
* ``<size>``: a file size;
* ``<name>``: a user or partition name (the site's, and the reader's own);
* ``<version>``: a version number (of Python, Slurm, jq);
* ``<path>``: an absolute path to a file outside the project (a program's).

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
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown import SkipParser

from tests.helpers import REPO

if TYPE_CHECKING:
    from tools.local_slurm import Cluster

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
    "<version>": r"\d+(?:\.\d+)*",
    "<path>": r"/\S*",
}
_WILDCARD_RE = re.compile("|".join(re.escape(token) for token in WILDCARDS))
_FENCE_RE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<source>.*?)^```$", re.MULTILINE | re.DOTALL)
_HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)(?P<word>\w+)\1")


@dataclass(frozen=True)
class Block:
    """A fenced block of the page: where it is, its info string, its text."""

    start: int
    end: int
    info: str
    source: str

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def conditions(self) -> list[str]:
        return self.info.split()[1:]


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a markdown text, in order."""
    return [
        Block(match.start(), match.end(), match.group("info").strip(), match.group("source"))
        for match in _FENCE_RE.finditer(text)
    ]


@dataclass(frozen=True)
class Shown:
    """A command block and the output blocks that follow it."""

    commands: str
    outputs: list[Block]


def paired(text: str) -> Iterator[tuple[int, int, Shown]]:
    """Each bash block with the output blocks right after it (only blank lines between)."""
    blocks = fenced_blocks(text)
    for index, block in enumerate(blocks):
        if block.language != "bash":
            continue
        outputs, end = [], block.end
        for following in blocks[index + 1 :]:
            if following.language != "output" or text[end : following.start].strip():
                break
            outputs.append(following)
            end = following.end
        yield block.start, end, Shown(block.source, outputs)


def split_commands(source: str) -> list[str]:
    """The commands of a block as a reader's bash runs them: one per line, with the lines
    a ``\\``, ``&&``, ``||`` or ``|`` continues and a heredoc's lines up to its end word.
    Comments are left out."""
    commands: list[str] = []
    current: list[str] = []
    heredoc_end: str | None = None
    for line in source.splitlines():
        if heredoc_end is None and not current and (not line.strip() or line.lstrip()[0] == "#"):
            continue
        current.append(line)
        if heredoc_end is not None:
            if line == heredoc_end:
                heredoc_end = None
            else:
                continue
        elif (match := _HEREDOC_RE.search(line)) is not None:
            heredoc_end = match.group("word")
            continue
        if line.endswith(("\\", "&&", "||", "|")):  # bash reads on: one command
            continue
        commands.append("\n".join(current))
        current = []
    if current:
        commands.append("\n".join(current))
    return commands


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


def version_matches(condition: str, version: tuple[int, int]) -> bool:
    """``slurm>=23.02`` or ``slurm<23.02`` against this Slurm's (major, minor)."""
    match = re.fullmatch(r"slurm(>=|<)(\d+)\.(\d+)", condition)
    if match is None:
        raise ValueError(f"unknown output condition {condition!r}")
    wanted = (int(match.group(2)), int(match.group(3)))
    return version >= wanted if match.group(1) == ">=" else version < wanted


def chosen_output(outputs: list[Block], version: tuple[int, int]) -> Block | None:
    """The output block for this Slurm version: the first whose conditions hold."""
    for block in outputs:
        versions = [c for c in block.conditions if c.startswith("slurm")]
        if all(version_matches(condition, version) for condition in versions):
            return block
    if outputs:
        raise ValueError(f"no output block for Slurm {version[0]}.{version[1]:02d}")
    return None


class ShellSession:
    """One long-lived bash; each command's output and exit status, read up to a marker."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
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


def fresh_checkout(target: Path, untracked: bool = True) -> Path:
    """The project's files as a reader's clone has them (no .git, no venv, no outputs).

    Files git does not track yet, but would (not ignored), are included unless
    ``untracked`` is false: so a change shows here before it is committed, as it
    will in CI after. (On a site, an instructor's own leftovers are left out.)
    """
    listed = subprocess.run(
        [
            "git",
            "ls-files",
            "-z",
            "--cached",
            *(["--others", "--exclude-standard"] if untracked else []),
        ],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    tracked = [name for name in listed.split("\0") if (REPO / name).is_file()]
    for name in filter(None, tracked):
        source, copy = REPO / name, target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
    return target


#: ``VOLCANO_TUTORIAL_CLUSTER=current``: run on the cluster this shell reaches, as you.
CURRENT = os.environ.get("VOLCANO_TUTORIAL_CLUSTER") == "current"
#: ``VOLCANO_TUTORIAL_PACE=SECONDS``: wait before each command, as a learner typing does.
PACE = float(os.environ.get("VOLCANO_TUTORIAL_PACE") or 0)


@dataclass(frozen=True)
class Reader:
    """Who runs the page, and where: the shell's command, its folder and environment;
    ``site``: a site's run, where outputs marked ``site`` may differ (warnings);
    ``venv``: the Python environment the copy's ``.venv`` links to, if it is not its own."""

    shell: list[str]
    root: Path  # the project copy, shown as ~/volcano
    scratch: Path  # the session's HOME; removed at the end
    env: dict[str, str]
    site: bool = False
    venv: str | None = None


def readers_env(
    venv: Path, home: Path, slurm_conf: str | None, base: Mapping[str, str], site: bool
) -> dict[str, str]:
    """A reader's shell, from ``base``, with the project's venv active, as `source
    .venv/bin/activate` leaves it: on a ``site``, the login shell's settings as they are
    (SBATCH_PARTITION, ...); on our clusters, none of the tests' own (SBATCH_*, VOLCANO_*)."""
    # Never PYTHONUNBUFFERED: what the page shows through `| tail` must be what a reader's
    # pipe shows, where Python would hold stdout back if the programs did not flush. Nor
    # MPLCONFIGDIR: the page's first render shows matplotlib making its font cache.
    ours = ("VOLCANO_TUTORIAL_",) if site else ("VOLCANO_", "SBATCH_")
    env = {
        k: v
        for k, v in base.items()
        if not k.startswith((*ours, "PYTHONUNBUFFERED")) and k != "MPLCONFIGDIR"
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    env["HOME"] = str(home)
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    return env


def learner_reader(cluster: Cluster, login: Mapping[str, str] | None = None) -> Reader:
    """The learner, on ``cluster``, in a copy of their own with their own .venv; with
    ``login``, the settings of a site's login shell (``SBATCH_PARTITION``...): a site's run."""
    from tests.slurm_helpers import learner

    reader = learner()
    scratch = Path(tempfile.mkdtemp(prefix="tutorial-", dir=cluster.folder.parent))
    root = fresh_checkout(scratch / "volcano")
    reader.own(scratch)
    scratch.chmod(0o755)
    made = reader.run(
        ["bash", "-c", "python3 -m venv .venv && .venv/bin/pip install --quiet -e ."],
        cwd=root,
        env=os.environ,
        timeout=900,
    )
    if made.returncode != 0:
        raise AssertionError(f"the learner's set-up failed: {made.stderr}")
    site = login is not None
    base = {**os.environ, **(login or {})}
    env = reader.env(readers_env(root / ".venv", scratch, str(cluster.conf), base, site))
    env["HOME"] = str(scratch)
    return Reader(reader.command(["bash", "--noprofile", "--norc"]), root, scratch, env, site)


def _current_reader() -> Reader:
    """You, on the cluster this shell reaches, with this Python's environment as .venv."""
    base = Path(os.environ.get("VOLCANO_TUTORIAL_DIR") or Path.home())
    scratch = Path(tempfile.mkdtemp(prefix="volcano-tutorial-", dir=base))
    root = fresh_checkout(scratch / "volcano", untracked=False)
    (root / ".venv").symlink_to(sys.prefix, target_is_directory=True)  # yours, as it is
    conf = os.environ.get("SLURM_CONF")
    env = readers_env(root / ".venv", scratch, conf, os.environ, site=True)
    return Reader(["bash", "--noprofile", "--norc"], root, scratch, env, True, sys.prefix)


def start_session(namespace: dict[str, Any], reader: Reader) -> None:
    """The reader's bash session, kept in ``namespace`` for every block of the page."""
    namespace["session"] = ShellSession(reader.shell, reader.root, reader.env)
    namespace["reader"] = reader
    namespace["version"] = _slurm_version(namespace["session"])
    namespace["executed"] = 0


def _session(namespace: dict[str, Any]) -> tuple[ShellSession, Reader]:
    if "session" not in namespace:
        if CURRENT:
            start_session(namespace, _current_reader())
        else:
            start_session(namespace, learner_reader(namespace["tutorial_slurm"]))
    return namespace["session"], namespace["reader"]


def _slurm_version(session: ShellSession) -> tuple[int, int]:
    printed, _ = session.run("sinfo --version")
    match = re.search(r"(\d+)\.(\d+)", " ".join(printed))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


#: With this set to a file, every command's output is written there instead of being
#: compared: how the page's shown output is made before its wildcards are put in.
RECORD = os.environ.get("VOLCANO_TUTORIAL_RECORD")


def _as_shown(line: str, reader: Reader) -> str:
    """A printed line with the project's folder as the page shows it: ``~/volcano``.

    On a site, the project's ``.venv`` may be your own environment, wherever it is.
    """
    if reader.venv:
        line = line.replace(reader.venv, f"{reader.root}/.venv")
    return line.replace(str(reader.root), SHOWN_ROOT)


def evaluate_block(example: Example) -> None:
    run_shown(example.namespace, example.parsed, example.line)


def run_shown(namespace: dict[str, Any], shown: Shown, line: int) -> None:
    """Run a command block in the reader's session; fail unless it printed what is shown."""
    session, reader = _session(namespace)
    printed_all: list[str] = []
    problems: list[str] = []  # on another site, every one of the block; here, the first
    for command in split_commands(shown.commands):
        if PACE:
            time.sleep(PACE)
        began = time.monotonic()
        printed, status = session.run(command)
        took = time.monotonic() - began
        printed = [_as_shown(text, reader) for text in printed]
        printed_all += printed
        if RECORD:
            with open(RECORD, "a", encoding="utf-8") as record:
                record.write(
                    f"{command}\n"
                    + "".join(f"| {line}\n" for line in printed)
                    + (f"[exit status {status}]\n" if status else "")
                    + f"[line {line}: {took:.1f} s]\n"
                )
        elif status != 0:
            problems.append(f"exit status {status}: {command}\n" + "\n".join(printed))
            if not reader.site:
                break
    if RECORD:
        return
    output = chosen_output(shown.outputs, namespace["version"])
    want = output.source.splitlines() if output is not None else []
    if not problems and not matches(want, printed_all):
        difference = (
            f"{shown.commands}--- the page shows:\n"
            + "\n".join(want)
            + "\n--- the commands printed:\n"
            + "\n".join(printed_all)
        )
        if reader.site and output is not None and "site" in output.conditions:
            warnings.warn(f"a site's own value, line {line}:\n{difference}", stacklevel=1)
        else:
            problems.append(difference)
    if problems:
        raise AssertionError("\n\n".join(problems))
    namespace["executed"] += 1


def end_session(namespace: dict[str, Any]) -> None:
    if "session" in namespace:
        namespace["session"].close()
        shutil.rmtree(namespace["reader"].scratch, ignore_errors=True)


def parse_blocks(document: Document) -> Iterator[Region]:
    """sybil's parser: a region per command block and its output blocks."""
    for start, end, shown in paired(document.text):
        yield Region(start, end, shown, evaluate_block)


def tutorial_sybil() -> Sybil:
    return Sybil(
        parsers=[parse_blocks, SkipParser()],
        path=str(REPO / "docs"),
        patterns=["tutorial.md"],
        fixtures=[] if CURRENT else ["tutorial_slurm"],
        teardown=end_session,
    )
