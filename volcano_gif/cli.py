"""Command lines: ``volcano.py`` (render) and ``volcano-gif`` (render, assemble, local).

Heavy modules (matplotlib, PIL) are imported inside the commands, after the
matplotlib cache folder has been chosen, so ``--help`` and errors are quick.
Data (paths, ids, counts) goes to stdout; messages go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from volcano_gif.layout import (
    DEFAULT_FRAME_COUNT,
    DEFAULT_GIF_WIDTH,
    ProjectPaths,
    UsageError,
    check_frame,
    check_frame_count,
    task_count,
    task_frames,
)

logger = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _frame_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a frame number; give a whole number such as 1"
        ) from None


def _add_common(parser: argparse.ArgumentParser, default_root: Path) -> None:
    parser.add_argument(
        "--frame-count", type=_positive_int, default=DEFAULT_FRAME_COUNT, metavar="N",
        help=f"frames in one full turn (default {DEFAULT_FRAME_COUNT})",
    )  # fmt: skip
    parser.add_argument(
        "--root", type=Path, default=default_root, metavar="DIR",
        help="project folder holding data/, images/ and output/ (default %(default)s)",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "frames", nargs="*", type=_frame_number, metavar="FRAME",
        help="frame numbers to render, 1 to the frame count",
    )  # fmt: skip
    parser.add_argument(
        "--array-task", type=_frame_number, metavar="K",
        help="render the block of array task K (Slurm's $SLURM_ARRAY_TASK_ID)",
    )  # fmt: skip
    parser.add_argument(
        "--frames-per-task", type=_positive_int, default=1, metavar="F",
        help="frames each array task renders, as a contiguous block (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--preflight", action="store_true",
        help="check the data and settings, build the matplotlib font cache, "
        "print the number of array tasks, render nothing",
    )  # fmt: skip


def _use_project_matplotlib_cache(paths: ProjectPaths) -> None:
    """Give matplotlib a cache folder in the project, warmed once before a run.

    Hundreds of tasks starting together would otherwise race to build it.
    """
    if "MPLCONFIGDIR" not in os.environ:
        paths.mpl_cache.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(paths.mpl_cache)


def _render(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    frame_count = check_frame_count(args.frame_count)
    tasks = task_count(frame_count, args.frames_per_task)
    if args.preflight:
        if args.frames or args.array_task is not None:
            raise UsageError("--preflight renders nothing: give no frames and no --array-task")
        from volcano_gif.data import load_grid

        load_grid(paths.data_file)
        _use_project_matplotlib_cache(paths)
        import matplotlib.font_manager  # noqa: F401  (builds the font cache)

        print(tasks)
        return 0
    if args.array_task is not None:
        if args.frames:
            raise UsageError("give frame numbers or --array-task, not both")
        frames = list(task_frames(args.array_task, args.frames_per_task, frame_count))
    elif args.frames:
        frames = [check_frame(frame, frame_count) for frame in args.frames]
    else:
        raise UsageError("give a frame number (1 to the frame count) or --array-task K")
    from volcano_gif.data import load_grid

    grid = load_grid(paths.data_file)
    _use_project_matplotlib_cache(paths)
    from volcano_gif.render import FrameRenderer

    node = os.environ.get("SLURMD_NODENAME")
    logger.info("rendering frames %s of %d%s", frames, frame_count, f" on {node}" if node else "")
    renderer = FrameRenderer(grid, frame_count)
    for path in renderer.render_many(frames, paths.images):
        print(path)
    return 0


def _assemble(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    from volcano_gif.assembler import assemble

    result = assemble(paths, check_frame_count(args.frame_count), args.gif_width)
    for path in (result.mp4, result.gif, result.archive):
        print(path)
    return 0


def _local(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    _use_project_matplotlib_cache(paths)
    from volcano_gif.local_runner import run_local

    result = run_local(paths, check_frame_count(args.frame_count), args.workers, args.gif_width)
    for path in (result.mp4, result.gif, result.archive):
        print(path)
    return 0


def _add_gif_width(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gif-width", type=_positive_int, default=DEFAULT_GIF_WIDTH, metavar="PX",
        help="GIF width in pixels; the height keeps the aspect ratio (default %(default)s)",
    )  # fmt: skip


def build_parser(default_root: Path) -> argparse.ArgumentParser:
    """The ``volcano-gif`` parser, with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="volcano-gif",
        description="Render the rotating volcano, assemble the MP4 and GIF, or do both locally.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render = commands.add_parser("render", help="render frames (what each array task runs)")
    _add_common(render, default_root)
    _add_render_options(render)
    render.set_defaults(run=_render)
    assemble = commands.add_parser(
        "assemble", help="check the frames, write MP4, GIF and archive, then clean images/"
    )
    _add_common(assemble, default_root)
    _add_gif_width(assemble)
    assemble.set_defaults(run=_assemble)
    local = commands.add_parser("local", help="render on all cores, then assemble (no Slurm)")
    _add_common(local, default_root)
    _add_gif_width(local)
    local.add_argument(
        "--workers", type=_positive_int, default=None, metavar="W",
        help="worker processes (default: one per core)",
    )  # fmt: skip
    local.set_defaults(run=_local)
    return parser


def build_volcano_parser(default_root: Path) -> argparse.ArgumentParser:
    """The ``volcano.py`` parser: the render command on its own."""
    parser = argparse.ArgumentParser(
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
    from volcano_gif.commands import CommandError

    try:
        return command(args)
    except ModuleNotFoundError as error:
        print(
            f"{parser.prog}: error: Python package {error.name!r} is missing for {sys.executable}: "
            "install the project (python3 -m venv .venv && .venv/bin/pip install -e .) "
            "or point VOLCANO_PYTHON at a Python that has it",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, OSError, RuntimeError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``volcano-gif`` and ``python -m volcano_gif``."""
    return _run(build_parser(Path.cwd()), argv)


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
