"""Small file helpers: atomic writes and checksums."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path


def temporary_beside(target: Path) -> Path:
    """A hidden temporary name in the folder of ``target`` (so a rename is atomic)."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


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


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's contents, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
