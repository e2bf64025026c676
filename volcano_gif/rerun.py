"""The exact commands that re-render missing frames, locally and on Slurm."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from volcano_gif.layout import ProjectPaths, compress_ranges

RENDER_SCRIPT = "volcano.py"
ARRAY_SCRIPT = "generate_frames.slurm"
ASSEMBLY_SCRIPT = "create_gif.slurm"


def local_rerender_command(
    paths: ProjectPaths, frames: Sequence[int], frame_count: int
) -> list[str]:
    """Render ``frames`` again in one process on this machine."""
    return [
        sys.executable,
        str(paths.root / RENDER_SCRIPT),
        "--frame-count",
        str(frame_count),
        *(str(frame) for frame in sorted(frames)),
    ]


def slurm_rerender_command(frames: Sequence[int], frame_count: int) -> list[str]:
    """Render ``frames`` again as one Slurm array (one frame per task)."""
    return [
        "sbatch",
        f"--array={compress_ranges(list(frames))}",
        ARRAY_SCRIPT,
        "--frame-count",
        str(frame_count),
        "--frames-per-task",
        "1",
    ]


def rerender_hint(paths: ProjectPaths, frames: Sequence[int], frame_count: int) -> str:
    """A few lines telling the user how to re-render ``frames`` and assemble again."""
    root = shlex.quote(str(paths.root))
    return (
        "re-render them on this machine with:\n"
        f"  {shlex.join(local_rerender_command(paths, frames, frame_count))}\n"
        "or on Slurm, from the project folder:\n"
        f"  cd {root} && {shlex.join(slurm_rerender_command(frames, frame_count))}\n"
        "then assemble again (on Slurm: sbatch --dependency=afterany:<new job id> "
        f"{ASSEMBLY_SCRIPT} --frame-count {frame_count})"
    )
