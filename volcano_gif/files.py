"""Atomic writes: a reader never sees half a file."""

from __future__ import annotations

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
