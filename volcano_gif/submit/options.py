"""``submit-gif-job``'s options: the parser, and the combinations it refuses.

The frame options (``--frames``, ``--size``, ``--gif-width``, ``--frames-per-task``)
are :mod:`volcano_gif.arguments`' own, shared with every command that takes them;
they default to None here: a ``--resume`` takes them from the run's record.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence

from volcano_gif.arguments import (
    Parser,
    add_frames_option,
    add_frames_per_task_option,
    add_gif_width_option,
    add_size_option,
    task_option,
)
from volcano_gif.errors import UsageError
from volcano_gif.layout import SUBMIT_SCRIPT

PROG = SUBMIT_SCRIPT
#: The options that describe the frames: a --resume takes them from the record.
RUN_SHAPE_OPTIONS = ("frames", "frames_per_task", "size", "gif_width")

_DESCRIPTION = (
    "Render the rotating volcano as a Slurm job array, then assemble "
    "output/gifs/volcano.mp4 and volcano.gif in a job that depends on the array "
    "(afterany). Without sbatch on PATH, or with --local, both stages run on this "
    "machine. One run per folder: its record is output/run.json."
)
_EPILOG = (
    "Site settings come from sbatch's own variables, e.g. "
    f"SBATCH_ACCOUNT=myproject SBATCH_PARTITION=short bash {PROG}. "
    "The jobs run $VOLCANO_PYTHON, else .venv/bin/python here, else python3."
)
#: What to do, in the order --help lists it; the pairs that exclude each other
#: share a group ("resume" against "force", "local" against "watch").
_ACTIONS = (
    ("--local", "local", "run on this machine even if sbatch is available"),
    (
        "--resume",
        "resume",
        "finish the run in output/run.json: render only the missing frames (one array), "
        "then assemble",
    ),
    (
        "--force",
        "resume",
        "render every frame again, even those already complete, and overwrite frames of "
        "another run",
    ),
    (
        "--dry-run",
        None,
        "print the sbatch commands, check them with sbatch --test-only, submit nothing",
    ),
    ("--watch", "local", "after submitting, follow the run until the GIF is made"),
    (
        "--cancel",
        None,
        "cancel the jobs of the run in output/run.json (one scancel); rendered frames are "
        "kept for --resume",
    ),
)


def build_parser() -> Parser:
    """The parser of ``submit-gif-job``'s own options (those before ``--``)."""
    parser = Parser(
        prog=PROG,
        help_command=f"bash {PROG} --help",
        usage=f"bash {PROG} [options] [-- extra sbatch options for both jobs]",
        description=_DESCRIPTION,
        epilog=_EPILOG,
    )
    _add_run_shape(parser.add_argument_group("the run"))
    _add_actions(parser.add_argument_group("what to do"))
    return parser


def _add_run_shape(shape: argparse._ArgumentGroup) -> None:
    add_frames_option(shape, None)
    add_frames_per_task_option(shape, None, "default 1; raised to fit the cluster's MaxArraySize")
    add_size_option(shape, None)
    add_gif_width_option(shape)
    text = "run at most M array tasks at once (sbatch --array=...%%M)"
    shape.add_argument("--max-running", type=task_option, metavar="M", help=text)


def _add_actions(how: argparse._ArgumentGroup) -> None:
    exclusive = {name: how.add_mutually_exclusive_group() for name in ("local", "resume")}
    for flag, group, text in _ACTIONS:
        (exclusive[group] if group else how).add_argument(flag, action="store_true", help=text)


def split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Our options, and the extra sbatch options after ``--``."""
    argv = list(argv)
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def check_combinations(args: argparse.Namespace, extra: list[str]) -> None:
    """Refuse what argparse's groups cannot say: raise :class:`UsageError`."""
    if args.cancel and any(
        getattr(args, name) for name in (*RUN_SHAPE_OPTIONS, "resume", "force", "dry_run", "watch")
    ):
        raise UsageError("--cancel takes no other options")
    given = [
        f"--{name.replace('_', '-')}"
        for name in RUN_SHAPE_OPTIONS
        if getattr(args, name) is not None
    ]
    if args.resume and given:
        raise UsageError(
            f"--resume takes the run's {', '.join(given)} from output/run.json: "
            "leave them out (or start a new run without --resume)"
        )
    check_sbatch_extra(extra)


#: sbatch options after ``--`` that would break a run's shape: (short form, why).
SHAPE_OPTIONS = {
    "array": ("a", "each submission's --array is the plan's: use --frames, --frames-per-task"),
    "dependency": ("d", "the assembly's afterany dependency on the array is the plan's"),
    "parsable": (None, "submit-gif-job gives it, to read the job ids"),
    "wrap": (None, "the jobs run the project's scripts"),
    "test-only": (None, "use --dry-run"),
    "wait": ("W", "the assembly must be queued while the array waits"),
    "chdir": ("D", "the jobs run in the project folder"),
    "comment": (None, "the jobs' comment names their run"),
    "clusters": ("M", "the jobs must be where squeue and the watch find them"),
}


def check_sbatch_extra(extra: Sequence[str]) -> None:
    """Raise UsageError for an option after ``--`` that holds a line break, or would break
    the run's shape. sbatch takes a long option's unambiguous abbreviation (``--arr``): so
    do we."""
    if any("\n" in option for option in extra):
        raise UsageError("sbatch options after -- must not contain line breaks")
    exports = [o.split("=", 1)[-1] for o in extra if o.startswith("--exp")]
    site = os.environ.get("SBATCH_EXPORT")
    if any("ALL" not in value.split(",") for value in [*exports, *([site] if site else [])]):
        raise UsageError(
            "--export (or SBATCH_EXPORT) without ALL: the jobs would not see VOLCANO_PYTHON, "
            "this project's Python, and every task would fail; add ALL (--export=ALL,...)"
        )
    shorts = {short: long for long, (short, _) in SHAPE_OPTIONS.items() if short}
    for option in extra:
        if option.startswith("--"):
            name = option[2:].split("=", 1)[0]
            hit = next((long for long in SHAPE_OPTIONS if name and long.startswith(name)), None)
        else:  # a cluster of short flags, up to the first that takes a value: -Ha 1-3
            flags = re.match(r"-[HhkOQsuvVW]*.?", option)
            hit = next((shorts[c] for c in flags.group(0) if c in shorts), None) if flags else None
        if hit is not None:
            raise UsageError(
                f"{option} after -- would break the run's shape ({SHAPE_OPTIONS[hit][1]}): "
                "leave it out; other sbatch options pass to both jobs"
            )


def configure_logging() -> None:
    """Logging for both of the script's steps: ``submit-gif-job: message`` on stderr."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=f"{PROG}: %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # our steps, not matplotlib's
