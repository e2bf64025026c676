"""Faults on the real localhost Slurm, and full disks: no fault loses a frame.

The cluster of the ``fault_slurm`` fixture notices a lost node after 10 s
(SlurmdTimeout) and caps array indices at 100 (MaxArraySize=101). The learner
submits, cancels and resumes; the test, as root, loses nodes as only a machine
or an administrator can. Each test ends with one command, ``bash submit-gif-job
--resume``, that finishes the run, and checks the frames against a clean
render, byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import clean_frame_digests, descendants, run
from tests.media import gif_facts, mp4_frame_count
from tests.slurm_helpers import (
    as_learner,
    cluster_env,
    learner,
    learner_python,
    submit,
    submit_run,
    task_states,
    wait_for_run,
)
from tools.local_slurm import Cluster, job_records, node_states, start, status
from volcano_gif.layout import frame_name
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import require_record


@pytest.fixture
def project(learner_project: Path) -> Path:
    """The learner's own copy of the project: they submit, cancel and resume."""
    return learner_project


def _resume_and_check(cluster: Cluster, project: Path, frame_count: int) -> None:
    resumed = submit_run(cluster, project, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    wait_for_run(cluster, project)
    _check_complete(project, frame_count)


def _check_complete(project: Path, frame_count: int) -> None:
    """The run is assembled, and its frames are a clean render's, byte for byte."""
    record = require_record(ProjectPaths(project))
    assert record.state == "assembled", record.error
    assert mp4_frame_count(project / "output/gifs/volcano.mp4") == frame_count
    assert gif_facts(project / "output/gifs/volcano.gif")[0] == frame_count
    assert record.frames_sha256 == clean_frame_digests(frame_count)
    assert list((project / "images").iterdir()) == []


def test_scancel_two_tasks_then_resume_loses_nothing(fault_slurm: Cluster, project: Path) -> None:
    array_id, gif_id = submit(fault_slurm, project, "--frames", "12", "--max-running", "2")
    cancel = as_learner(
        ["scancel", f"{array_id}_5", f"{array_id}_9"], cwd=project, env=cluster_env(fault_slurm)
    )
    assert cancel.returncode == 0, cancel.stderr
    wait_for_run(fault_slurm, project)

    # Slurm drops cancelled pending tasks from the array: they leave no record at all.
    states = task_states(fault_slurm, array_id)
    assert sorted(states) == [k for k in range(1, 13) if k not in {5, 9}]
    assert set(states.values()) == {"COMPLETED"}
    (assembly,) = job_records(fault_slurm, gif_id)
    assert (assembly["JobState"], assembly["ExitCode"]) == ("FAILED", "1:0")
    log = (project / f"output/slurm_files/create_gif-{gif_id}.err").read_text()
    assert "2 of 12 frames are missing or broken (5, 9); nothing was assembled" in log
    assert "bash submit-gif-job --resume" in log
    left = sorted(p.name for p in (project / "images").iterdir())
    assert left == [frame_name(n) for n in range(1, 13) if n not in {5, 9}]
    assert not (project / "output/gifs").exists()
    record = require_record(ProjectPaths(project))
    assert (record.state, record.missing_frames) == ("failed", [5, 9])

    resumed = submit_run(fault_slurm, project, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 of 12 frames to render again (5,9), as array tasks 5,9" in resumed.stderr
    assert resumed.stdout.startswith("frames job: ")
    assert "(array 5,9%2)" in resumed.stdout  # the run keeps its --max-running
    wait_for_run(fault_slurm, project)
    _check_complete(project, 12)
    done = submit_run(fault_slurm, project, "--resume")
    assert done.returncode == 0, done.stderr
    assert "is complete: output/gifs/volcano.mp4, output/gifs/volcano.gif" in done.stdout
    assert "nothing to submit" in done.stdout


def _stepd_pids(job_ids: set[str]) -> list[int]:
    """The slurmstepd processes of these jobs, by their command line ``slurmstepd: [ID.batch]``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        for job in job_ids:
            if command.startswith(f"slurmstepd: [{job}."):
                found.append(int(entry.name))
    return found


@contextmanager
def _node_back_afterwards(cluster: Cluster, node: str) -> Iterator[None]:
    try:
        yield
    finally:
        start(cluster)  # restarts the killed slurmd
        run(
            ["scontrol", "update", f"NodeName={node}", "State=RESUME"],
            cwd=Path("/"),
            env=cluster.env(),
        )
        deadline = time.monotonic() + 60
        while node_states(cluster).get(node) not in {"idle", "mix", "alloc"}:
            assert time.monotonic() < deadline, node_states(cluster)
            time.sleep(0.5)


def test_a_lost_node_loses_no_frame(fault_slurm: Cluster, project: Path) -> None:
    array_id, _ = submit(fault_slurm, project, "--frames", "96", "--frames-per-task", "24")
    lost_node = fault_slurm.node_names[1]
    # Wait until a task runs on the second node (its slurmstepd is up: RUNNING comes a
    # moment before, and a task may end in between), then lose that node: its slurmd,
    # its slurmstepds and their tasks.
    deadline = time.monotonic() + 60
    while True:
        on_node = {
            record["JobId"]
            for record in job_records(fault_slurm, array_id)
            if record["JobState"] == "RUNNING" and record.get("BatchHost") == lost_node
        }
        stepds = _stepd_pids(on_node) if on_node else []
        if stepds:
            break
        assert time.monotonic() < deadline, f"no task started on {lost_node}"
        time.sleep(0.1)
    with _node_back_afterwards(fault_slurm, lost_node):
        slurmd = status(fault_slurm)[f"slurmd-{lost_node}.pid"]
        assert slurmd is not None
        victims = [slurmd, *stepds, *(p for s in stepds for p in descendants(s))]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):  # a task that ended just now
                os.kill(pid, signal.SIGKILL)
        # Slurm notices within SlurmdTimeout (10 s) and marks the node down.
        deadline = time.monotonic() + 60
        while not node_states(fault_slurm).get(lost_node, "").startswith("down"):
            assert time.monotonic() < deadline, node_states(fault_slurm)
            time.sleep(0.5)
        wait_for_run(fault_slurm, project, timeout=300)
        tasks = job_records(fault_slurm, array_id)
        lost = [t for t in tasks if t["JobId"] in on_node]
        what = [(t["JobId"], t["JobState"], t["Restarts"], t["BatchHost"]) for t in lost]
        print("what Slurm did with the lost tasks:", what)
        # Whatever Slurm did (requeue, or fail), --resume finishes the run with nothing lost.
        if require_record(ProjectPaths(project)).state == "assembled":
            _check_complete(project, 96)
        else:
            _resume_and_check(fault_slurm, project, 96)


def test_3600_frames_fit_under_max_array_size_101(fault_slurm: Cluster, project: Path) -> None:
    result = submit_run(
        fault_slurm, project, "--frames", "3600", "--frames-per-task", "1", "--size", "64x48"
    )
    assert result.returncode == 0, result.stderr
    assert (
        "3600 frames at 1 per task need array indices up to 3600, but this cluster's "
        "MaxArraySize is 101 (indices up to 100): rendering 36 frames per task instead, "
        "as 100 tasks"
    ) in result.stderr
    assert "(array 1-100)" in result.stdout
    wait_for_run(fault_slurm, project, timeout=900)
    record = require_record(ProjectPaths(project))
    assert record.state == "assembled", record.error
    (submission,) = record.submissions
    assert submission.commands[0][:5] == [
        "sbatch",
        "--parsable",
        "--array=1-100",
        f"--comment=volcano-gif:run:{record.run_id}",
        "generate_frames.slurm",
    ]
    assert "--frames-per-task" in submission.commands[0]
    assert submission.commands[0][submission.commands[0].index("--frames-per-task") + 1] == "36"
    states = task_states(fault_slurm, submission.array_job_id or "")
    assert sorted(states) == list(range(1, 101))
    assert set(states.values()) == {"COMPLETED"}
    assert gif_facts(project / "output/gifs/volcano.gif")[:2] == (3600, (64, 48))
    assert mp4_frame_count(project / "output/gifs/volcano.mp4") == 3600
    assert len(record.frames_sha256) == 3600


# ------------------------------------------------------------------ full disks
@contextmanager
def _small_disk(folder: Path, size: str) -> Iterator[None]:
    """A full disk of ``size`` mounted at ``folder`` (as root), that the learner writes to."""
    folder.mkdir(parents=True, exist_ok=True)
    owner = learner()
    owner.own(folder.parent)
    options = f"size={size},uid={owner.uid},gid={owner.gid},mode=0755"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def learners_rendered_project(project: Path, small_frames: Path) -> ProjectPaths:
    """The learner's project copy, whose images/ holds a complete 12-frame run."""
    shutil.copytree(small_frames, project / "images", dirs_exist_ok=True)
    learner().own(project)
    return ProjectPaths(project)


def _assemble_as_learner(paths: ProjectPaths) -> subprocess.CompletedProcess[str]:
    command: list[str | Path] = [
        learner_python(),
        "-m",
        "volcano_gif",
        "assemble",
        "--frames",
        "12",
    ]
    return as_learner(command, cwd=paths.root, env=os.environ)


@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize(
    ("full", "size", "named"),
    [
        ("output/archives", "256k", "output/archives/volcano-images-"),
        ("output/gifs", "64k", "output/gifs/volcano."),
    ],
    ids=["archives", "gifs"],
)
def test_a_full_disk_loses_no_frame_and_names_the_file(
    learners_rendered_project: ProjectPaths, full: str, size: str, named: str
) -> None:
    paths = learners_rendered_project
    before = {p.name: p.read_bytes() for p in paths.images.iterdir()}
    with _small_disk(paths.root / full, size):
        result = _assemble_as_learner(paths)
        assert result.returncode == 1
        (error,) = [line for line in result.stderr.splitlines() if ": error: " in line]
        assert f"{paths.root}/{named}" in error
        assert "No space left on device" in error
        assert error.endswith("no frame was deleted")
        # Nothing partial under a final name, and no temporary left behind.
        assert sorted(os.listdir(paths.root / full)) == []
    assert {p.name: p.read_bytes() for p in paths.images.iterdir()} == before
    for folder in ("output/gifs", "output/archives"):
        if (paths.root / folder).exists():
            assert os.listdir(paths.root / folder) == []
    # With room again, the same command finishes the run.
    again = _assemble_as_learner(paths)
    assert again.returncode == 0, again.stderr
