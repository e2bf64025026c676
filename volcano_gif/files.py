"""Atomic writes: a reader never sees half a file.

Every file is written under a hidden temporary name in its own folder, then
renamed into place. The temporary name says which file it stands for and which
process (host and PID) wrote it: ``.image0007.png.n1.4242.tmp``. A process
killed mid-write leaves only such a name behind, never a half-written file
under a final name; :func:`remove_stale_temporaries` clears them later.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_TEMPORARY_RE = re.compile(r"^\.(?P<target>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.tmp$")


def short_hostname() -> str:
    """This machine's name without its domain: ``n1`` for ``n1.cluster.example``."""
    return socket.gethostname().split(".")[0] or "host"


def temporary_beside(target: Path) -> Path:
    """A hidden temporary name in the folder of ``target`` (so a rename is atomic)."""
    return target.with_name(f".{target.name}.{short_hostname()}.{os.getpid()}.tmp")


def temporary_target(name: str) -> str | None:
    """The file name that temporary file ``name`` stands for, or None if it is not one."""
    match = _TEMPORARY_RE.match(name)
    return match.group("target") if match else None


def write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temporary file beside ``target``, then rename it into place.

    A reader never sees a half-written ``target``; on failure nothing is left behind.
    """
    temporary = temporary_beside(target)
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_json_atomically(target: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    write_atomically(target, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def remove_stale_temporaries(folder: Path, stands_for: Callable[[str], bool]) -> list[Path]:
    """Delete the temporary files in ``folder`` that stand for a file ``stands_for`` accepts.

    Only names of the form :func:`temporary_beside` makes are ever touched.
    """
    removed = []
    for path in _entries(folder):
        target = temporary_target(path.name)
        if target is not None and stands_for(target) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _entries(folder: Path) -> Iterable[Path]:
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []


def sha256_of(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read a block at a time."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
