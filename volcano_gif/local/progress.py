"""Progress over frames: a tqdm bar on a terminal, plain lines elsewhere.

On a terminal the bar redraws in place with frames/s and the time left. When
stderr is a file or a pipe (CI, a Slurm log), redrawing would fill it with
carriage returns, so it logs one plain line at most every
:data:`PLAIN_INTERVAL` seconds instead, and a last one at the end. So does a
terminal that reports 0 rows (``script`` without a controlling tty, some CI and
container shells): tqdm draws nothing at all there.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

logger = logging.getLogger(__name__)

#: Seconds between two plain progress lines.
PLAIN_INTERVAL = 5.0


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and rows, 0 where it does not say."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return 0, 0
    return size.columns, size.lines


class FrameProgress:
    """Count frames done out of ``total``, and show it."""

    def __init__(
        self,
        total: int,
        what: str = "rendering",
        stream: TextIO | None = None,
        plain_interval: float = PLAIN_INTERVAL,
    ) -> None:
        self.total, self.what, self.done = total, what, 0
        self.stream = stream or sys.stderr
        self.plain_interval = plain_interval
        self.began = self.last_line = time.monotonic()
        self.bar = None
        shown = logger.isEnabledFor(logging.INFO)
        columns, rows = _terminal_size(self.stream) if self.stream.isatty() else (0, 0)
        if shown and rows > 0:
            from tqdm import tqdm

            # A terminal that does not say its width (width 0) gets 80 columns.
            sized = columns > 0
            width = {"dynamic_ncols": sized, "ncols": None if sized else 80}
            self.bar = tqdm(
                total=total, desc=what, unit="frame", file=self.stream, smoothing=0.3, **width
            )

    def update(self, frames: int = 1) -> None:
        self.done += frames
        if self.bar is not None:
            self.bar.update(frames)
            return
        moment = time.monotonic()
        if moment - self.last_line >= self.plain_interval and self.done < self.total:
            self.last_line = moment
            logger.info("%s", self.line(moment))

    def line(self, moment: float | None = None) -> str:
        """``rendering: 120/360 frames, 40.1 frames/s, about 6 s left``."""
        elapsed = max((moment or time.monotonic()) - self.began, 1e-9)
        rate = self.done / elapsed
        text = f"{self.what}: {self.done}/{self.total} frames, {rate:.1f} frames/s"
        if 0 < self.done < self.total and rate > 0:
            text += f", about {(self.total - self.done) / rate:.0f} s left"
        elif self.done >= self.total:
            text += f", done in {elapsed:.1f} s"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            logger.info("%s", self.line())
