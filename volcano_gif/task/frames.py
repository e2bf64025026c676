"""Is a frame on disk the complete frame this run wants?

A frame is usable when its file decodes in full, has the run's size, and its
PNG label (see :func:`volcano_gif.numbering.frame_label`) names this frame of a
run with this frame count and size. Render tasks ask this before skipping a
frame that exists; the assembler asks it of every frame before using any.
Pillow is imported only when a frame file exists, so that a render task that
starts from an empty folder does not pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from volcano_gif.layout import FRAME_LABEL_KEY, frame_name, frame_number
from volcano_gif.numbering import expected_frames, format_size, frame_label


class FrameVerdict(Enum):
    """What is wrong with a frame file."""

    MISSING = "missing"
    BROKEN = "broken"  # not a file, or does not decode in full
    OTHER_RUN = "other run"  # decodes, but is another run's frame (size or label)


@dataclass(frozen=True)
class FrameProblem:
    verdict: FrameVerdict
    text: str

    def __str__(self) -> str:
        return self.text


def inspect_frame(
    path: Path, frame: int, frame_count: int, size: tuple[int, int]
) -> FrameProblem | None:
    """What is wrong with the file at ``path`` as frame ``frame`` of this run, or None."""
    if not path.exists():
        return FrameProblem(FrameVerdict.MISSING, f"missing: {path}")
    if not path.is_file():
        return FrameProblem(FrameVerdict.BROKEN, f"is not a file: {path}")
    from PIL import Image

    try:
        with Image.open(path) as image:
            label = image.info.get(FRAME_LABEL_KEY)
            image.load()
            found_size = image.size
    except (OSError, SyntaxError, ValueError) as error:
        return FrameProblem(FrameVerdict.BROKEN, f"does not decode: {path} ({error})")
    if found_size != size:
        return FrameProblem(
            FrameVerdict.OTHER_RUN, f"is {format_size(found_size)}, not {format_size(size)}: {path}"
        )
    if label != frame_label(frame, frame_count, size):
        found = f"is {label}" if label else "has no volcano-gif label"
        return FrameProblem(
            FrameVerdict.OTHER_RUN,
            f"{found}, not a frame of {frame_count} at {format_size(size)}: {path}",
        )
    return None


def check_frames(
    images_dir: Path,
    frame_count: int,
    size: tuple[int, int],
    frames: Iterable[int] | None = None,
) -> dict[int, str]:
    """``{frame: problem}`` for every frame of ``frames`` (default: all) that is unusable.

    Every frame is decoded in full; Pillow releases the GIL while it decodes,
    so threads share the work across cores.
    """
    from concurrent.futures import ThreadPoolExecutor

    wanted = list(expected_frames(frame_count) if frames is None else frames)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        problems = pool.map(
            lambda frame: inspect_frame(images_dir / frame_name(frame), frame, frame_count, size),
            wanted,
        )
        found = zip(wanted, problems, strict=True)
        return {frame: problem.text for frame, problem in found if problem is not None}


def frames_on_disk(images_dir: Path) -> list[int]:
    """The frame numbers of the files in ``images_dir`` (by name: nothing is opened).

    A folder with a frame's name is no frame.
    """
    try:
        with os.scandir(images_dir) as entries:
            names = [entry.name for entry in entries if entry.is_file()]
    except FileNotFoundError:
        return []
    return sorted(number for number in map(frame_number, names) if number is not None)


def frames_of_other_runs(
    images_dir: Path, frame_count: int, size: tuple[int, int]
) -> dict[int, str]:
    """Frames on disk that a run of ``frame_count`` frames at ``size`` would overwrite.

    Those are frames up to ``frame_count`` that decode but are labelled as another
    run's (or not at all). Broken files and half-written ones are not counted: nothing of value
    is lost when they are rendered again.
    """
    found: dict[int, str] = {}
    for frame in (frame for frame in frames_on_disk(images_dir) if frame <= frame_count):
        problem = inspect_frame(images_dir / frame_name(frame), frame, frame_count, size)
        if problem is not None and problem.verdict is FrameVerdict.OTHER_RUN:
            found[frame] = problem.text
    return found
