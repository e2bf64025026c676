"""The renderer: views, names, atomic writes, and volcano.py's command line."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from tests.helpers import argv, copy_project, project_env, run
from volcano_gif.numbering import ELEVATION, azimuth
from volcano_gif.task.render import FrameRenderer, grid_triangles
from volcano_gif.task.task_timing import TaskTiming


def _pixels(image: npt.NDArray[np.uint8]) -> bytes:
    return image.tobytes()


def test_grid_triangles_cover_every_cell_twice() -> None:
    triangles = grid_triangles(3, 4)
    assert triangles.shape == (2 * 2 * 3, 3)
    assert set(np.unique(triangles)) == set(range(12))


def _plot_trisurf_frame(grid: npt.NDArray[np.float64], frame: int, frame_count: int) -> bytes:
    """The frame as plain plot_trisurf draws it (same triangles): ours must match."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot(projection="3d")
    rows, columns = np.meshgrid(
        np.arange(grid.shape[0], dtype=np.float64),
        np.arange(grid.shape[1], dtype=np.float64),
        indexing="ij",
    )
    axes.plot_trisurf(
        rows.ravel(),
        columns.ravel(),
        grid.ravel(),
        triangles=grid_triangles(*grid.shape),
        cmap="viridis",
        linewidth=0.2,
    )
    axes.set_axis_off()
    axes.view_init(ELEVATION, azimuth(frame, frame_count))
    canvas.draw()  # type: ignore[no-untyped-call]
    rgba = np.asarray(canvas.buffer_rgba())  # type: ignore[no-untyped-call]
    return _pixels(np.ascontiguousarray(rgba[:, :, :3]))


def test_frames_are_pixel_for_pixel_those_of_plot_trisurf(grid: npt.NDArray[np.float64]) -> None:
    # The renderer swaps plot_trisurf's collection for a faster one; the views
    # below turn the surface all the way round, one frame after another with
    # the same figure, so stale vertices or colours would show.
    renderer = FrameRenderer(grid, 360)
    for frame in (1, 2, 90, 135, 180, 181, 270, 359, 360):
        assert _pixels(renderer.draw(frame)) == _plot_trisurf_frame(grid, frame, 360), frame


def test_consecutive_frames_differ_and_none_repeats(grid: npt.NDArray[np.float64]) -> None:
    renderer = FrameRenderer(grid, 12)
    digests = [hashlib.sha256(_pixels(renderer.draw(n))).hexdigest() for n in range(1, 13)]
    assert len(set(digests)) == 12


def test_last_frame_is_a_full_turn_from_frame_zero(grid: npt.NDArray[np.float64]) -> None:
    renderer = FrameRenderer(grid, 12)
    last = np.asarray(renderer.draw(12), dtype=np.int16)
    zero = np.frombuffer(_plot_trisurf_frame(grid, 0, 12), dtype=np.uint8).reshape(480, 640, 3)
    assert np.abs(last - zero.astype(np.int16)).max() <= 1
    first = np.asarray(renderer.draw(1), dtype=np.int16)
    assert np.abs(first - zero.astype(np.int16)).max() > 1


def test_frames_are_640x480_rgb_pngs_named_by_number(
    grid: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    renderer = FrameRenderer(grid, 360)
    path = renderer.render(7, tmp_path)
    assert path == tmp_path / "image0007.png"
    with Image.open(path) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (640, 480), "RGB")
        np.testing.assert_array_equal(np.asarray(image), renderer.draw(7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image0007.png"]


def test_a_failed_write_leaves_the_old_frame_and_no_temporary(
    grid: npt.NDArray[np.float64], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "image0003.png").write_bytes(b"old frame")

    real_write_bytes = Path.write_bytes

    def broken_write(self: Path, data: bytes) -> int:
        real_write_bytes(self, data[:9])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", broken_write)
    with pytest.raises(OSError, match="disk full"):
        FrameRenderer(grid, 360).render(3, tmp_path)
    assert (tmp_path / "image0003.png").read_bytes() == b"old frame"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image0003.png"]


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("0", "volcano.py: error: frame 0 is out of range: use 1 to 360"),
        ("361", "volcano.py: error: frame 361 is out of range: use 1 to 360"),
        ("x", "volcano.py: error: argument FRAME: 'x' is not a frame number"),
    ],
)
def test_volcano_py_rejects_bad_frames(project: Path, argument: str, message: str) -> None:
    result = run([sys.executable, project / "volcano.py", argument], cwd=project)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert not (project / "images").exists()


def test_volcano_py_renders_frame_n_from_any_directory(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run([sys.executable, project / "volcano.py", "5", "-q"], cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(project / "images" / "image0005.png")
    assert sorted(p.name for p in (project / "images").iterdir()) == ["image0005.png"]
    assert list(elsewhere.iterdir()) == []


def test_volcano_py_ends_without_teardown_but_loses_no_output(project: Path) -> None:
    # volcano.py ends with os._exit after flushing: with buffered streams (no
    # PYTHONUNBUFFERED) every path on stdout and every log line must still arrive.
    env = {k: v for k, v in project_env().items() if k != "PYTHONUNBUFFERED"}
    result = run(
        [sys.executable, *argv("volcano.py --array-task 2 --frames-per-task 3 --frames 12")],
        cwd=project,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        str(project / "images" / f"image{n:04d}.png") for n in (4, 5, 6)
    ]
    logged = [line.split(" INFO ")[-1] for line in result.stderr.splitlines()]
    assert [line for line in logged if "rendered frame" in line] == [
        f"volcano_gif.task.render: rendered frame {n}: {project / 'images' / f'image{n:04d}.png'}"
        for n in (4, 5, 6)
    ]


def test_volcano_py_array_task_renders_its_block(project: Path) -> None:
    result = run(
        [
            sys.executable,
            "volcano.py",
            "--array-task",
            "3",
            "--frames-per-task",
            "4",
            "--frames",
            "12",
            "-q",
        ],
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (project / "images").iterdir())
    assert names == ["image0009.png", "image0010.png", "image0011.png", "image0012.png"]


def test_volcano_py_help(project: Path) -> None:
    result = run([sys.executable, project / "volcano.py", "--help"], cwd=project)
    assert result.returncode == 0
    assert "--frames" in result.stdout
    assert "--array-task" in result.stdout


def test_frames_carry_a_label_that_says_which_frame_of_which_run(
    grid: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    path = FrameRenderer(grid, 12, 96, 72).render(5, tmp_path)
    with Image.open(path) as image:
        assert image.info["volcano-gif"] == "frame 5 of 12, 96x72"
        assert image.size == (96, 72)


def test_a_complete_frame_is_kept_unless_forced(
    grid: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    renderer = FrameRenderer(grid, 12)
    path = renderer.render(3, tmp_path)
    first = path.stat().st_ino
    timing = TaskTiming.for_slurm_task("7", 1, "20261202T010000-0042")
    renderer.render_many([3], tmp_path, timing=timing)
    assert path.stat().st_ino == first  # kept, not rewritten
    assert (timing.skipped, timing.frames) == ([3], [])
    renderer.render_many([3], tmp_path, force=True)
    assert path.stat().st_ino != first  # --force: rendered again, renamed into place


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[:3000]),  # half-written
        lambda path: path.write_bytes(b"not a png"),
    ],
    ids=["truncated", "garbage"],
)
def test_a_broken_frame_is_rendered_again(
    grid: npt.NDArray[np.float64], tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    renderer = FrameRenderer(grid, 12)
    path = renderer.render(4, tmp_path)
    good = path.read_bytes()
    damage(path)
    renderer.render_many([4], tmp_path)
    assert path.read_bytes() == good


def test_another_runs_frame_is_rendered_again(
    grid: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    FrameRenderer(grid, 24).render(4, tmp_path)  # frame 4 of a 24-frame run
    renderer = FrameRenderer(grid, 12)
    renderer.render_many([4], tmp_path)
    with Image.open(tmp_path / "image0004.png") as image:
        assert image.info["volcano-gif"] == "frame 4 of 12, 640x480"


def test_an_array_task_writes_its_timing_file(project: Path) -> None:
    env = {**project_env(), "SLURM_ARRAY_JOB_ID": "4242", "SLURMD_NODENAME": "n7"}
    began = time.time()
    command = argv("volcano.py --array-task 2 --frames-per-task 3 --frames 12 -q")
    result = run([sys.executable, *command], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    timing = json.loads((project / "output/timing/slurm-4242_2.json").read_text())
    assert (timing["node"], timing["job_id"], timing["array_task"]) == ("n7", "4242", 2)
    assert [frame for frame, _, _ in timing["frames"]] == [4, 5, 6]
    started, imported, ready, end = (
        timing[key] for key in ("process_start", "imports_done", "ready", "end")
    )
    # The process start comes from /proc: before this test asked for it to run.
    assert began - 1 <= started <= imported <= ready <= timing["frames"][0][1]
    assert timing["frames"][-1][2] <= end <= time.time()


def test_render_without_slurm_writes_no_timing_file(project: Path) -> None:
    result = run([sys.executable, "volcano.py", "3", "-q"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert not (project / "output").exists()


def test_missing_packages_give_one_line_that_says_how_to_fix_it(project: Path) -> None:
    # -S: no site-packages, so numpy and matplotlib cannot be imported.
    result = run([sys.executable, "-S", project / "volcano.py", "1"], cwd=project)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("volcano.py: error: Python package 'numpy' is missing for ")
    assert "pip install -e ." in lines[0]


#: SHA-256 of the RGB pixels of frames drawn by the renderer before render
#: tasks stopped importing matplotlib.figure (commit 723f889, with a Figure and
#: plot_trisurf's 3D axes): (size, frame count, frame) -> digest.
FRAMES_BEFORE_THE_LEAN_RENDERER = {
    ((640, 480), 360, 1): "618022fe8e168d61ac0262a0487c4fd223990ebf36a6409d442e3e06a64975d4",
    ((640, 480), 360, 7): "6b3aaa42e0c597ac5a8120e4feddb4eac9c1d400dcd8739ff21df763fd8dc103",
    ((640, 480), 360, 90): "4431c533b9afae09045177590010fb9e35861031ebf9a9d4920f2fe59d3005c3",
    ((640, 480), 360, 271): "f2b2af2b57e4636eb50b87e2bbc991c9b19fcf2e868165081ea7ec78cbcd964e",
    ((96, 72), 12, 5): "26b1b096b4ecfda6893ce868700ebd31f7bb46bf719822bd99049309ae5b07aa",
    ((101, 77), 6, 3): "9d3fb6d58c54edd169024386d2860959c77cc39b768978dc1b55507a327c0c4f",
    ((1920, 1080), 360, 200): "2d13b0bf33cb598a8ef2b6f1fc5cd20feb2feea35448723de537d75baf1b2412",
    ((16, 16), 4, 2): "900ba470876db452cfda0a451258c9a28032785bdf6569bbf80055063220c845",
}


@pytest.mark.parametrize(("size", "frame_count", "frame"), sorted(FRAMES_BEFORE_THE_LEAN_RENDERER))
def test_frames_are_pixel_for_pixel_those_rendered_before_the_lean_renderer(
    grid: npt.NDArray[np.float64], size: tuple[int, int], frame_count: int, frame: int
) -> None:
    pixels = FrameRenderer(grid, frame_count, *size).draw(frame)
    digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    assert digest == FRAMES_BEFORE_THE_LEAN_RENDERER[(size, frame_count, frame)]


def test_a_render_task_imports_neither_figure_nor_mplot3d_nor_the_report(
    tmp_path: Path,
) -> None:
    project = copy_project(tmp_path / "project")
    env = project_env()
    warm = run([sys.executable, "volcano.py", "-q", "3"], cwd=project, env=env)  # builds the cache
    assert warm.returncode == 0, warm.stderr
    result = run(
        [sys.executable, "-X", "importtime", "volcano.py", "-q", "--force", "4"],
        cwd=project,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    imported = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "volcano_gif.task.render" in imported
    forbidden = {
        "matplotlib.figure",
        "matplotlib.pyplot",
        "mpl_toolkits.mplot3d",
        "pandas",
        "seaborn",
        "imageio",
        "tqdm",
    }
    assert imported & forbidden == set()
