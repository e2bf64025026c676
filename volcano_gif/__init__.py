"""The rotating-volcano job-array showcase: renderer, assembler and local runner.

The public names are imported lazily, so that ``import volcano_gif`` stays cheap
for a render task that needs only part of it::

    from volcano_gif import FrameRenderer, assemble, load_grid, run_local
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from volcano_gif.assembly.assembler import assemble
    from volcano_gif.local.runner import run_local
    from volcano_gif.paths import ProjectPaths
    from volcano_gif.task.data import load_grid
    from volcano_gif.task.render import FrameRenderer

__all__ = ["FrameRenderer", "ProjectPaths", "assemble", "load_grid", "run_local"]

_HOMES = {
    "FrameRenderer": "volcano_gif.task.render",
    "ProjectPaths": "volcano_gif.paths",
    "assemble": "volcano_gif.assembly.assembler",
    "load_grid": "volcano_gif.task.data",
    "run_local": "volcano_gif.local.runner",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'volcano_gif' has no attribute {name!r}")
