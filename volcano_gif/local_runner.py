"""Run the pipeline on one machine: render on every core, then assemble.

This is the same array-then-dependent-job shape as on Slurm. Each worker process
builds one figure and renders a contiguous block of frames with it. The
assembly runs once every render has ended, whatever their outcome (Slurm's
``afterany``), so missing frames are reported by the assembler, never skipped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from volcano_gif.assembler import AssemblyResult, assemble
from volcano_gif.data import load_grid
from volcano_gif.layout import DEFAULT_GIF_WIDTH, ProjectPaths, expected_frames, split_evenly
from volcano_gif.render import DEFAULT_PNG_LEVEL, FrameRenderer

logger = logging.getLogger(__name__)

#: Chunks per worker: enough to even out the workers' ends, few enough that
#: the queue costs nothing (a chunk of 360 frames / 2 workers / 8 is 22 frames).
CHUNKS_PER_WORKER = 8

_worker_renderer: FrameRenderer | None = None


def _start_worker(grid: npt.NDArray[np.float64], frame_count: int, png_level: int) -> None:
    global _worker_renderer
    _worker_renderer = FrameRenderer(grid, frame_count, png_level=png_level)


def _render_block(frames: range, images_dir: Path) -> dict[int, str]:
    """Render a block in a worker; return ``{frame: error}`` for frames that failed."""
    if _worker_renderer is None:
        raise RuntimeError("worker started without a renderer")
    failures: dict[int, str] = {}
    for frame in frames:
        try:
            _worker_renderer.render(frame, images_dir)
        except Exception as error:  # noqa: BLE001  (afterany: report, go on)
            failures[frame] = f"{type(error).__name__}: {error}"
    return failures


def default_workers() -> int:
    """One worker per core this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def render_frames(
    paths: ProjectPaths,
    frame_count: int,
    workers: int | None = None,
    png_level: int = DEFAULT_PNG_LEVEL,
) -> dict[int, str]:
    """Render every frame on ``workers`` processes; return the failures."""
    grid = load_grid(paths.data_file)
    paths.images.mkdir(parents=True, exist_ok=True)
    workers = min(workers or default_workers(), frame_count)
    # Contiguous chunks, several per worker, from one queue: a worker that gets
    # ahead takes the next chunk instead of idling at the end. Each worker keeps
    # its one figure for all the chunks it renders.
    blocks = split_evenly(expected_frames(frame_count), workers * CHUNKS_PER_WORKER)
    # fork shares the imported matplotlib with the workers; elsewhere spawn.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    failures: dict[int, str] = {}
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_start_worker,
        initargs=(grid, frame_count, png_level),
    ) as pool:
        futures: list[tuple[range, Future[dict[int, str]]]] = [
            (block, pool.submit(_render_block, block, paths.images)) for block in blocks
        ]
        for block, future in futures:
            try:
                failures.update(future.result())
            except Exception as crash:  # noqa: BLE001  (a worker died: its frames failed)
                failures.update({frame: f"worker failed: {crash}" for frame in block})
    for frame, reason in sorted(failures.items()):
        logger.error("frame %d failed: %s", frame, reason)
    logger.info(
        "rendered %d of %d frames on %d workers",
        frame_count - len(failures), frame_count, workers,
    )  # fmt: skip
    return failures


def run_local(
    paths: ProjectPaths,
    frame_count: int,
    workers: int | None = None,
    gif_width: int = DEFAULT_GIF_WIDTH,
) -> AssemblyResult:
    """Render on all cores, then assemble whatever the renders' outcome.

    The result's ``times`` hold the render stage and the assembly's stages.
    """
    began = time.perf_counter()
    render_frames(paths, frame_count, workers)
    rendered = time.perf_counter() - began
    result = assemble(paths, frame_count, gif_width)
    result.times["render"] = rendered
    return result
