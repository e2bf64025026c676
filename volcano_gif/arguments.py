"""Command-line parsing shared by ``volcano.py``, ``volcano-gif`` and ``submit-gif-job``.

Bad input is reported as one line on stderr (``prog: error: ...``) with exit
status 2, never a traceback and never a usage block.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from volcano_gif.layout import MAX_FRAME_COUNT, MAX_TASK_OPTION, UsageError, parse_size

EXIT_USAGE = 2


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
