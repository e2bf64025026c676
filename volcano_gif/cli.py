"""Command lines: ``volcano.py`` (render) and ``volcano-gif`` (render, assemble, local,
watch, cancel, report; and the two steps that ``submit-gif-job`` runs).

Heavy modules (matplotlib, PIL, pandas) are imported inside the commands, after
the matplotlib cache folder has been chosen, so ``--help`` and errors are quick.
Data (paths, ids, counts) goes to stdout; messages go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from volcano_gif.arguments import (
    EXIT_USAGE,
    Parser,
    frame_count_arg,
    frame_number,
    positive_int,
    size_arg,
    task_option,
)
from volcano_gif.layout import (
    DEFAULT_FRAME_COUNT,
    DEFAULT_SIZE,
    ProjectPaths,
    UsageError,
    check_frame,
    check_frame_count,
    format_size,
    task_frames,
)

logger = logging.getLogger(__name__)

EXIT_FAILURE = 1
#: The internal steps of submit-gif-job: they parse submit-gif-job's own options.
SUBMISSION_STEPS = ("plan-submission", "record-submission")


def _add_common(parser: argparse.ArgumentParser, default_root: Path) -> None:
    parser.add_argument(
        "--frame-count", type=frame_count_arg, default=DEFAULT_FRAME_COUNT, metavar="N",
        help=f"frames in one full turn (default {DEFAULT_FRAME_COUNT})",
    )  # fmt: skip
    parser.add_argument(
        "--size", type=size_arg, default=DEFAULT_SIZE, metavar="WxH",
        help=f"frame size in pixels (default {format_size(DEFAULT_SIZE)})",
    )  # fmt: skip
    _add_root(parser, default_root)


def _add_root(parser: argparse.ArgumentParser, default_root: Path) -> None:
    parser.add_argument(
        "--root", type=Path, default=default_root, metavar="DIR",
        help="project folder holding data/, images/ and output/ (default %(default)s)",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "frames", nargs="*", type=frame_number, metavar="FRAME",
        help="frame numbers to render, 1 to the frame count",
    )  # fmt: skip
    parser.add_argument(
        "--array-task", type=frame_number, metavar="K",
        help="render the block of array task K (Slurm's $SLURM_ARRAY_TASK_ID)",
    )  # fmt: skip
    parser.add_argument(
        "--frames-per-task", type=task_option, default=1, metavar="F",
        help="frames each array task renders, as a contiguous block (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--force", action="store_true",
        help="render frames that are already complete on disk again (default: keep them)",
    )  # fmt: skip


def use_project_matplotlib_cache(paths: ProjectPaths) -> None:
    """Give matplotlib a cache folder in the project, warmed once before a run.

    Hundreds of tasks starting together would otherwise race to build it.
    """
    if "MPLCONFIGDIR" not in os.environ:
        paths.mpl_cache.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(paths.mpl_cache)


def _render(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    frame_count = check_frame_count(args.frame_count)
    timing = None
    if args.array_task is not None:
        if args.frames:
            raise UsageError("give frame numbers or --array-task, not both")
        frames = list(task_frames(args.array_task, args.frames_per_task, frame_count))
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        if job:  # an array task keeps its timing, for the run report
            from volcano_gif.task_timing import TaskTiming

            timing = TaskTiming.for_slurm_task(job, args.array_task)
    elif args.frames:
        frames = [check_frame(frame, frame_count) for frame in args.frames]
    else:
        raise UsageError("give a frame number (1 to the frame count) or --array-task K")
    use_project_matplotlib_cache(paths)
    from volcano_gif.render import FrameRenderer
    from volcano_gif.scene import load_scene

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


def _assemble(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    from volcano_gif.assembler import assemble

    result = assemble(paths, check_frame_count(args.frame_count), args.gif_width, size=args.size)
    for path in (result.mp4, result.gif, result.archive):
        print(path)
    from volcano_gif.report import write_report_safely

    write_report_safely(paths)
    return 0


def _local(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    use_project_matplotlib_cache(paths)
    from volcano_gif.local_runner import EXIT_CANCELLED, RunCancelledError, run_local

    try:
        result = run_local(
            paths, check_frame_count(args.frame_count), args.workers, args.gif_width,
            args.size, resume=args.resume, force=args.force,
        )  # fmt: skip
    except RunCancelledError:
        return EXIT_CANCELLED
    for path in (result.mp4, result.gif, result.archive):
        print(path)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from volcano_gif.watch import watch_run

    if args.interval > args.max_interval:
        raise UsageError("--interval must not be larger than --max-interval")
    return watch_run(
        ProjectPaths(args.root.resolve()), args.interval, args.max_interval, jobs=args.jobs
    )


def _cancel(args: argparse.Namespace) -> int:
    from volcano_gif.submission import cancel_run

    return cancel_run(ProjectPaths(args.root.resolve()))


def _report(args: argparse.Namespace) -> int:
    from volcano_gif.report import write_report

    paths = ProjectPaths(args.root.resolve())
    report = write_report(paths)
    for line in report.summary:
        print(line, file=sys.stderr)
    print(report.tasks_csv)
    print(report.timeline_png)
    return 0


def _add_gif_width(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gif-width", type=positive_int, default=None, metavar="PX",
        help="GIF width in pixels; the height keeps the aspect ratio "
        "(default 400, or the frame width if narrower)",
    )  # fmt: skip


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{value} s is out of range: use 0.1 to 3600")
    return value


def build_parser(default_root: Path) -> Parser:
    """The ``volcano-gif`` parser, with its subcommands."""
    parser = Parser(
        prog="volcano-gif",
        description="Render the rotating volcano, assemble the MP4 and GIF, run both locally, "
        "and follow, cancel or report on a run.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=Parser)  # fmt: skip
    render = commands.add_parser("render", help="render frames (what each array task runs)")
    _add_common(render, default_root)
    _add_render_options(render)
    render.set_defaults(run=_render)
    assemble = commands.add_parser(
        "assemble", help="check the frames, write MP4, GIF and archive, verify, clean images/"
    )
    _add_common(assemble, default_root)
    _add_gif_width(assemble)
    assemble.set_defaults(run=_assemble)
    local = commands.add_parser("local", help="render on all cores, then assemble (no Slurm)")
    _add_common(local, default_root)
    _add_gif_width(local)
    local.add_argument(
        "--workers", type=positive_int, default=None, metavar="W",
        help="worker processes (default: one per core)",
    )  # fmt: skip
    local.add_argument(
        "--resume", action="store_true",
        help="finish the run in output/run.json: render only what is missing",
    )  # fmt: skip
    local.add_argument(
        "--force", action="store_true",
        help="render every frame again, even those already complete",
    )  # fmt: skip
    local.set_defaults(run=_local)
    watch = commands.add_parser(
        "watch", help="follow the run in output/run.json until its GIF is made"
    )
    _add_root(watch, default_root)
    watch.add_argument("--interval", type=_seconds, default=2.0, metavar="S",
                       help="seconds before the second poll (default %(default)s)")  # fmt: skip
    watch.add_argument("--max-interval", type=_seconds, default=30.0, metavar="S",
                       help="longest wait between polls (default %(default)s)")  # fmt: skip
    watch.add_argument("--jobs", metavar="ARRAY,GIF",
                       help="watch these jobs (default: the run's latest two)")  # fmt: skip
    watch.set_defaults(run=_watch)
    cancel = commands.add_parser(
        "cancel", help="cancel the run in output/run.json; rendered frames are kept"
    )
    _add_root(cancel, default_root)
    cancel.set_defaults(run=_cancel)
    report = commands.add_parser(
        "report", help="write output/report/ (tasks.csv, timeline.png) for the current run"
    )
    _add_root(report, default_root)
    report.set_defaults(run=_report)
    return parser


def build_volcano_parser(default_root: Path) -> Parser:
    """The ``volcano.py`` parser: the render command on its own."""
    parser = Parser(
        prog="volcano.py",
        description="Render frames of the rotating volcano into images/. "
        "Frame n of N is seen from elevation 30, azimuth 45 + n*360/N degrees.",
    )
    _add_common(parser, default_root)
    _add_render_options(parser)
    parser.set_defaults(run=_render)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    _configure_logging(args)
    command: Callable[[argparse.Namespace], int] = args.run
    return guarded(parser.prog, lambda: command(args))


def guarded(prog: str, command: Callable[[], int]) -> int:
    """Run ``command``; report a failure as one line (or a few, for frames) and a code."""
    from volcano_gif.commands import CommandError

    try:
        return command()
    except BrokenPipeError:  # e.g. `... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except ModuleNotFoundError as error:
        print(
            f"{prog}: error: Python package {error.name!r} is missing for {sys.executable}: "
            "install the project (python3 -m venv .venv && .venv/bin/pip install -e .) "
            "or point VOLCANO_PYTHON at a Python that has it",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, OSError, RuntimeError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``volcano-gif`` and ``python -m volcano_gif``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in SUBMISSION_STEPS:
        from volcano_gif import submission

        step = submission.plan_main if arguments[0] == "plan-submission" else (
            submission.record_main)  # fmt: skip
        return guarded(submission.PROG, lambda: step(arguments[1:]))
    return _run(build_parser(Path.cwd()), arguments)


def volcano_main(root: Path, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``volcano.py``; ``root`` is the folder that holds it."""
    return _run(build_volcano_parser(root), argv)


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
