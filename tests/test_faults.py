"""Faults on the real localhost Slurm, and full disks: no fault loses a frame.

The cluster of the ``fault_slurm`` fixture notices a lost node after 10 s
(SlurmdTimeout) and caps array indices at 100 (MaxArraySize=101). Each test
ends with one command, ``bash submit-gif-job --resume``, that finishes the run,
and checks the frames against a clean render, byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import clean_frame_digests
from tests.helpers import descendants
from tests.helpers import run
from tests.media import gif_facts
from tests.media import mp4_frame_count
from tests.slurm_helpers import submit
from tests.slurm_helpers import submit_run
from tests.slurm_helpers import task_states
from tests.slurm_helpers import wait_for_run
from tools.local_slurm import Cluster
from tools.local_slurm import job_records
from tools.local_slurm import node_states
from tools.local_slurm import start
from tools.local_slurm import status
from volcano_gif.layout import ProjectPaths
from volcano_gif.layout import frame_name
from volcano_gif.run.record import require_record


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


@pytest.mark.slurm
def test_scancel_two_tasks_then_resume_loses_nothing(fault_slurm: Cluster, project: Path) -> None:
    array_id, gif_id = submit(fault_slurm, project, "--frames", "12", "--max-running", "2")
    cancel = subprocess.run(
        ["scancel", f"{array_id}_5", f"{array_id}_9"],
        env=fault_slurm.env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
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
        run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], cwd=Path("/"),
            env=cluster.env())  # fmt: skip
        deadline = time.monotonic() + 60
        while node_states(cluster).get(node) not in {"idle", "mix", "alloc"}:
            assert time.monotonic() < deadline, node_states(cluster)
            time.sleep(0.5)


@pytest.mark.slurm
def test_a_lost_node_loses_no_frame(fault_slurm: Cluster, project: Path) -> None:
    array_id, _ = submit(fault_slurm, project, "--frames", "96", "--frames-per-task", "24")
    # Wait until a task runs on n2 (its slurmstepd is up: RUNNING comes a moment before,
    # and a task may end in between), then lose n2: its slurmd, slurmstepds, their tasks.
    deadline = time.monotonic() + 60
    while True:
        on_n2 = {
            record["JobId"] for record in job_records(fault_slurm, array_id)
            if record["JobState"] == "RUNNING" and record.get("BatchHost") == "n2"
        }  # fmt: skip
        stepds = _stepd_pids(on_n2) if on_n2 else []
        if stepds:
            break
        assert time.monotonic() < deadline, "no task started on n2"
        time.sleep(0.1)
    with _node_back_afterwards(fault_slurm, "n2"):
        slurmd = status(fault_slurm)["slurmd-n2.pid"]
        assert slurmd is not None
        victims = [slurmd, *stepds, *(p for s in stepds for p in descendants(s))]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):  # a task that ended just now
                os.kill(pid, signal.SIGKILL)
        # Slurm notices within SlurmdTimeout (10 s) and marks n2 down.
        deadline = time.monotonic() + 60
        while not node_states(fault_slurm).get("n2", "").startswith("down"):
            assert time.monotonic() < deadline, node_states(fault_slurm)
            time.sleep(0.5)
        wait_for_run(fault_slurm, project, timeout=300)
        tasks = job_records(fault_slurm, array_id)
        lost = [t for t in tasks if t["JobId"] in on_n2]
        what = [(t["JobId"], t["JobState"], t["Restarts"], t["BatchHost"]) for t in lost]
        print("what Slurm did with the lost tasks:", what)
        # Whatever Slurm did (requeue, or fail), --resume finishes the run with nothing lost.
        if require_record(ProjectPaths(project)).state == "assembled":
            _check_complete(project, 96)
        else:
            _resume_and_check(fault_slurm, project, 96)


@pytest.mark.slurm
def test_3600_frames_fit_under_max_array_size_101(fault_slurm: Cluster, project: Path) -> None:
    result = submit_run(fault_slurm, project, "--frames", "3600", "--frames-per-task", "1",
                        "--size", "64x48")  # fmt: skip
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
    assert submission.commands[0][:4] == ["sbatch", "--parsable", "--array=1-100",
                                          "generate_frames.slurm"]  # fmt: skip
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
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                   check=True)  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


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
    rendered_project: ProjectPaths, full: str, size: str, named: str
) -> None:
    paths = rendered_project
    before = {p.name: p.read_bytes() for p in paths.images.iterdir()}
    with _small_disk(paths.root / full, size):
        result = run([sys.executable, "-m", "volcano_gif", "assemble", "--frames", "12"],
                     cwd=paths.root)  # fmt: skip
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
    again = run([sys.executable, "-m", "volcano_gif", "assemble", "--frames", "12"],
                cwd=paths.root)  # fmt: skip
    assert again.returncode == 0, again.stderr
