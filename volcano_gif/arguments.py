"""Command-line parsing shared by ``volcano.py``, ``volcano-gif`` and ``submit-gif-job``.

Bad input is reported as one line on stderr (``prog: error: ...``) with exit
status 2, never a traceback and never a usage block.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from volcano_gif.errors import UsageError
from volcano_gif.layout import DEFAULT_FRAME_COUNT, DEFAULT_SIZE, MAX_FRAME_COUNT, MAX_TASK_OPTION
from volcano_gif.numbering import format_size, parse_size

#: Exit codes of every command: 1 a failure, 2 bad input (as argparse),
#: 128 + SIGTERM a run that was cancelled.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 128 + signal.SIGTERM
#: Where an option can be added: a parser, or a group of its options.
ParserOrGroup = argparse.ArgumentParser | argparse._ArgumentGroup


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line that says where to find help."""

    def __init__(self, *args: object, help_command: str | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.help_command = help_command

    def error(self, message: str) -> NoReturn:
        hint = self.help_command or f"{self.prog} --help"
        print(f"{self.prog}: error: {message} (see {hint})", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _whole_number(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def frame_count_arg(text: str) -> int:
    value = positive_int(text)
    if value > MAX_FRAME_COUNT:
        raise argparse.ArgumentTypeError(
            f"frame count {value} is out of range: use 1 to {MAX_FRAME_COUNT}"
        )
    return value


def add_frames_option(parser: ParserOrGroup, default: int | None) -> None:
    """``--frames N``, the frame count, the same for every command that takes it."""
    text = f"frames in one full turn (default {DEFAULT_FRAME_COUNT})"
    parser.add_argument("--frames", type=frame_count_arg, default=default, metavar="N", help=text)


def task_option(text: str) -> int:
    """--frames-per-task and --max-running: 1 to 9999."""
    value = positive_int(text)
    if value > MAX_TASK_OPTION:
        raise argparse.ArgumentTypeError(f"{value} is out of range: use 1 to {MAX_TASK_OPTION}")
    return value


def frame_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a frame number; give a whole number such as 1"
        ) from None


def size_arg(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_common(parser: argparse.ArgumentParser, default_root: Path) -> None:
    add_frames_option(parser, DEFAULT_FRAME_COUNT)
    add_size_option(parser, DEFAULT_SIZE)
    add_root(parser, default_root)


def add_size_option(parser: ParserOrGroup, default: tuple[int, int] | None) -> None:
    """``--size WxH``, the frame size, the same for every command that takes it."""
    text = f"frame size in pixels (default {format_size(DEFAULT_SIZE)})"
    parser.add_argument("--size", type=size_arg, default=default, metavar="WxH", help=text)


def add_gif_width_option(parser: ParserOrGroup) -> None:
    """``--gif-width PX``: the GIF's width; the run's record keeps it."""
    text = (
        "GIF width in pixels; the height keeps the aspect ratio "
        "(default 400, or the frame width if narrower)"
    )
    parser.add_argument("--gif-width", type=positive_int, metavar="PX", help=text)


def add_frames_per_task_option(parser: ParserOrGroup, default: int | None, said: str) -> None:
    """``--frames-per-task F``; ``said`` tells the default, as the command has it."""
    text = f"frames each array task renders, as a contiguous block ({said})"
    parser.add_argument(
        "--frames-per-task", type=task_option, default=default, metavar="F", help=text
    )


def add_root(parser: argparse.ArgumentParser, default_root: Path) -> None:
    text = "project folder holding data/, images/ and output/ (default %(default)s)"
    parser.add_argument("--root", type=Path, default=default_root, metavar="DIR", help=text)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")


def configure_logging(args: argparse.Namespace) -> None:
    """Logging for a command's ``-v``/``-q``: messages to stderr, data stays on stdout."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Our steps, not matplotlib's ("generated new fontManager" on a first run).
    logging.getLogger("matplotlib").setLevel(max(level, logging.WARNING))


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv``, configure logging, run the chosen command, guarded."""
    args = parser.parse_args(argv)
    configure_logging(args)
    command: Callable[[argparse.Namespace], int] = args.run
    return guarded(parser.prog, lambda: command(args))


def lines_in_order() -> None:
    """Write every stdout line at once, as stderr does, so that the two keep their order.

    Through a pipe (``2>&1 | tail``) Python holds stdout back in a buffer until it
    fills or the program ends: the job ids a submission prints would come after
    the watch that follows them, and an error before the lines printed ahead of it.
    """
    if isinstance(sys.stdout, io.TextIOWrapper) and not sys.stdout.line_buffering:
        sys.stdout.reconfigure(line_buffering=True)


def guarded(prog: str, command: Callable[[], int]) -> int:
    """Run ``command``; report a failure as one line (or a few, for frames) and a code.

    Output keeps its order whether it goes to a terminal, a pipe or a file.
    """
    from volcano_gif.commands import CommandError

    lines_in_order()
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
    except KeyboardInterrupt as stop:  # Ctrl-C; SIGTERM too, as lifecycle.Stopped
        name = getattr(stop, "signal", "SIGINT")
        line = stop.line() if hasattr(stop, "line") else "stopped by SIGINT (Ctrl-C)"
        way = getattr(stop, "way", "")
        print(f"{prog}: {line}" + (f"; finish the run with: {way}" if way else ""), file=sys.stderr)
        return 128 + signal.Signals[name]
