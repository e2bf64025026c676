"""Fixtures: a private project copy per test, and frames rendered once per session.

The localhost Slurm clusters are fixtures of tests/clusters.py, shared with docs/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.browser import SCREENSHOTS
from tests.fakes import fake_slurm_env
from tests.helpers import REPO, copy_project
from volcano_gif.paths import ProjectPaths
from volcano_gif.task.data import load_grid
from volcano_gif.task.render import FrameRenderer

SMALL_FRAME_COUNT = 12


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the project to run scripts in."""
    return copy_project(tmp_path / "project")


@pytest.fixture(scope="session")
def grid() -> npt.NDArray[np.float64]:
    return load_grid(REPO / "data" / "volcano.csv")


@pytest.fixture(scope="session")
def small_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the 12 frames of a 12-frame run, rendered once."""
    folder = tmp_path_factory.mktemp("frames")
    renderer = FrameRenderer(load_grid(REPO / "data" / "volcano.csv"), SMALL_FRAME_COUNT)
    renderer.render_many(range(1, SMALL_FRAME_COUNT + 1), folder)
    return folder


@pytest.fixture
def rendered_project(project: Path, small_frames: Path) -> ProjectPaths:
    """A project copy whose images/ holds a complete 12-frame run."""
    shutil.copytree(small_frames, project / "images")
    return ProjectPaths(project)


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    """Fake sbatch, scontrol, squeue and scancel first on PATH; calls in tmp_path/slurm.log."""
    return fake_slurm_env(tmp_path)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Name the folder of the site's screenshots, where the browser tests took some."""
    folder = config.stash.get(SCREENSHOTS, None)
    if folder is not None and any(folder.iterdir()):
        terminalreporter.write_line(f"the site's screenshots: {folder}")
