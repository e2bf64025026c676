"""Frame and task arithmetic: which frames a run has, which task renders which,
sizes and their checks. Bad values raise :class:`~volcano_gif.errors.UsageError`."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable

from volcano_gif.errors import UsageError
from volcano_gif.layout import (
    DEFAULT_GIF_WIDTH,
    FIRST_FRAME,
    MAX_FRAME_COUNT,
    MAX_SIDE,
    MIN_SIDE,
)


def check_frame_count(frame_count: int) -> int:
    """Return ``frame_count`` if it is usable, else raise :class:`UsageError`."""
    if not 1 <= frame_count <= MAX_FRAME_COUNT:
        raise UsageError(f"frame count {frame_count} is out of range: use 1 to {MAX_FRAME_COUNT}")
    return frame_count


def check_frame(frame: int, frame_count: int) -> int:
    """Return ``frame`` if it is one of 1..frame_count, else raise :class:`UsageError`."""
    if not FIRST_FRAME <= frame <= frame_count:
        raise UsageError(
            f"frame {frame} is out of range: use {FIRST_FRAME} to {frame_count} "
            f"(the frame count is {frame_count})"
        )
    return frame


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``, or :class:`UsageError`."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise UsageError(f"size {text!r} is not of the form WIDTHxHEIGHT, e.g. 640x480")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise UsageError(
            f"size {width}x{height} is out of range: each side {MIN_SIDE} to {MAX_SIDE} pixels"
        )
    return width, height


def format_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def frame_label(frame: int, frame_count: int, size: tuple[int, int]) -> str:
    """What a frame's PNG says it is: ``"frame 7 of 360, 640x480"``."""
    return f"frame {frame} of {frame_count}, {format_size(size)}"


def gif_size(size: tuple[int, int], gif_width: int) -> tuple[int, int]:
    """The GIF's size: ``gif_width`` wide, the height rounded as ffmpeg's ``scale=W:-1``."""
    width, height = size
    return gif_width, (gif_width * height + width // 2) // width


def default_gif_width(size: tuple[int, int]) -> int:
    """400 pixels, or the frame width if the frames are narrower."""
    return min(DEFAULT_GIF_WIDTH, size[0])


def gif_width_for(size: tuple[int, int], gif_width: int | None) -> int:
    """The GIF width of a run: ``gif_width``, or the default; never wider than the frames.

    A GIF wider than its frames would only be upscaled: slow and blurred
    (10000 px from 64x48 frames took 46 s and 20 MB), so it is refused.
    """
    if gif_width is None:
        return default_gif_width(size)
    if gif_width > size[0]:
        raise UsageError(
            f"--gif-width {gif_width} is wider than the frames ({size[0]} px): a GIF is never "
            f"scaled up; use --gif-width {size[0]} or less, or a larger --size"
        )
    return gif_width


def expected_frames(frame_count: int) -> range:
    """Every frame of a run of ``frame_count`` frames."""
    return range(FIRST_FRAME, check_frame_count(frame_count) + FIRST_FRAME)


def azimuth(frame: int, frame_count: int) -> float:
    """Azimuth in degrees of frame ``frame``: 45 + frame * 360 / count.

    For 360 frames this is the original ``45 + n``; frame ``count`` is a full
    turn from frame 0, so frames 1..count close the loop with no repeat.
    """
    return 45.0 + frame * 360.0 / frame_count


ELEVATION = 30.0


def task_count(frame_count: int, frames_per_task: int) -> int:
    """How many array tasks render ``frame_count`` frames, ``frames_per_task`` each."""
    check_frame_count(frame_count)
    if frames_per_task < 1:
        raise UsageError(f"frames per task must be at least 1, not {frames_per_task}")
    return math.ceil(frame_count / frames_per_task)


def task_frames(task: int, frames_per_task: int, frame_count: int) -> range:
    """The contiguous block of frames that array task ``task`` (1-based) renders."""
    tasks = task_count(frame_count, frames_per_task)
    if not 1 <= task <= tasks:
        raise UsageError(
            f"array task {task} is out of range: {frame_count} frames at "
            f"{frames_per_task} per task make tasks 1 to {tasks}"
        )
    first = (task - 1) * frames_per_task + FIRST_FRAME
    return range(first, min(first + frames_per_task, frame_count + FIRST_FRAME))


def task_of_frame(frame: int, frames_per_task: int) -> int:
    """The array task (1-based) whose block holds ``frame``."""
    return (frame - FIRST_FRAME) // frames_per_task + 1


def compress_ranges(numbers: Iterable[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5,9"``: the form of ``sbatch --array``."""
    ordered = enumerate(sorted(set(numbers)))
    blocks = [[n for _, n in run] for _, run in itertools.groupby(ordered, lambda p: p[1] - p[0])]
    return ",".join(f"{b[0]}-{b[-1]}" if len(b) > 1 else str(b[0]) for b in blocks)


def split_evenly(frames: range, parts: int) -> list[range]:
    """Split ``frames`` into at most ``parts`` contiguous, near-equal blocks."""
    parts = max(1, min(parts, len(frames)))
    size, extra = divmod(len(frames), parts)
    blocks: list[range] = []
    start = frames.start
    for index in range(parts):
        stop = start + size + (1 if index < extra else 0)
        blocks.append(range(start, stop))
        start = stop
    return [block for block in blocks if len(block)]
