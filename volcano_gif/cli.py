"""``volcano-gif``: render, assemble, local, watch, cancel, report, check, verify,
reproduce, compare; and the two steps that ``submit-gif-job`` runs
(``plan-submission``, ``record-submission``).

Heavy modules (matplotlib, PIL, pandas) are imported inside the commands, after
the matplotlib cache folder has been chosen, so ``--help`` and errors are quick.
Data (paths, ids, counts) goes to stdout; messages go to stderr. ``volcano.py``
is :mod:`volcano_gif.task.main`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from volcano_gif.arguments import (
    Parser,
    add_common,
    add_frames_per_task_option,
    add_gif_width_option,
    add_root,
    guarded,
    positive_int,
    run_command,
)
from volcano_gif.errors import UsageError
from volcano_gif.layout import LATENCY_WAIT, LATENCY_WAIT_VARIABLE
from volcano_gif.paths import ProjectPaths
from volcano_gif.task.main import add_render_options, use_project_matplotlib_cache
from volcano_gif.task.main import render as render_frames

logger = logging.getLogger(__name__)

#: The internal steps of submit-gif-job: they parse submit-gif-job's own options.
SUBMISSION_STEPS = ("plan-submission", "record-submission")


def _assemble(args: argparse.Namespace) -> int:
    paths = ProjectPaths(args.root.resolve())
    from volcano_gif.assembly.assembler import assemble

    wait = _default_latency_wait() if args.latency_wait is None else args.latency_wait
    result = assemble(paths, args.frames, args.gif_width, size=args.size, latency_wait=wait)
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
        paths,
        args.frames,
        args.workers,
        args.gif_width,
        args.size,
        resume=args.resume,
        force=args.force,
        command=args.command_line,
    )


def _watch(args: argparse.Namespace) -> int:
    from volcano_gif.run.lifecycle import read_record
    from volcano_gif.run.record import Kind
    from volcano_gif.submit.watch import watch_run

    if args.interval > args.max_interval:
        raise UsageError("--interval must not be larger than --max-interval")
    paths = ProjectPaths(args.root.resolve())
    record = read_record(paths)
    if record is not None and record.kind is Kind.REPRODUCE:
        from volcano_gif.reproduce.rerender import watch_reproduction

        return watch_reproduction(paths, args.interval, args.max_interval, jobs=args.jobs)
    return watch_run(paths, args.interval, args.max_interval, jobs=args.jobs)


def _verify(args: argparse.Namespace) -> int:
    """Check every frame of ARCHIVE against the SHA-256 in the run record it carries;
    when output/run.json is the same run's, also the MP4, the GIF and the archive
    itself. One line per problem; exit status 0 only when all match."""
    from volcano_gif.reproduce.verify import verify_command

    return verify_command(args.archive, ProjectPaths(args.root.resolve()))


def _reproduce(args: argparse.Namespace) -> int:
    """Render the frames of the run in SOURCE (its archive, or its run record) again,
    with its recorded parameters, in output/reproduce/<run id>/, and compare each with
    the SHA-256 in the record and with the archived frame (PSNR). On Slurm as an array
    and a dependent comparison job; with --local (or no sbatch) here. Running it again
    finishes an interrupted reproduction, or prints the outcome. Exit status 0 only when
    every frame is identical."""
    from dataclasses import fields

    from volcano_gif.reproduce.rerender import Options, reproduce

    options = Options(**{field.name: getattr(args, field.name) for field in fields(Options)})
    return reproduce(ProjectPaths(args.root.resolve()), args.source, options)


def _compare(args: argparse.Namespace) -> int:
    from volcano_gif.reproduce.compare import compare_reproduction

    return compare_reproduction(ProjectPaths(args.root.resolve()))


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


def _check(args: argparse.Namespace) -> int:
    """Check that this clone is ready for the lesson: run it the day before, in the clone,
    with the venv active. One line per check on stdout (ok, FAIL with what to do, or
    skip): Python 3.11 or newer; the run-time packages import and ffmpeg runs; jq; sbatch,
    squeue, scontrol, scancel and the controller; both scripts with sbatch --test-only
    and your SBATCH_* variables; one real one-task job that renders a frame into a
    scratch folder (removed afterwards; images/ and output/ are not touched); sacct lists
    it. Then a note per site setting that changes what the lesson shows, and a summary."""
    from volcano_gif.submit.check import run_checks

    return run_checks(ProjectPaths(args.root.resolve()), args.timeout)


def _seconds_from(low: float) -> Callable[[str], float]:
    """An argparse type: a number of seconds from ``low`` to 3600."""

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not low <= value <= 3600:
            raise argparse.ArgumentTypeError(f"{value} s is out of range: use {low} to 3600")
        return value

    return seconds


_seconds = _seconds_from(0.1)  # a poll, a timeout
_wait_seconds = _seconds_from(0)  # --latency-wait: 0 turns it off


def _default_latency_wait() -> float:
    """$VOLCANO_LATENCY_WAIT, else :data:`LATENCY_WAIT` (a bad value is reported as bad input)."""
    text = os.environ.get(LATENCY_WAIT_VARIABLE)
    if not text:
        return LATENCY_WAIT
    try:
        return _wait_seconds(text)
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"{LATENCY_WAIT_VARIABLE}={text}: {error}") from None


_REPORT_HELP = (
    "write output/report/ (tasks.csv, timeline.png, summary.txt) for the current run, "
    "from sacct where the cluster keeps accounting, else from the task timing files"
)
_CHECK_HELP = (
    "before the lesson: check Python, the packages, jq, Slurm, the two scripts "
    "(sbatch --test-only), one real job and accounting"
)
_CHECK_EPILOG = (
    "Exit status 0 when every check passed; 1 when one failed or was skipped "
    "(accounting counts: episode 5 needs it); 2 for bad input."
)
_LATENCY_HELP = (
    "keep looking for frames missing at the first look for S seconds, for a shared "
    f"filesystem that shows them late; 0 turns it off (default {LATENCY_WAIT:.0f}, "
    f"or ${LATENCY_WAIT_VARIABLE})"
)


def build_parser(default_root: Path) -> Parser:
    """The ``volcano-gif`` parser, with its subcommands in the order ``--help`` lists them."""
    from volcano_gif.submit.check_job import JOB_TIMEOUT

    parser = Parser(
        prog="volcano-gif",
        description="Render the rotating volcano, assemble the MP4 and GIF, run both locally, "
        "follow, cancel or report on a run, and check a clone before the lesson.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )

    def add(
        name: str,
        run: Callable[[argparse.Namespace], int],
        text: str,
        first: Callable[[Parser, Path], None] | None = add_root,
        **more: Any,
    ) -> Parser:
        """A command that runs ``run`` (its docstring, if any, describes it), ``first``
        adding its first options: --root, -v and -q, or with --frames and --size before."""
        command = commands.add_parser(name, help=text, description=run.__doc__, **more)
        command.set_defaults(run=run)
        if first is not None:
            first(command, default_root)
        return command

    def flags(command: Parser, *flags: tuple[str, str]) -> None:
        for flag, text in flags:  # on/off options
            command.add_argument(flag, action="store_true", help=text)

    text = "render frames (what each array task runs)"
    add_render_options(add("render", render_frames, text, add_common))
    text = "check the frames, write MP4, GIF and archive, verify, clean images/"
    assemble = add("assemble", _assemble, text, add_common)
    add_gif_width_option(assemble)
    assemble.add_argument("--latency-wait", type=_wait_seconds, metavar="S", help=_LATENCY_HELP)
    local = add("local", _local, "render on all cores, then assemble (no Slurm)", add_common)
    add_gif_width_option(local)
    text = "worker processes (default: one per core)"
    local.add_argument("--workers", type=positive_int, metavar="W", help=text)
    flags(
        local,
        ("--resume", "finish the run in output/run.json: render only what is missing"),
        ("--force", "render every frame again, even those already complete"),
    )
    watch = add("watch", _watch, "follow the run in output/run.json until its GIF is made")
    for flag, default, text in (
        ("--interval", 2.0, "seconds before the second poll (default %(default)s)"),
        ("--max-interval", 30.0, "longest wait between polls (default %(default)s)"),
    ):
        watch.add_argument(flag, type=_seconds, default=default, metavar="S", help=text)
    text = "watch these jobs (default: the run's latest two)"
    watch.add_argument("--jobs", metavar="ARRAY,GIF", help=text)
    text = "cancel the run in output/run.json; rendered frames are kept"
    add("cancel", _cancel, text)
    add("report", _report, _REPORT_HELP)
    check = add("check", _check, _CHECK_HELP, epilog=_CHECK_EPILOG)
    text = (
        "wait at most S seconds for the test job to start and end; a job still queued "
        "then is cancelled (default %(default).0f)"
    )
    check.add_argument("--timeout", type=_seconds, default=JOB_TIMEOUT, metavar="S", help=text)
    # verify, reproduce, compare: was a past run reproducible?
    text = "check an archive against the run record it carries, without rendering"
    verify = add("verify", _verify, text, None)
    text = "output/archives/volcano-images-*.tar.gz"
    verify.add_argument("archive", type=Path, metavar="ARCHIVE", help=text)
    add_root(verify, default_root)
    usage = "volcano-gif reproduce SOURCE [options] [-- extra sbatch options for both jobs]"
    text = "render a past run's frames again and compare them with its record"
    reproduce = add("reproduce", _reproduce, text, None, usage=usage)
    text = "a run's archive (.tar.gz) or run record (run.json)"
    reproduce.add_argument("source", type=Path, metavar="SOURCE", help=text)
    add_frames_per_task_option(reproduce, None, "default: the run's")
    flags(
        reproduce,
        ("--local", "render on this machine even if sbatch is available"),
        ("--force", "render every frame again, in a new reproduction"),
        ("--watch", "after submitting, follow the jobs and print the outcome"),
    )
    add_root(reproduce, default_root)
    text = "compare a reproduction's frames with its run's (what compare_frames.slurm runs)"
    add("compare", _compare, text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``volcano-gif`` and ``python -m volcano_gif``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in SUBMISSION_STEPS:
        from volcano_gif.submit.options import PROG

        if arguments[0] == "plan-submission":
            from volcano_gif.submit.submission import plan_main as step
        else:
            from volcano_gif.submit.record_submission import record_main as step
        return guarded(PROG, lambda: step(arguments[1:]))
    own, extra = arguments, []
    if arguments[:1] == ["reproduce"] and "--" in arguments:  # sbatch's options, for both jobs
        index = arguments.index("--")
        own, extra = arguments[:index], arguments[index + 1 :]
    parser = build_parser(Path.cwd())
    parser.set_defaults(sbatch_options=extra, command_line=["volcano-gif", *arguments])
    return run_command(parser, own)
