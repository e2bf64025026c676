"""What to run when frames are missing: ``--resume`` first, then the commands behind it."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from volcano_gif.layout import (
    ARRAY_SCRIPT,
    ASSEMBLY_SCRIPT,
    DEFAULT_SIZE,
    RENDER_SCRIPT,
    RESUME_COMMAND,
    ProjectPaths,
    format_size,
)
from volcano_gif.plan import assembly_options, plan_array, render_options
from volcano_gif.run_record import Parameters


def local_rerender_command(
    paths: ProjectPaths, frames: Sequence[int], frame_count: int, size: tuple[int, int]
) -> list[str]:
    """Render ``frames`` again in one process on this machine."""
    sized = ["--size", format_size(size)] if size != DEFAULT_SIZE else []
    return [
        sys.executable, str(paths.root / RENDER_SCRIPT), "--frame-count", str(frame_count),
        *sized, *(str(frame) for frame in sorted(frames)),
    ]  # fmt: skip


def slurm_rerender_command(frames: Sequence[int], parameters: Parameters) -> list[str]:
    """Render ``frames`` again as one Slurm array: the tasks whose blocks hold them."""
    array = plan_array(
        parameters.frame_count, parameters.frames_per_task, sys.maxsize, None, frames
    )
    return [
        "sbatch", f"--array={array.spec}", ARRAY_SCRIPT,
        *render_options(parameters, array.frames_per_task),
    ]  # fmt: skip


def rerender_hint(paths: ProjectPaths, frames: Sequence[int], parameters: Parameters) -> str:
    """A few lines telling the user how to finish the run."""
    root = shlex.quote(str(paths.root))
    local = local_rerender_command(paths, frames, parameters.frame_count, parameters.size)
    assembly = " ".join(
        ["sbatch --dependency=afterany:<new job id>", ASSEMBLY_SCRIPT,
         *assembly_options(parameters)]
    )  # fmt: skip
    return (
        f"finish the run with one command, from the project folder:\n"
        f"  cd {root} && {RESUME_COMMAND}\n"
        "(it renders only these frames, as one array on Slurm, then assembles again).\n"
        "By hand instead: re-render them on this machine with\n"
        f"  {shlex.join(local)}\n"
        "or on Slurm with\n"
        f"  cd {root} && {shlex.join(slurm_rerender_command(frames, parameters))}\n"
        f"then assemble again: {assembly}"
    )
