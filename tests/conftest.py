"""Fixtures: a private project copy per test, and frames rendered once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.helpers import REPO, copy_project
from tools.local_slurm import Cluster, missing_programs, start, stop
from volcano_gif.data import load_grid
from volcano_gif.layout import ProjectPaths
from volcano_gif.render import FrameRenderer

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


REQUIRE_SLURM = "VOLCANO_REQUIRE_SLURM"


def _skip_or_fail(reason: str) -> None:
    """Skip, or fail where VOLCANO_REQUIRE_SLURM=1 (CI sets it): CI never skips these."""
    if os.environ.get(REQUIRE_SLURM) == "1":
        pytest.fail(f"{REQUIRE_SLURM}=1 but {reason}")
    pytest.skip(reason)


def _start_cluster(cluster: Cluster) -> Iterator[Cluster]:
    missing = missing_programs()
    if missing:
        _skip_or_fail(
            f"Slurm is not installed ({', '.join(missing)} missing): run "
            "apt-get install --no-install-recommends slurmctld slurmd slurm-client munge"
        )
    if os.geteuid() != 0:
        _skip_or_fail("the localhost Slurm cluster runs its daemons as root: run the tests as root")
    seconds = start(cluster)
    print(f"\nlocalhost Slurm {cluster.folder.name} up in {seconds:.1f} s")
    try:
        yield cluster
    finally:
        stop(cluster)


@pytest.fixture(scope="session")
def slurm() -> Iterator[Cluster]:
    """A private two-node Slurm cluster on localhost, for the whole session.

    Skipped where the Slurm packages are missing or we are not root, unless
    VOLCANO_REQUIRE_SLURM=1 (CI sets it), which turns that skip into a failure.
    """
    yield from _start_cluster(Cluster(Path("/tmp/volcano-slurm-tests"), nodes=2, port=16917))


#: The fault cluster: a lost node is noticed in 10 s; array indices stop at 100.
FAULT_SETTINGS = (("SlurmdTimeout", "10"), ("MaxArraySize", "101"))
#: ... and a requeued task may start again after 10 s, not Slurm's default 120 s.
FAULT_CRED_EXPIRE = 10


@pytest.fixture(scope="session")
def fault_slurm() -> Iterator[Cluster]:
    """A second two-node cluster for fault tests: short SlurmdTimeout, MaxArraySize 101."""
    cluster = Cluster(Path("/tmp/volcano-slurm-faults"), nodes=2, port=17217,
                      settings=FAULT_SETTINGS, cred_expire=FAULT_CRED_EXPIRE)  # fmt: skip
    yield from _start_cluster(cluster)


@pytest.fixture
def root_only() -> None:
    """For tests that mount file systems: root only (CI is root, and never skips them)."""
    if os.geteuid() != 0:
        _skip_or_fail("this test mounts a small tmpfs: run the tests as root")
