"""Run the pipeline on one machine: render on every core, then assemble.

This is the same array-then-dependent-job shape as on Slurm. Each worker process
builds one figure and renders contiguous blocks of frames with it, skipping
frames that are already complete. The assembly runs once every render has ended,
whatever their outcome (Slurm's ``afterany``), so missing frames are reported by
the assembler, never skipped. The run holds the folder (one run per folder),
keeps ``output/run.json`` up to date, shows its progress, and writes the same
run report as a Slurm run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Collection
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing.queues import SimpleQueue
from pathlib import Path

from volcano_gif.arguments import EXIT_CANCELLED
from volcano_gif.assembly.assembler import AssemblyResult, assemble, complete_run
from volcano_gif.errors import UsageError
from volcano_gif.layout import DEFAULT_FRAME_COUNT, DEFAULT_SIZE, RESUME_COMMAND
from volcano_gif.local.progress import FrameProgress
from volcano_gif.numbering import expected_frames, split_evenly
from volcano_gif.paths import ProjectPaths
from volcano_gif.run import lifecycle
from volcano_gif.run.guard import (
    check_writable,
    claim_record,
    holding_folder,
    refuse_frames_of_other_runs,
)
from volcano_gif.run.lifecycle import run_is_complete
from volcano_gif.run.record import Mode, Parameters, RunRecord
from volcano_gif.stage_times import children_peak_mib, peak_memory_mib
from volcano_gif.task.frames import check_frames
from volcano_gif.task.render import DEFAULT_PNG_LEVEL, FrameRenderer
from volcano_gif.task.scene import Scene, load_scene
from volcano_gif.task.task_timing import TaskTiming

logger = logging.getLogger(__name__)

#: Chunks per worker: enough to even out the workers' ends, few enough that
#: the queue costs nothing (a chunk of 360 frames / 2 workers / 8 is 22 frames).
CHUNKS_PER_WORKER = 8


class RunCancelledError(RuntimeError):
    """The local run was stopped (Ctrl-C, or SIGTERM from --cancel)."""


@dataclass(frozen=True)
class _WorkerSettings:
    """What every worker process starts with."""

    scene: Scene
    png_level: int
    done: SimpleQueue[int]  # each worker puts every frame it finishes here
    timing_dir: Path | None
    run_id: str | None
    force: bool


class _Worker:
    """What one worker process keeps between chunks."""

    renderer: FrameRenderer | None = None
    timing: TaskTiming | None = None
    settings: _WorkerSettings | None = None


def _start_worker(settings: _WorkerSettings) -> None:
    # Ctrl-C reaches the whole process group: the main process handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    timing = TaskTiming.for_local_worker(settings.run_id) if settings.run_id else None
    _Worker.renderer = FrameRenderer.from_scene(settings.scene, settings.png_level)
    if timing is not None:
        timing.imports_done = timing.ready = time.time()
    _Worker.timing, _Worker.settings = timing, settings


def _render_block(frames: range | list[int], images_dir: Path) -> dict[int, str]:
    """Render a block in a worker; return ``{frame: error}`` for frames that failed."""
    renderer, timing, settings = _Worker.renderer, _Worker.timing, _Worker.settings
    if renderer is None or settings is None:
        raise RuntimeError("worker started without a renderer")
    failures: dict[int, str] = {}
    for frame in frames:
        try:
            renderer.render_unless_done(frame, images_dir, settings.force, timing)
        except Exception as error:  # noqa: BLE001  (afterany: report, go on)
            failures[frame] = f"{type(error).__name__}: {error}"
        settings.done.put(frame)
    if timing is not None and settings.timing_dir is not None:
        timing.end = time.time()
        timing.save(settings.timing_dir)
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
    *,
    png_level: int = DEFAULT_PNG_LEVEL,
    frames: Collection[int] | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    force: bool = False,
    run_id: str | None = None,
) -> dict[int, str]:
    """Render ``frames`` (default: every frame) on ``workers`` processes; return the failures.

    With ``run_id``, each worker writes its timing file for the run report.
    """
    scene = load_scene(paths, frame_count, size)
    paths.images.mkdir(parents=True, exist_ok=True)
    wanted = sorted(expected_frames(frame_count) if frames is None else frames)
    if not wanted:
        return {}
    workers = min(workers or default_workers(), len(wanted))
    # Contiguous chunks, several per worker, from one queue: a worker that gets
    # ahead takes the next chunk instead of idling at the end. Each worker keeps
    # its one figure for all the chunks it renders.
    blocks = [
        wanted[block.start : block.stop]
        for block in split_evenly(range(len(wanted)), workers * CHUNKS_PER_WORKER)
    ]
    # fork shares the imported matplotlib with the workers; elsewhere spawn.
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    timing_dir = paths.timing if run_id else None
    settings = _WorkerSettings(scene, png_level, context.SimpleQueue(), timing_dir, run_id, force)
    failures = _render_on_pool(blocks, paths.images, workers, context, settings)
    for frame, reason in sorted(failures.items()):
        logger.error("frame %d failed: %s", frame, reason)
    logger.info(
        "rendered %d of %d frames on %d workers",
        len(wanted) - len(failures),
        len(wanted),
        workers,
    )
    return failures


def _render_on_pool(
    blocks: list[list[int]],
    images_dir: Path,
    workers: int,
    context: multiprocessing.context.BaseContext,
    settings: _WorkerSettings,
) -> dict[int, str]:
    """Render the blocks on a pool of ``workers``, showing progress; return the failures."""
    done = settings.done
    failures: dict[int, str] = {}
    progress = FrameProgress(sum(len(block) for block in blocks))
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(settings,),
    )
    try:
        futures: dict[Future[dict[int, str]], list[int]] = {
            pool.submit(_render_block, block, images_dir): block for block in blocks
        }
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2)
            while not done.empty():
                done.get()
                progress.update()
        for future, block in futures.items():
            try:
                failures.update(future.result())
            except Exception as crash:  # noqa: BLE001  (a worker died: its frames failed)
                failures.update({frame: f"worker failed: {crash}" for frame in block})
    except KeyboardInterrupt:
        pool.shutdown(wait=True, cancel_futures=True)
        raise RunCancelledError("stopped") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close()
    return failures


def render_run(
    paths: ProjectPaths,
    record: RunRecord,
    todo: list[int] | None,
    *,
    workers: int | None = None,
    force: bool = False,
    finish: str = f"finish the run with: {RESUME_COMMAND}",
) -> None:
    """Render the run's frames ``todo`` (None: every frame). Stopped, the run is
    cancelled, its frames kept, the way to ``finish`` it said, and RunCancelledError raised."""
    parameters = record.parameters
    try:
        if todo is None or todo:
            count, size = parameters.frame_count, parameters.size
            render_frames(
                paths, count, workers, frames=todo, size=size, force=force, run_id=record.run_id
            )
    except RunCancelledError:
        lifecycle.cancelled(paths, record.run_id, "stopped; rendered frames kept")
        logger.warning("stopped: every rendered frame is kept in images/; %s", finish)
        raise


def _begin(
    paths: ProjectPaths,
    parameters: Parameters,
    found: RunRecord | None,
    *,
    resume: bool,
    force: bool,
    command: list[str] | None,
) -> tuple[RunRecord, list[int] | None]:
    """Check what is left to check, then begin a run, or resume ``found``'s.

    Returns the record and the frames to render (None: every frame; each worker
    keeps frames that are complete already). Nothing is written before the data,
    the workers' semaphores and the frames in images/ have passed.
    """
    if resume and found is not None:
        parameters = found.parameters
    load_scene(paths, parameters.frame_count, parameters.size)  # the data, in one line
    _check_semaphores()
    if resume and found is not None:
        todo = sorted(check_frames(paths.images, parameters.frame_count, parameters.size))
        detail = f"locally: {len(todo)} frames to render"
        return lifecycle.resume(paths, found, Mode.LOCAL, detail), todo
    if not force:
        refuse_frames_of_other_runs(paths, parameters, found)
    return lifecycle.begin(paths, Mode.LOCAL, parameters, command=command), None


def _check_semaphores() -> None:
    """The workers share a queue, whose semaphores live in /dev/shm: some nodes and
    containers do not let users create them."""
    try:
        multiprocessing.get_context("fork").SimpleQueue()
    except OSError as error:
        raise UsageError(
            "cannot create the semaphores the local run's workers share "
            f"({error.strerror or error}): /dev/shm must be writable by you (it is mode 1777 "
            "on most systems); ask your admins, or run on Slurm"
        ) from None


def run_local(
    paths: ProjectPaths,
    frame_count: int = DEFAULT_FRAME_COUNT,
    workers: int | None = None,
    gif_width: int | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    resume: bool = False,
    force: bool = False,
    command: list[str] | None = None,
) -> AssemblyResult:
    """Render on all cores, then assemble whatever the renders' outcome.

    With ``resume``, the parameters come from ``output/run.json`` and only the
    missing or broken frames are rendered; a complete run is said so. The
    result's ``times`` hold the render stage and the assembly's stages. ``command``,
    the command line that started the run, goes into its record.
    """
    parameters = Parameters.of(frame_count, size, gif_width)
    check_writable(paths.output)
    found = claim_record(paths, resume=resume)
    with holding_folder(paths, "a local run"):
        if resume and found is not None and run_is_complete(paths, found):
            return complete_run(paths, found, "render")
        record, todo = _begin(paths, parameters, found, resume=resume, force=force, command=command)
        parameters = record.parameters
        with lifecycle.recording_failures(paths, record.run_id):
            began = time.perf_counter()
            render_run(paths, record, todo, workers=workers, force=force)
            rendered = time.perf_counter() - began
            workers_peak = children_peak_mib()  # the workers have ended: none is larger
            result = assemble(
                paths, parameters.frame_count, parameters.gif_width, size=parameters.size
            )
    result.times["render"] = rendered
    result.times.peak("render worker", workers_peak)
    from volcano_gif.run.report import write_report_safely

    write_report_safely(paths)
    result.times.peak("python", peak_memory_mib())  # the report included
    return result


def run_local_command(
    paths: ProjectPaths,
    frame_count: int,
    workers: int | None,
    gif_width: int | None,
    size: tuple[int, int],
    *,
    resume: bool,
    force: bool,
    command: list[str] | None = None,
) -> int:
    """:func:`run_local` as a command: print the outputs' paths; an exit code.

    The one local run of ``volcano-gif local`` and ``submit-gif-job`` (``--local``,
    or no sbatch).
    """
    try:
        result = run_local(
            paths,
            frame_count,
            workers,
            gif_width,
            size,
            resume=resume,
            force=force,
            command=command,
        )
    except RunCancelledError:
        return EXIT_CANCELLED
    for path in (result.mp4, result.gif, result.archive):
        print(path)
    return 0
