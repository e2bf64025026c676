"""Render frames of the rotating volcano with matplotlib's Agg canvas.

:class:`FrameRenderer` builds the figure and the ``plot_trisurf`` surface once;
each frame then only changes the view and draws again. Frames are written
atomically: to a hidden temporary name in the same folder, then renamed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d import Axes3D  # type: ignore[import-untyped]

from volcano_gif.files import write_atomically
from volcano_gif.layout import ELEVATION, azimuth, check_frame, check_frame_count, frame_name
from volcano_gif.png import encode_rgb

logger = logging.getLogger(__name__)

DEFAULT_WIDTH = 640
DEFAULT_HEIGHT = 480
DPI = 100
#: zlib level for frame PNGs (see volcano_gif.png). 1 is far faster than the
#: default 6; the frames are packed into a .tar.gz anyway.
DEFAULT_PNG_LEVEL = 1


def grid_triangles(rows: int, columns: int) -> npt.NDArray[np.int64]:
    """Two triangles per grid cell, for points numbered row-major.

    The grid is regular, so its triangulation is known without running a
    Delaunay triangulation for every figure.
    """
    corner = (np.arange(rows - 1)[:, None] * columns + np.arange(columns - 1)[None, :]).ravel()
    lower = np.stack([corner, corner + 1, corner + columns], axis=1)
    upper = np.stack([corner + 1, corner + columns + 1, corner + columns], axis=1)
    return np.concatenate([lower, upper]).astype(np.int64)


class FrameRenderer:
    """One figure and surface, drawn from any number of views."""

    def __init__(
        self,
        grid: npt.NDArray[np.float64],
        frame_count: int,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        png_level: int = DEFAULT_PNG_LEVEL,
    ) -> None:
        if grid.ndim != 2 or min(grid.shape) < 2:
            raise ValueError(f"the height grid must be 2-D and at least 2x2, not {grid.shape}")
        self.frame_count = check_frame_count(frame_count)
        self.png_level = png_level
        self.figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        axes = self.figure.add_subplot(projection="3d")
        if not isinstance(axes, Axes3D):
            raise TypeError("matplotlib did not make a 3D axes")
        self.axes = axes
        rows, columns = grid.shape
        row_index, column_index = np.meshgrid(
            np.arange(rows, dtype=np.float64), np.arange(columns, dtype=np.float64), indexing="ij"
        )
        self.axes.plot_trisurf(
            row_index.ravel(),
            column_index.ravel(),
            grid.ravel(),
            triangles=grid_triangles(rows, columns),
            cmap="viridis",
            linewidth=0.2,
        )
        self.axes.set_axis_off()

    def draw(self, frame: int) -> npt.NDArray[np.uint8]:
        """Draw frame ``frame``; return its pixels as a (height, width, 3) array."""
        check_frame(frame, self.frame_count)
        self.axes.view_init(ELEVATION, azimuth(frame, self.frame_count))
        self.canvas.draw()  # type: ignore[no-untyped-call]
        rgba = np.asarray(self.canvas.buffer_rgba())  # type: ignore[no-untyped-call]
        return np.ascontiguousarray(rgba[:, :, :3])

    def render(self, frame: int, images_dir: Path) -> Path:
        """Draw frame ``frame`` into ``images_dir`` atomically and return its path."""
        target = images_dir / frame_name(frame)
        data = encode_rgb(self.draw(frame), self.png_level)
        write_atomically(target, lambda temporary: temporary.write_bytes(data))
        return target

    def render_many(self, frames: Iterable[int], images_dir: Path) -> list[Path]:
        """Render several frames with this one figure."""
        images_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for frame in frames:
            written.append(self.render(frame, images_dir))
            logger.info("rendered frame %d: %s", frame, written[-1])
        return written
