"""``python volcano.py``: render frames, the command every array task runs.

It imports only what a task needs (``volcano_gif.task`` and the small base):
the run's 3D scene from the cache, the renderer, the PNG writer and the task's
timing file. ``volcano-gif render`` is the same command.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from volcano_gif import arguments
from volcano_gif.arguments import Parser, add_common, frame_number, run_command
from volcano_gif.errors import UsageError
from volcano_gif.numbering import check_frame, task_frames
from volcano_gif.paths import ProjectPaths
from volcano_gif.task.folder_owner import check_folder_is_ours

logger = logging.getLogger(__name__)


def add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "frame_numbers",
        nargs="*",
        type=frame_number,
        metavar="FRAME",
        help="frame numbers to render, 1 to the frame count",
    )
    parser.add_argument(
        "--array-task",
        type=frame_number,
        metavar="K",
        help="render the block of array task K (Slurm's $SLURM_ARRAY_TASK_ID)",
    )
    arguments.add_frames_per_task_option(parser, 1, "default 1")
    parser.add_argument(
        "--force",
        action="store_true",
        help="render frames that are already complete on disk again (default: keep them)",
    )
    parser.add_argument(
        "--run-id",
        metavar="RUN",
        help="the run an array task renders for (submit-gif-job passes it): its timing file "
        "says so, and the run report counts the run's own tasks only",
    )


def use_project_matplotlib_cache(paths: ProjectPaths) -> None:
    """Give matplotlib a cache folder in the project, warmed once before a run.

    Hundreds of tasks starting together would otherwise race to build it.
    """
    if "MPLCONFIGDIR" not in os.environ:
        paths.mpl_cache.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(paths.mpl_cache)


def render(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    frame_count: int = args.frames  # checked by argparse (arguments.frame_count_arg)
    timing = None
    if args.array_task is not None:
        if args.frame_numbers:
            raise UsageError("give frame numbers or --array-task, not both")
        frames = list(task_frames(args.array_task, args.frames_per_task, frame_count))
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        if job:  # an array task keeps its timing, for the run report
            from volcano_gif.task.task_timing import TaskTiming

            timing = TaskTiming.for_slurm_task(job, args.array_task, args.run_id)
    elif args.frame_numbers:
        frames = [check_frame(frame, frame_count) for frame in args.frame_numbers]
    else:
        raise UsageError("give a frame number (1 to the frame count) or --array-task K")
    if not args.force:
        check_folder_is_ours(paths, frame_count, args.size, frames, args.run_id)
    use_project_matplotlib_cache(paths)
    from volcano_gif.task.render import FrameRenderer
    from volcano_gif.task.scene import load_scene

    node = os.environ.get("SLURMD_NODENAME")
    logger.info("rendering frames %s of %d%s", frames, frame_count, f" on {node}" if node else "")
    if timing is not None:
        timing.imports_done = time.time()
    try:
        renderer = FrameRenderer.from_scene(load_scene(paths, frame_count, args.size))
        if timing is not None:
            timing.ready = time.time()
        for path in renderer.render_many(frames, paths.images, args.force, timing):
            print(path)
    finally:
        if timing is not None:
            timing.end = time.time()
            try:
                timing.save(paths.timing)
            except OSError as error:
                logger.warning("could not write this task's timing file: %s", error)
    return 0


def build_volcano_parser(default_root: Path) -> Parser:
    """The ``volcano.py`` parser: the render command on its own."""
    parser = Parser(
        prog="volcano.py",
        description="Render frames of the rotating volcano into images/. "
        "Frame n of N is seen from elevation 30, azimuth 45 + n*360/N degrees.",
    )
    add_common(parser, default_root)
    add_render_options(parser)
    parser.set_defaults(run=render)
    return parser


def volcano_main(root: Path, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``volcano.py``; ``root`` is the folder that holds it."""
    return run_command(build_volcano_parser(root), argv)


def exit_without_teardown(code: int) -> NoReturn:
    """Flush the logs and both streams, then end the process at once.

    ``volcano.py`` is a short process (one Slurm task, often one frame). After
    its frames are written (atomically, files closed), Python's own shutdown
    would spend about 0.15 s tearing down matplotlib's modules and figure:
    15% of a one-frame task, measured here. There is nothing left to write
    once logging is shut down and the streams are flushed, so skip it.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
