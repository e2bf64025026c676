"""Fixtures: private Slurm clusters on localhost, for tests/ and docs/ (conftest.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.local_slurm import Cluster
from tools.local_slurm import missing_programs
from tools.local_slurm import start
from tools.local_slurm import stop

REQUIRE_SLURM = "VOLCANO_REQUIRE_SLURM"


def _skip_or_fail(reason: str) -> None:
    """Skip, or fail where VOLCANO_REQUIRE_SLURM=1 (CI sets it): CI never skips these."""
    if os.environ.get(REQUIRE_SLURM) == "1":
        pytest.fail(f"{REQUIRE_SLURM}=1 but {reason}")
    pytest.skip(reason)


def _start_cluster(cluster: Cluster) -> Iterator[Cluster]:
    missing = missing_programs(cluster.accounting)
    if missing:
        _skip_or_fail(
            f"Slurm is not installed ({', '.join(missing)} missing): run "
            "apt-get install --no-install-recommends slurmctld slurmd slurm-client munge"
            + (" mariadb-server slurmdbd" if cluster.accounting else "")
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


@pytest.fixture(scope="session")
def accounting_slurm() -> Iterator[Cluster]:
    """A third two-node cluster that keeps accounting: MariaDB, slurmdbd, sacct."""
    cluster = Cluster(Path("/tmp/volcano-slurm-accounting"), nodes=2, port=17317,
                      accounting=True)  # fmt: skip
    yield from _start_cluster(cluster)


#: The tutorial's cluster: always started from a new state folder.
TUTORIAL_CLUSTER = Path("/tmp/volcano-slurm-tutorial")


@pytest.fixture(scope="session")
def tutorial_slurm() -> Iterator[Cluster]:
    """The tutorial's own two-node cluster with accounting, from a new state folder.

    As a reader's first cluster is: job ids start from 1, no jobs in the queue,
    an empty accounting database. So docs/tutorial.md passes alone and in the
    suite alike: no test that ran before can change what it shows.
    """
    cluster = Cluster(TUTORIAL_CLUSTER, nodes=2, port=17617, accounting=True)
    if TUTORIAL_CLUSTER.exists():
        stop(cluster)  # what an earlier, interrupted session left running
        shutil.rmtree(TUTORIAL_CLUSTER)
    yield from _start_cluster(cluster)


@pytest.fixture
def root_only() -> None:
    """For tests that mount file systems: root only (CI is root, and never skips them)."""
    if os.geteuid() != 0:
        _skip_or_fail("this test mounts a small tmpfs: run the tests as root")
