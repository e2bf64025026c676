"""Frames that a shared filesystem shows late: look again, for a while, before giving up.

On NFS, a frame written and renamed on one node can stay invisible on another
for seconds: the client caches directory contents, file attributes and
negative lookups (``acdirmin``/``acdirmax``, 30 to 60 s at most by default;
re-reading the folder usually revalidates sooner). An assembly that declared
such a frame missing at its first look would fail a complete run. So frames
that are missing or do not decode at the first look are looked at again, the
folder re-read each time, until they are there or the window has passed
(snakemake's ``--latency-wait`` does the same, 5 s by default).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from volcano_gif.layout import frame_name
from volcano_gif.numbering import expected_frames
from volcano_gif.task.frames import check_frames

logger = logging.getLogger(__name__)

#: How long to look again between looks, in seconds, at first and at most.
FIRST_LOOK_AGAIN, LAST_LOOK_AGAIN = 0.5, 3.0


def unready_frames(
    images: Path,
    frame_count: int,
    size: tuple[int, int],
    window: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[int, str]:
    """``{frame: problem}`` for the frames still missing or broken after ``window`` seconds.

    With ``window`` 0, the first look decides.
    """
    problems = _look(images, frame_count, size, None)
    deadline = time.monotonic() + window
    pause = FIRST_LOOK_AGAIN
    if problems and window > 0:
        logger.info(
            "%d of %d frames are not there yet; looking again for up to %.0f s, in case a "
            "shared filesystem shows them late (--latency-wait)",
            len(problems),
            frame_count,
            window,
        )
    while problems and time.monotonic() < deadline:
        sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, LAST_LOOK_AGAIN)
        problems = _look(images, frame_count, size, sorted(problems))
    return problems


def _look(
    images: Path, frame_count: int, size: tuple[int, int], frames: list[int] | None
) -> dict[int, str]:
    if not images.is_dir():
        return {
            frame: f"missing: {images / frame_name(frame)} (no folder {images})"
            for frame in (frames or expected_frames(frame_count))
        }
    os.listdir(images)  # re-read the folder: an NFS client then revalidates its cache
    return check_frames(images, frame_count, size, frames)
