"""``volcano-gif``: render, assemble, local, watch, cancel, report; and the two
steps that ``submit-gif-job`` runs (``plan-submission``, ``record-submission``).

Heavy modules (matplotlib, PIL, pandas) are imported inside the commands, after
the matplotlib cache folder has been chosen, so ``--help`` and errors are quick.
Data (paths, ids, counts) goes to stdout; messages go to stderr. ``volcano.py``
is :mod:`volcano_gif.task.command`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from volcano_gif.arguments import Parser
from volcano_gif.arguments import add_common
from volcano_gif.arguments import add_root
from volcano_gif.arguments import guarded
from volcano_gif.arguments import positive_int
from volcano_gif.arguments import run_command
from volcano_gif.layout import ProjectPaths
from volcano_gif.layout import UsageError
from volcano_gif.layout import check_frame_count
from volcano_gif.task.command import add_render_options
from volcano_gif.task.command import render as render_frames
from volcano_gif.task.command import use_project_matplotlib_cache

logger = logging.getLogger(__name__)

#: The internal steps of submit-gif-job: they parse submit-gif-job's own options.
SUBMISSION_STEPS = ("plan-submission", "record-submission")


def _assemble(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    from volcano_gif.assembly.assembler import assemble

    result = assemble(paths, check_frame_count(args.frames), args.gif_width, size=args.size)
    for path in (result.mp4, result.gif, result.archive):
        print(path)
    from volcano_gif.run.report import write_report_safely

    write_report_safely(paths)
    return 0


def _local(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    use_project_matplotlib_cache(paths)
    from volcano_gif.local.runner import run_local_command

    return run_local_command(
        paths, check_frame_count(args.frames), args.workers, args.gif_width, args.size,
        resume=args.resume, force=args.force,
    )  # fmt: skip


def _watch(args: argparse.Namespace) -> int:
    from volcano_gif.submit.watch import watch_run

    if args.interval > args.max_interval:
        raise UsageError("--interval must not be larger than --max-interval")
    return watch_run(
        ProjectPaths(args.root.resolve()), args.interval, args.max_interval, jobs=args.jobs
    )


def _cancel(args: argparse.Namespace) -> int:
    from volcano_gif.run.cancel import cancel_run

    return cancel_run(ProjectPaths(args.root.resolve()))


def _report(args: argparse.Namespace) -> int:
    from volcano_gif.run.report import write_report

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
    add_common(render, default_root)
    add_render_options(render)
    render.set_defaults(run=render_frames)
    assemble = commands.add_parser(
        "assemble", help="check the frames, write MP4, GIF and archive, verify, clean images/"
    )
    add_common(assemble, default_root)
    _add_gif_width(assemble)
    assemble.set_defaults(run=_assemble)
    local = commands.add_parser("local", help="render on all cores, then assemble (no Slurm)")
    add_common(local, default_root)
    _add_gif_width(local)
    local.add_argument(
        "--workers", type=positive_int, default=None, metavar="W",
        help="worker processes (default: one per core)",
    )  # fmt: skip
    for flag, text in (
        ("--resume", "finish the run in output/run.json: render only what is missing"),
        ("--force", "render every frame again, even those already complete"),
    ):
        local.add_argument(flag, action="store_true", help=text)
    local.set_defaults(run=_local)
    watch = commands.add_parser(
        "watch", help="follow the run in output/run.json until its GIF is made"
    )
    add_root(watch, default_root)
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
    add_root(cancel, default_root)
    cancel.set_defaults(run=_cancel)
    report = commands.add_parser(
        "report",
        help="write output/report/ (tasks.csv, timeline.png, summary.txt) for the current run, "
        "from sacct where the cluster keeps accounting, else from the task timing files",
    )
    add_root(report, default_root)
    report.set_defaults(run=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``volcano-gif`` and ``python -m volcano_gif``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in SUBMISSION_STEPS:
        from volcano_gif.submit import submission

        step = submission.plan_main if arguments[0] == "plan-submission" else (
            submission.record_main)  # fmt: skip
        return guarded(submission.PROG, lambda: step(arguments[1:]))
    return run_command(build_parser(Path.cwd()), arguments)
