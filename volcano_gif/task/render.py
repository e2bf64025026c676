"""Render frames of the rotating volcano with Agg's renderer and one collection.

:class:`FrameRenderer` draws a run's :class:`~volcano_gif.task.scene.Scene`: for each
frame it projects the triangles with that frame's matrix, sorts them far to
near by mean depth and draws them with :class:`DepthSortedTriangles` straight
onto a ``RendererAgg``, with the colours, transform and clip box that
``plot_trisurf`` in a ``Figure`` uses. So the pixels are those of
``plot_trisurf`` (tests/test_render.py checks this), but a render task never
imports ``matplotlib.figure`` or ``mplot3d``, which cost a one-frame task more
than its drawing. Frames are written atomically: to a hidden temporary name in
the same folder, then renamed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.collections import Collection
from matplotlib.path import Path as MplPath
from matplotlib.transforms import Affine2D, Bbox

from volcano_gif.files import write_atomically
from volcano_gif.layout import DEFAULT_SIZE, FRAME_LABEL_KEY, frame_name
from volcano_gif.numbering import check_frame, frame_label
from volcano_gif.task.frames import inspect_frame
from volcano_gif.task.png import encode_rgb
from volcano_gif.task.scene import DPI, LINE_WIDTH, Scene, build_scene, grid_triangles
from volcano_gif.task.task_timing import TaskTiming

logger = logging.getLogger(__name__)

__all__ = ["DPI", "LINE_WIDTH", "DepthSortedTriangles", "FrameRenderer", "grid_triangles"]

DEFAULT_WIDTH, DEFAULT_HEIGHT = DEFAULT_SIZE
#: zlib level for frame PNGs (see volcano_gif.task.png). 1 is far faster than the
#: default 6; the frames are packed into a .tar.gz anyway.
DEFAULT_PNG_LEVEL = 1
#: The frame's background: the figure's white.
WHITE = 255


class DepthSortedTriangles(Collection):
    """The scene's triangles, projected for one view and drawn far to near.

    This is what ``plot_trisurf``'s ``Poly3DCollection`` does on every draw,
    minus its slowest step: that collection builds a new ``Path`` for each of
    the 10,320 triangles every frame (about 10 ms). Here each triangle keeps
    one path for good, whose vertices are a row of ``self._corners``; every
    projection rewrites that array in place. The projection (``proj3d``'s
    ``np.dot`` and division by ``w``), the depth order (mean depth, far first)
    and the colours are the same, so the pixels are the same.
    """

    def __init__(self, scene: Scene) -> None:
        super().__init__(edgecolors="none", linewidths=LINE_WIDTH, antialiaseds=True)
        self._scene = scene
        count = scene.triangles
        # x, y, z and 1 of every corner: the homogeneous points proj3d projects.
        self._points = np.vstack([scene.corners, np.ones((1, scene.corners.shape[1]))])
        # Three corners and the closing vertex of every triangle, as drawn.
        self._corners = np.zeros((count, 4, 2))
        template = MplPath(self._corners[0], closed=True)
        # Each path views its row of self._corners. _fast_from_codes_and_verts
        # (private, but how PolyCollection itself builds its paths) takes 12 ms
        # for the 10,320 paths, Path() 46 ms: that counts in a one-frame task.
        make_path = MplPath._fast_from_codes_and_verts  # type: ignore[attr-defined]
        self._paths = [make_path(corners, template.codes, template) for corners in self._corners]
        if not np.shares_memory(self._paths[0].vertices, self._corners):
            raise RuntimeError(
                "this matplotlib copies path vertices, so the surface could not move: "
                "report it with the output of `pip show matplotlib`"
            )
        self.set_transform(Affine2D(scene.to_pixels))
        self.set_clip_box(Bbox(scene.clip))

    def project(self, frame: int) -> None:
        """Project every triangle with frame ``frame``'s view; sort them far to near."""
        projected = np.dot(self._scene.projection(frame), self._points)
        x, y, depth = projected[0:3] / projected[3]
        count = self._scene.triangles
        order = np.argsort(np.average(depth.reshape(count, 3), axis=-1))[::-1]
        self._corners[:, :3, 0] = x.reshape(count, 3)[order]
        self._corners[:, :3, 1] = y.reshape(count, 3)[order]
        self._corners[:, 3] = self._corners[:, 0]
        self.set_facecolor(self._scene.colors[order])  # type: ignore[arg-type]  # (n, 4) RGBA


class FrameRenderer:
    """One run's scene, drawn from any of its views onto one Agg canvas."""

    def __init__(
        self,
        grid: npt.NDArray[np.float64],
        frame_count: int,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        png_level: int = DEFAULT_PNG_LEVEL,
    ) -> None:
        """Work the scene out from ``grid`` here (about 0.5 s; tasks load it from the cache)."""
        self._setup(build_scene(grid, frame_count, (width, height)), png_level)

    @classmethod
    def from_scene(cls, scene: Scene, png_level: int = DEFAULT_PNG_LEVEL) -> FrameRenderer:
        renderer = cls.__new__(cls)
        renderer._setup(scene, png_level)
        return renderer

    def _setup(self, scene: Scene, png_level: int) -> None:
        self.scene = scene
        self.frame_count = scene.frame_count
        self.size = scene.size
        self.png_level = png_level
        self.surface = DepthSortedTriangles(scene)
        self.renderer = RendererAgg(scene.size[0], scene.size[1], DPI)  # type: ignore[no-untyped-call]

    def _draw_in_canvas(self, frame: int) -> npt.NDArray[np.uint8]:
        """Draw frame ``frame``; return the canvas's RGB pixels as a view.

        The view is only valid until the next draw.
        """
        check_frame(frame, self.frame_count)
        self.surface.project(frame)
        rgba = np.asarray(self.renderer.buffer_rgba())  # type: ignore[no-untyped-call]
        rgba[...] = WHITE  # what the figure's and the axes' white patches leave
        self.surface.draw(self.renderer)
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
        """True if ``images_dir`` holds this frame, complete (see volcano_gif.task.frames)."""
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
            said = "rendered frame %d: %s" if rendered else "kept frame %d, already complete: %s"
            logger.info(said, frame, path)
        return paths
