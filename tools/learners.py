"""Unprivileged learners for the test clusters: Unix users, their Python, running as them.

A site's users are never root, so every end-to-end run of the tests submits as
a learner: a Unix user made here (``useradd``), registered in the cluster's
accounting by ``tools/local_slurm.py``, who runs commands through ``setpriv``
with an environment of their own (HOME, USER, LOGNAME). The daemons stay root,
as at a site.

A learner cannot run root's Python (pyenv's lives under ``/root``, mode 700),
so each learner builds a virtual environment of their own, as a learner does,
from the system's ``python3`` with the project's dependencies from
``pyproject.toml``; it is kept in their home, keyed by what went into it, and
reused by later test sessions.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.workspace import REPO

#: The learner every end-to-end test runs as.
LEARNER = "volcano-learner"
#: The Python a learner's environment is made from: the system's, not root's own.
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: Environment variables of the tests that a learner's commands must not inherit.
_ROOTS_OWN = ("HOME", "USER", "LOGNAME", "MAIL", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")


class LearnerError(RuntimeError):
    """A learner could not be made or could not run a command."""


def run_captured(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``args``, capturing text output (never raises on a non-zero exit)."""
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Learner:
    """A Unix user who runs commands as themselves, never as root."""

    name: str
    uid: int
    gid: int
    home: Path

    @classmethod
    def named(cls, name: str) -> Learner:
        """The Unix user ``name``, made (with a home) if there is none yet; root only."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            if os.geteuid() != 0:
                raise LearnerError(f"there is no user {name}, and only root can make one") from None
            _check(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name])
            entry = pwd.getpwnam(name)
            # Readable by others, as most sites' homes are (Debian 13 makes them 700):
            # a class of learners shares the Python made in one learner's home.
            os.chmod(entry.pw_dir, 0o755)
        return cls(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this environment) as the learner's own shell would have it."""
        kept = {
            k: v for k, v in (os.environ if base is None else base).items() if k not in _ROOTS_OWN
        }
        return {**kept, "HOME": str(self.home), "USER": self.name, "LOGNAME": self.name}

    def command(self, args: Sequence[str | Path]) -> list[str]:
        """``args`` run as the learner: their uid, gid and groups, nothing of root's."""
        if os.geteuid() != 0:
            if os.geteuid() == self.uid:
                return [str(arg) for arg in args]
            raise LearnerError(f"only root or {self.name} can run commands as {self.name}")
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        return [
            setpriv,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--init-groups",
            "--",
            *map(str, args),
        ]

    def run(
        self,
        args: Sequence[str | Path],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` as the learner, capturing text output (never raises on failure)."""
        return run_captured(self.command(args), cwd, self.env(env), timeout)

    def own(self, path: Path) -> Path:
        """Give ``path`` and everything below it to the learner."""
        if os.geteuid() == 0:
            for folder, _, files in os.walk(path):
                os.chown(folder, self.uid, self.gid)
                for name in files:
                    os.chown(os.path.join(folder, name), self.uid, self.gid, follow_symlinks=False)
        return path

    # ------------------------------------------------------------- their Python
    def python(self) -> Path:
        """The learner's own Python with the project's dependencies, made once and kept.

        Made by the learner, from :data:`SYSTEM_PYTHON`, in their home; a new one
        whenever the dependencies (or that Python) change. Two test sessions that
        need it at once take turns (a file lock): one makes it, the other reuses it.
        """
        cache = self.home / ".cache" / "volcano-gif"
        if not cache.is_dir():
            cache.mkdir(parents=True)
            self.own(self.home / ".cache")
        folder = cache / f"venv-{environment_key()}"
        with open(cache / f"{folder.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / ".complete").exists():
                shutil.rmtree(folder, ignore_errors=True)  # what a crash left half made
                self._as_learner([SYSTEM_PYTHON, "-m", "venv", folder], "make a venv")
                self._as_learner(
                    [folder / "bin" / "pip", "install", "--quiet", *dependencies()],
                    "install the project's dependencies",
                )
                (folder / ".complete").touch()
        return folder / "bin" / "python"

    def _as_learner(self, args: Sequence[str | Path], what: str) -> None:
        done = self.run(args, cwd=self.home, timeout=900)
        if done.returncode != 0:
            raise LearnerError(
                f"{self.name} could not {what} (exit code {done.returncode}): "
                + (done.stderr.strip().splitlines() or ["no message"])[-1]
            )


def dependencies() -> list[str]:
    """The project's run-time dependencies, from pyproject.toml (and setuptools, to build it)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], "setuptools>=68"]


def environment_key() -> str:
    """What a learner's environment is made of: the system Python and the dependencies."""
    system = os.path.realpath(SYSTEM_PYTHON)
    text = "\n".join([system, *dependencies(), sys.platform])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _check(args: Sequence[str]) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LearnerError(f"{' '.join(args)} failed: {done.stderr.strip() or done.returncode}")
