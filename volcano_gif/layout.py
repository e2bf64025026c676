"""The shared facts of a run: frame count, frame names, task blocks and folders.

Everything that more than one part of the pipeline needs to agree on is defined
here once. The shell scripts agree with these values; ``tests/test_scripts.py``
checks that they do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

#: Frames in one full turn. Frame n is seen from azimuth 45 + n * 360 / count.
DEFAULT_FRAME_COUNT = 360
#: The largest frame count we accept (frame names have four digits).
MAX_FRAME_COUNT = 9999
#: Frames are numbered 1..count, as in the original recipe and the Slurm array.
FIRST_FRAME = 1
#: ``image0001.png`` ... ``image0360.png``: zero-padded so that names sort.
FRAME_PREFIX = "image"
FRAME_DIGITS = 4
FRAME_SUFFIX = ".png"
FRAME_PATTERN = f"{FRAME_PREFIX}%0{FRAME_DIGITS}d{FRAME_SUFFIX}"  # ffmpeg's form
_FRAME_RE = re.compile(rf"^{FRAME_PREFIX}(\d{{{FRAME_DIGITS}}}){re.escape(FRAME_SUFFIX)}$")

#: Folders, relative to the project root.
DATA_FILE = Path("data/volcano.csv")
IMAGES_DIR = Path("images")
GIFS_DIR = Path("output/gifs")
ARCHIVES_DIR = Path("output/archives")
SLURM_LOG_DIR = Path("output/slurm_files")
MPL_CACHE_DIR = Path(".cache/matplotlib")
MP4_NAME = "volcano.mp4"
#: GIF width in pixels by default; the height keeps the frames' aspect ratio.
DEFAULT_GIF_WIDTH = 400
GIF_NAME = "volcano.gif"
ARCHIVE_PREFIX = "volcano-images-"
ARCHIVE_STAMP_FORMAT = "%Y%m%dT%H%M%S"  # no colons: GNU tar reads host:file

#: Slurm log file patterns: one file per array task (%A job, %a task).
SLURM_ARRAY_LOG_OUT = f"{SLURM_LOG_DIR}/%x-%A_%a.out"
SLURM_ARRAY_LOG_ERR = f"{SLURM_LOG_DIR}/%x-%A_%a.err"
SLURM_JOB_LOG_OUT = f"{SLURM_LOG_DIR}/%x-%j.out"
SLURM_JOB_LOG_ERR = f"{SLURM_LOG_DIR}/%x-%j.err"


class UsageError(ValueError):
    """Bad input from the user: reported as one line, with a non-zero exit."""


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


def frame_name(frame: int) -> str:
    """The file name of frame ``frame``, e.g. ``image0007.png``."""
    return FRAME_PATTERN % frame


def frame_number(name: str) -> int | None:
    """The frame number of a file name made by :func:`frame_name`, else None."""
    match = _FRAME_RE.match(name)
    return int(match.group(1)) if match else None


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


def compress_ranges(frames: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5,9"``: the form of ``sbatch --array``."""
    parts: list[str] = []
    ordered = sorted(set(frames))
    index = 0
    while index < len(ordered):
        start = end = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == end + 1:
            index += 1
            end = ordered[index]
        parts.append(str(start) if start == end else f"{start}-{end}")
        index += 1
    return ",".join(parts)


@dataclass(frozen=True)
class ProjectPaths:
    """Where a run reads and writes, all below one project root."""

    root: Path

    @property
    def data_file(self) -> Path:
        return self.root / DATA_FILE

    @property
    def images(self) -> Path:
        return self.root / IMAGES_DIR

    @property
    def gifs(self) -> Path:
        return self.root / GIFS_DIR

    @property
    def archives(self) -> Path:
        return self.root / ARCHIVES_DIR

    @property
    def slurm_logs(self) -> Path:
        return self.root / SLURM_LOG_DIR

    @property
    def mpl_cache(self) -> Path:
        return self.root / MPL_CACHE_DIR

    @property
    def mp4(self) -> Path:
        return self.gifs / MP4_NAME

    @property
    def gif(self) -> Path:
        return self.gifs / GIF_NAME

    def frame(self, frame: int) -> Path:
        return self.images / frame_name(frame)
