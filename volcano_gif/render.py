"""Render frames of the rotating volcano with matplotlib's Agg canvas.

:class:`FrameRenderer` builds the figure and the ``plot_trisurf`` surface once;
each frame then only changes the view and draws again. The surface is drawn by
:class:`DepthSortedTriangles`, which draws the same pixels as ``plot_trisurf``'s
own collection, faster. Frames are written atomically: to a hidden temporary
name in the same folder, then renamed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.path import Path as MplPath
from mpl_toolkits.mplot3d import Axes3D, proj3d  # type: ignore[import-untyped]

from volcano_gif.files import write_atomically
from volcano_gif.frames import inspect_frame
from volcano_gif.layout import (
    DEFAULT_SIZE,
    ELEVATION,
    FRAME_LABEL_KEY,
    azimuth,
    check_frame,
    check_frame_count,
    frame_label,
    frame_name,
)
from volcano_gif.png import encode_rgb
from volcano_gif.task_timing import TaskTiming

logger = logging.getLogger(__name__)

DEFAULT_WIDTH, DEFAULT_HEIGHT = DEFAULT_SIZE
DPI = 100
#: zlib level for frame PNGs (see volcano_gif.png). 1 is far faster than the
#: default 6; the frames are packed into a .tar.gz anyway.
DEFAULT_PNG_LEVEL = 1
#: plot_trisurf's line width in the original recipe.
LINE_WIDTH = 0.2


def grid_triangles(rows: int, columns: int) -> npt.NDArray[np.int64]:
    """Two triangles per grid cell, for points numbered row-major.

    The grid is regular, so its triangulation is known without running a
    Delaunay triangulation for every figure.
    """
    corner = (np.arange(rows - 1)[:, None] * columns + np.arange(columns - 1)[None, :]).ravel()
    lower = np.stack([corner, corner + 1, corner + columns], axis=1)
    upper = np.stack([corner + 1, corner + columns + 1, corner + columns], axis=1)
    return np.concatenate([lower, upper]).astype(np.int64)


class DepthSortedTriangles(PathCollection):
    """The triangles of a 3D surface, projected and drawn far to near.

    This is what ``plot_trisurf``'s ``Poly3DCollection`` does on every draw,
    minus its slowest step: that collection builds a new ``Path`` for each of
    the 10,320 triangles every frame (about 10 ms). Here each triangle keeps
    one path for good, whose vertices are a row of ``self._corners``; every
    projection rewrites that array in place. The projection
    (``proj3d.proj_transform``), the depth order (mean depth, far first) and
    the colours are the same, so the frames are pixel for pixel those of
    ``plot_trisurf`` (tests/test_render.py checks this).
    """

    def __init__(
        self,
        axes: Axes3D,
        faces: npt.NDArray[np.float64],
        colors: npt.NDArray[np.float64],
        linewidth: float,
    ) -> None:
        if faces.ndim != 3 or faces.shape[1:] != (3, 3) or len(colors) != len(faces):
            raise ValueError("faces must be (n, 3, 3) triangles with one colour each")
        self._axes3d = axes
        self._x, self._y, self._z = (np.ascontiguousarray(faces[..., k]).ravel() for k in range(3))
        self._colors = colors
        # Three corners and the closing vertex of every triangle, as drawn.
        self._corners = np.zeros((len(faces), 4, 2))
        template = MplPath(self._corners[0], closed=True)
        # Each path views its row of self._corners. _fast_from_codes_and_verts
        # (private, but how PolyCollection itself builds its paths) takes 12 ms
        # for the 10,320 paths, Path() 46 ms: that counts in a one-frame task.
        make_path = MplPath._fast_from_codes_and_verts  # type: ignore[attr-defined]
        paths = [make_path(corners, template.codes, template) for corners in self._corners]
        if not np.shares_memory(paths[0].vertices, self._corners):
            raise RuntimeError(
                "this matplotlib copies path vertices, so the surface could not move: "
                "report it with the output of `pip show matplotlib`"
            )
        super().__init__(paths, edgecolors="none", linewidths=linewidth, antialiaseds=True)

    def do_3d_projection(self) -> float:
        """Project with the axes' current view; sort far to near (Axes3D calls this)."""
        # Axes3D.draw sets .M, the view's projection matrix, before it calls this.
        x, y, depth = proj3d.proj_transform(self._x, self._y, self._z, self._axes3d.M)
        count = len(self._colors)
        depth = depth.reshape(count, 3)
        order = np.argsort(np.average(depth, axis=-1))[::-1]
        self._corners[:, :3, 0] = x.reshape(count, 3)[order]
        self._corners[:, :3, 1] = y.reshape(count, 3)[order]
        self._corners[:, 3] = self._corners[:, 0]
        self.set_facecolor(self._colors[order])  # type: ignore[arg-type]  # (n, 4) RGBA is fine
        return float(np.min(depth))


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
        self.size = (width, height)
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
        x, y, z = row_index.ravel(), column_index.ravel(), grid.ravel()
        triangles = grid_triangles(rows, columns)
        # plot_trisurf sets the axes' limits and the triangles' colours; its
        # collection is then swapped for one that draws the same, faster.
        surface = self.axes.plot_trisurf(
            x, y, z, triangles=triangles, cmap="viridis", linewidth=LINE_WIDTH
        )
        colors = surface.to_rgba(surface.get_array())
        surface.remove()
        faces = np.stack((x[triangles], y[triangles], z[triangles]), axis=-1)
        self.axes.add_collection(
            DepthSortedTriangles(self.axes, faces, colors, LINE_WIDTH), autolim=False
        )
        self.axes.set_axis_off()

    def _draw_in_canvas(self, frame: int) -> npt.NDArray[np.uint8]:
        """Draw frame ``frame``; return the canvas's RGB pixels as a view.

        The view is only valid until the next draw.
        """
        check_frame(frame, self.frame_count)
        self.axes.view_init(ELEVATION, azimuth(frame, self.frame_count))
        self.canvas.draw()  # type: ignore[no-untyped-call]
        rgba = np.asarray(self.canvas.buffer_rgba())  # type: ignore[no-untyped-call]
        return rgba[:, :, :3]

    def draw(self, frame: int) -> npt.NDArray[np.uint8]:
        """Draw frame ``frame``; return its pixels as a (height, width, 3) array."""
        return self._draw_in_canvas(frame).copy()

    def render(self, frame: int, images_dir: Path) -> Path:
        """Draw frame ``frame`` into ``images_dir`` atomically and return its path.

        The PNG is labelled with the frame, the frame count and the size, so
        that it can never be taken for a frame of another run.
        """
        target = images_dir / frame_name(frame)
        # Encoded straight from the canvas: no copy of the pixels in between.
        label = {FRAME_LABEL_KEY: frame_label(frame, self.frame_count, self.size)}
        data = encode_rgb(self._draw_in_canvas(frame), self.png_level, label)
        write_atomically(target, lambda temporary: temporary.write_bytes(data))
        return target

    def is_done(self, frame: int, images_dir: Path) -> bool:
        """True if ``images_dir`` holds this frame, complete (see volcano_gif.frames)."""
        target = images_dir / frame_name(frame)
        return target.is_file() and (
            inspect_frame(target, frame, self.frame_count, self.size) is None
        )

    def render_unless_done(
        self,
        frame: int,
        images_dir: Path,
        force: bool = False,
        timing: TaskTiming | None = None,
    ) -> tuple[Path, bool]:
        """Render frame ``frame`` unless it is on disk, complete; return its path and
        whether it was rendered.

        So a task that runs again (a requeue, a resume) does only what is left;
        ``force`` renders it anyway. ``images_dir`` must exist.
        """
        if not force and self.is_done(frame, images_dir):
            if timing is not None:
                timing.skipped.append(frame)
            return images_dir / frame_name(frame), False
        started = time.time()
        path = self.render(frame, images_dir)
        if timing is not None:
            timing.frame_done(frame, started)
        return path, True

    def render_many(
        self,
        frames: Iterable[int],
        images_dir: Path,
        force: bool = False,
        timing: TaskTiming | None = None,
    ) -> list[Path]:
        """Render several frames with this one figure, keeping those already complete."""
        images_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for frame in frames:
            path, rendered = self.render_unless_done(frame, images_dir, force, timing)
            paths.append(path)
            if rendered:
                logger.info("rendered frame %d: %s", frame, path)
            else:
                logger.info("kept frame %d, already complete: %s", frame, path)
        return paths
