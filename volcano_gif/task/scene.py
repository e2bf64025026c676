"""The volcano's 3D scene, worked out once by matplotlib's own 3D axes, then cached.

A frame is the same 10,320 triangles seen from another azimuth. What it takes
to draw one is a handful of numbers that only ``mpl_toolkits.mplot3d`` and a
``Figure`` know how to work out: the triangles' colours (``plot_trisurf``'s
viridis with its shading), each frame's projection matrix (``Axes3D.get_proj``),
the affine map from projected coordinates to pixels (the axes' ``transData``)
and the axes' clip box. :func:`build_scene` asks them, for every frame of a run
at once, and :func:`load_scene` keeps the answer in
``.cache/scenes/<key>.npz``, keyed by the data file's bytes, the frame count,
the size and the matplotlib version, so it can never be stale.

A render task then draws with Agg's renderer and one collection
(:mod:`volcano_gif.task.render`), and never imports ``matplotlib.figure`` or
``mplot3d``: about 0.1 s of every one-frame task's start-up. ``submit-gif-job``
builds the cache before the array starts; a task that finds none builds it.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from volcano_gif.files import write_atomically
from volcano_gif.numbering import ELEVATION, azimuth
from volcano_gif.paths import ProjectPaths

logger = logging.getLogger(__name__)

#: Frame DPI: the figure is width/100 x height/100 inches, as the original's.
DPI = 100
#: plot_trisurf's line width in the original recipe.
LINE_WIDTH = 0.2
#: Bump when the cached arrays change meaning.
SCENE_FORMAT = 1

FloatArray = npt.NDArray[np.float64]


def grid_triangles(rows: int, columns: int) -> npt.NDArray[np.int64]:
    """Two triangles per grid cell, for points numbered row-major.

    The grid is regular, so its triangulation is known without running a
    Delaunay triangulation for every figure.
    """
    corner = (np.arange(rows - 1)[:, None] * columns + np.arange(columns - 1)[None, :]).ravel()
    lower = np.stack([corner, corner + 1, corner + columns], axis=1)
    upper = np.stack([corner + 1, corner + columns + 1, corner + columns], axis=1)
    return np.concatenate([lower, upper]).astype(np.int64)


@dataclass(frozen=True)
class Scene:
    """Everything a frame of one run is drawn from; see the module's text."""

    frame_count: int
    size: tuple[int, int]
    corners: FloatArray  # (3, 3n): x, y, z of each triangle's three corners in turn
    colors: FloatArray  # (n, 4) RGBA, one per triangle
    to_pixels: FloatArray  # (3, 3) affine: projected x, y -> pixels (the axes' transData)
    clip: FloatArray  # (2, 2) the axes' clip box in pixels: [[x0, y0], [x1, y1]]
    projections: FloatArray  # (frame_count, 4, 4): frame k's view at [k - 1]

    @property
    def triangles(self) -> int:
        return len(self.colors)

    def projection(self, frame: int) -> FloatArray:
        projection: FloatArray = self.projections[frame - 1]
        return projection

    def to_bytes(self) -> bytes:
        """The scene as an ``.npz`` file: an array per field."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {field.name: getattr(self, field.name) for field in fields(self)}
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> Scene:
        with np.load(path) as data:
            arrays = {field.name: data[field.name] for field in fields(cls)}
        count, (width, height) = int(arrays.pop("frame_count")), map(int, arrays.pop("size"))
        return cls(frame_count=count, size=(width, height), **arrays)


def build_scene(grid: FloatArray, frame_count: int, size: tuple[int, int]) -> Scene:
    """Ask matplotlib's 3D axes for the scene of every frame (about 0.5 s)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d import Axes3D  # type: ignore[import-untyped]

    if grid.ndim != 2 or min(grid.shape) < 2:
        raise ValueError(f"the height grid must be 2-D and at least 2x2, not {grid.shape}")
    width, height = size
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot(projection="3d")
    if not isinstance(axes, Axes3D):
        raise TypeError("matplotlib did not make a 3D axes")
    rows, columns = grid.shape
    row_index, column_index = np.meshgrid(
        np.arange(rows, dtype=np.float64), np.arange(columns, dtype=np.float64), indexing="ij"
    )
    x, y, z = row_index.ravel(), column_index.ravel(), grid.ravel()
    triangles = grid_triangles(rows, columns)
    # plot_trisurf sets the axes' limits and the triangles' colours.
    surface = axes.plot_trisurf(x, y, z, triangles=triangles, cmap="viridis", linewidth=LINE_WIDTH)
    colors = np.asarray(surface.to_rgba(surface.get_array()), dtype=np.float64)
    axes.set_axis_off()
    canvas.draw()  # type: ignore[no-untyped-call]  # settles the aspect and the axes' box
    clip_box = surface.get_clip_box()
    if clip_box is None:
        raise RuntimeError("matplotlib gave the surface no clip box")
    projections = []
    for frame in range(1, frame_count + 1):
        axes.view_init(ELEVATION, azimuth(frame, frame_count))
        projections.append(axes.get_proj())
    corners = np.stack([x[triangles].ravel(), y[triangles].ravel(), z[triangles].ravel()])
    return Scene(
        frame_count,
        (width, height),
        corners,
        colors,
        np.array(axes.transData.frozen().get_matrix(), dtype=np.float64),
        np.array(clip_box.get_points(), dtype=np.float64),
        np.array(projections),
    )


def scene_key(data: bytes, frame_count: int, size: tuple[int, int]) -> str:
    """A name for the scene of these data bytes, frame count and size, with this matplotlib."""
    import matplotlib

    digest = hashlib.sha256(data)
    digest.update(f"{frame_count} {size} {matplotlib.__version__} {SCENE_FORMAT}".encode())
    return digest.hexdigest()[:24]


def load_scene(paths: ProjectPaths, frame_count: int, size: tuple[int, int]) -> Scene:
    """The run's scene from the cache, or built (and cached) if it is not there yet.

    The data file is read every time: its bytes are part of the cache key.
    """
    from volcano_gif.task.data import load_grid, read_data

    data = read_data(paths.data_file).encode()  # the file's bytes: it is UTF-8
    cached = paths.scene_cache / f"scene-{scene_key(data, frame_count, size)}.npz"
    try:
        return Scene.from_file(cached)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError) as error:
        logger.warning("building the scene again: %s is unreadable (%s)", cached, error)
    scene = build_scene(load_grid(paths.data_file), frame_count, size)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        content = scene.to_bytes()
        write_atomically(cached, lambda temporary: temporary.write_bytes(content))
    except OSError as error:  # a cache that cannot be written only costs time
        logger.warning("could not cache the scene in %s: %s", cached, error)
    return scene
