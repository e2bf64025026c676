"""Fixtures: private Slurm clusters on localhost, and the learner who uses them.

Shared by tests/ and docs/ (conftest.py). Each test session keeps its clusters
and its learner's project copies under one folder of its own (``/tmp/volcano-
tests-XXXX``), and every cluster picks free ports and node names of its own, so
two sessions on one machine never collide. The clusters are configured as a site
configures Slurm (the ``site`` profile of tools/local_slurm.py: cgroups enforce
``--mem``, MinJobAge 300, accounting sampled every 30 s); what a fixture changes
for its tests, it says. Jobs are submitted by an unprivileged learner, never by
root; the daemons run as root, as at a site.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import copy_project
from tests.slurm_helpers import learner, learner_python
from tools.learners import Learner
from tools.local_slurm import ACCOUNT, PARTITION, Cluster, missing_programs, start, stop

REQUIRE_SLURM = "VOLCANO_REQUIRE_SLURM"


#: The fixtures that start a localhost cluster: a test that uses one, itself or
#: through another fixture, is marked ``slurm`` (``-m "not slurm"`` leaves it out).
CLUSTER_FIXTURES = frozenset(
    {"slurm", "fault_slurm", "accounting_slurm", "tutorial_slurm", "strict_slurm"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a cluster ``slurm``, whatever file it is in."""
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slurm)


def _skip_or_fail(reason: str) -> None:
    """Skip, or fail where VOLCANO_REQUIRE_SLURM=1 (CI sets it): CI never skips these."""
    if os.environ.get(REQUIRE_SLURM) == "1":
        pytest.fail(f"{REQUIRE_SLURM}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def session_folder() -> Iterator[Path]:
    """This session's own folder: its clusters, and the learner's project copies.

    Readable by all (the learner works below it); removed when the session ends,
    after every cluster in it has stopped.
    """
    folder = Path(tempfile.mkdtemp(prefix="volcano-tests-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


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
    try:
        seconds = start(cluster)  # a start that fails stops what it started
        print(f"\nlocalhost Slurm {cluster.folder.name} ({cluster.profile}) up in {seconds:.1f} s")
        yield cluster
    finally:
        stop(cluster)


def _cluster(session_folder: Path, name: str, **options: object) -> Cluster:
    return Cluster(session_folder / name, nodes=2, learners=(learner().name,), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def slurm(session_folder: Path) -> Iterator[Cluster]:
    """A private two-node cluster on localhost, configured as a site, for the whole session.

    Skipped where the Slurm packages are missing or we are not root, unless
    VOLCANO_REQUIRE_SLURM=1 (CI sets it), which turns that skip into a failure.
    """
    yield from _start_cluster(_cluster(session_folder, "slurm"))


#: The fault cluster: a lost node is noticed in 10 s; array indices stop at 100.
FAULT_SETTINGS = (("SlurmdTimeout", "10"), ("MaxArraySize", "101"))
#: ... and a requeued task may start again after 10 s, not Slurm's default 120 s.
FAULT_CRED_EXPIRE = 10


@pytest.fixture(scope="session")
def fault_slurm(session_folder: Path) -> Iterator[Cluster]:
    """A second site cluster for fault tests: short SlurmdTimeout, MaxArraySize 101."""
    cluster = _cluster(
        session_folder, "faults", settings=FAULT_SETTINGS, cred_expire=FAULT_CRED_EXPIRE
    )
    yield from _start_cluster(cluster)


@pytest.fixture(scope="session")
def accounting_slurm(session_folder: Path) -> Iterator[Cluster]:
    """A third site cluster, which keeps accounting: MariaDB, slurmdbd, sacct."""
    yield from _start_cluster(_cluster(session_folder, "accounting", accounting=True))


@pytest.fixture(scope="session")
def tutorial_slurm(session_folder: Path) -> Iterator[Cluster]:
    """The tutorial's own two-node site cluster with accounting, from a new state folder.

    As a reader's first cluster is: job ids start from 1, no jobs in the queue,
    an empty accounting database. So docs/tutorial.md passes alone and in the
    suite alike: no test that ran before can change what it shows.
    """
    yield from _start_cluster(_cluster(session_folder, "tutorial", accounting=True))


#: A stricter site, as many are: Slurm cancels a job whose dependency can never be met,
#: each user sees only their own jobs, array indices stop at 499 ...
STRICT_SETTINGS = (
    ("DependencyParameters", "kill_invalid_depend"),
    ("PrivateData", "jobs"),
    ("MaxArraySize", "500"),
)
#: ... and no default partition, an account required, 50 jobs queued per learner: what a
#: learner's login shell sets there.
STRICT_LOGIN = {"SBATCH_PARTITION": PARTITION, "SBATCH_ACCOUNT": ACCOUNT}


@pytest.fixture(scope="session")
def strict_slurm(session_folder: Path) -> Iterator[Cluster]:
    """A site cluster with accounting that needs a partition and an account (STRICT_LOGIN)
    and has the settings of STRICT_SETTINGS and a per-learner MaxSubmitJobs of 50."""
    cluster = _cluster(
        session_folder,
        "strict",
        settings=STRICT_SETTINGS,
        accounting=True,
        default_partition=False,
        require_account=True,
        max_submit=50,
    )
    yield from _start_cluster(cluster)


@pytest.fixture(scope="session")
def the_learner() -> Learner:
    """The unprivileged user every end-to-end run submits as, with their own Python."""
    if os.geteuid() != 0:
        _skip_or_fail("the tests make their learner (useradd) as root: run the tests as root")
    learner_python()  # made once, in the learner's home, and kept for later sessions
    return learner()


@pytest.fixture
def learner_project(
    session_folder: Path, the_learner: Learner, request: pytest.FixtureRequest
) -> Path:
    """A fresh copy of the project, owned by the learner, where they can work."""
    name = re.sub(r"[^\w-]+", "-", request.node.name)[:60]
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_projects(session_folder)))
    return the_learner.own(copy_project(folder / "project").parent) / "project"


@pytest.fixture
def learner_folder(session_folder: Path, the_learner: Learner) -> Path:
    """An empty folder of the learner's own."""
    return the_learner.own(Path(tempfile.mkdtemp(dir=_projects(session_folder))))


def _projects(session_folder: Path) -> Path:
    projects = session_folder / "projects"
    projects.mkdir(mode=0o755, exist_ok=True)
    return projects


@pytest.fixture
def root_only() -> None:
    """For tests that mount file systems: root only (CI is root, and never skips them)."""
    if os.geteuid() != 0:
        _skip_or_fail("this test mounts a small tmpfs: run the tests as root")
