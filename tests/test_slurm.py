"""The real scripts on a real Slurm: slurmctld, two slurmd and munged on localhost.

Each test copies the project, runs ``bash submit-gif-job`` against the private
cluster of the ``slurm`` fixture, waits for the jobs and reads back what Slurm
and the pipeline left behind.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import REPO, project_env, run
from tests.media import gif_facts, mp4_frame_count
from tools.local_slurm import Cluster, job_records, start, status, wait_for_jobs

pytestmark = pytest.mark.slurm


def submit(
    cluster: Cluster,
    project: Path,
    *options: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Run submit-gif-job on the cluster; return (array job id, assembly job id)."""
    result = run(
        ["bash", project / "submit-gif-job", *options],
        cwd=cwd or project, env=env or project_env({"SLURM_CONF": str(cluster.conf)}),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    array_id = re.search(r"^frames job: (\d+) ", result.stdout, flags=re.MULTILINE)
    gif_id = re.search(r"^gif job: (\d+) \(afterany:(\d+)\)$", result.stdout, flags=re.MULTILINE)
    assert array_id, result.stdout
    assert gif_id, result.stdout
    assert gif_id.group(2) == array_id.group(1)
    return array_id.group(1), gif_id.group(1)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_submit_gif_job_end_to_end_from_another_folder(
    slurm: Cluster, project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert not (project / "output").exists()  # the log-folder trap: no folder yet
    array_id, gif_id = submit(slurm, project, "--frames", "8", cwd=elsewhere)
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)

    tasks = job_records(slurm, array_id)
    assert sorted(int(t["ArrayTaskId"]) for t in tasks) == list(range(1, 9))
    assert {t["JobState"] for t in tasks} == {"COMPLETED"}
    (gif_job,) = job_records(slurm, gif_id)
    assert (gif_job["JobState"], gif_job["ExitCode"]) == ("COMPLETED", "0:0")

    assert mp4_frame_count(project / "output/gifs/volcano.mp4") == 8
    assert gif_facts(project / "output/gifs/volcano.gif")[:3] == (8, (400, 300), 0)
    assert len(list((project / "output/archives").glob("volcano-images-*.tar.gz"))) == 1
    assert list((project / "images").iterdir()) == []

    logs = sorted(p.name for p in (project / "output/slurm_files").iterdir())
    expected = [
        f"generate_frames-{array_id}_{k}.{ext}" for k in range(1, 9) for ext in ("err", "out")
    ]
    assert logs == sorted([*expected, f"create_gif-{gif_id}.err", f"create_gif-{gif_id}.out"])
    task_log = (project / f"output/slurm_files/generate_frames-{array_id}_3.err").read_text()
    assert "rendering frames [3] of 8" in task_log
    assert list(elsewhere.iterdir()) == []


def test_assembly_waits_pending_on_dependency_until_the_last_task_ends(
    slurm: Cluster, project: Path
) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "3", "--max-running", "1")
    (waiting,) = job_records(slurm, gif_id)
    assert (waiting["JobState"], waiting["Reason"]) == ("PENDING", "Dependency")
    assert waiting["Dependency"].startswith(f"afterany:{array_id}")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    tasks = job_records(slurm, array_id)
    (assembly,) = job_records(slurm, gif_id)
    last_task_end = max(_time(t["EndTime"]) for t in tasks)
    assert _time(assembly["StartTime"]) >= last_task_end
    # %1: the tasks ran one after another.
    ordered = sorted(tasks, key=lambda t: int(t["ArrayTaskId"]))
    for before, after in itertools.pairwise(ordered):
        assert _time(after["StartTime"]) >= _time(before["EndTime"])
    assert assembly["ExitCode"] == "0:0"


def test_afterany_assembly_reports_a_failed_task_and_deletes_nothing(
    slurm: Cluster, project: Path
) -> None:
    # A folder where frame 2 should go makes task 2 fail when it renames its frame.
    (project / "images" / "image0002.png").mkdir(parents=True)
    array_id, gif_id = submit(slurm, project, "--frames", "4")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)

    states = {int(t["ArrayTaskId"]): t["JobState"] for t in job_records(slurm, array_id)}
    assert states == {1: "COMPLETED", 2: "FAILED", 3: "COMPLETED", 4: "COMPLETED"}
    (assembly,) = job_records(slurm, gif_id)
    assert assembly["JobState"] == "FAILED"
    assert assembly["ExitCode"] == "1:0"
    log = (project / f"output/slurm_files/create_gif-{gif_id}.err").read_text()
    assert "1 of 4 frames are missing or broken (2)" in log
    assert "volcano.py --frame-count 4 2" in log
    assert "sbatch --array=2 generate_frames.slurm --frame-count 4 --frames-per-task 1" in log
    left = sorted(p.name for p in (project / "images").iterdir())
    assert left == ["image0001.png", "image0002.png", "image0003.png", "image0004.png"]
    assert not (project / "output/gifs").exists()


def test_array_tasks_run_on_both_emulated_nodes(slurm: Cluster, project: Path) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "6")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    hosts = {t["BatchHost"] for t in job_records(slurm, array_id)}
    assert hosts == {"n1", "n2"}
    logs = [p.read_text() for p in (project / "output/slurm_files").glob("generate_frames-*.err")]
    assert any(" on n1" in text for text in logs)
    assert any(" on n2" in text for text in logs)


def test_frames_per_task_shrinks_the_array(slurm: Cluster, project: Path) -> None:
    array_id, gif_id = submit(slurm, project, "--frames", "10", "--frames-per-task", "4")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    assert sorted(int(t["ArrayTaskId"]) for t in job_records(slurm, array_id)) == [1, 2, 3]
    log = (project / f"output/slurm_files/generate_frames-{array_id}_3.err").read_text()
    assert "rendering frames [9, 10] of 10" in log
    assert mp4_frame_count(project / "output/gifs/volcano.mp4") == 10


def test_bad_partition_fails_with_sbatchs_message_and_queues_nothing(
    slurm: Cluster, project: Path
) -> None:
    env = slurm.env()
    before = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    result = run(
        ["bash", "submit-gif-job", "--frames", "2"], cwd=project,
        env=project_env({"SLURM_CONF": str(slurm.conf), "SBATCH_PARTITION": "nope"}),
    )  # fmt: skip
    assert result.returncode == 1
    assert "invalid partition" in result.stderr.lower()
    assert "nothing was submitted" in result.stderr
    assert result.stdout == ""
    after = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert after == before


def test_start_again_after_kill_9_brings_the_cluster_back(slurm: Cluster, project: Path) -> None:
    killed = {name: pid for name, pid in status(slurm).items() if name != "munged.pid"}
    assert all(killed.values()), killed
    for pid in killed.values():
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    for pid in killed.values():
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
    assert all(pid is None for name, pid in status(slurm).items() if name != "munged.pid")
    start(slurm)
    assert all(status(slurm).values())
    array_id, gif_id = submit(slurm, project, "--frames", "2")
    wait_for_jobs(slurm, [array_id, gif_id], timeout=240)
    (assembly,) = job_records(slurm, gif_id)
    assert assembly["ExitCode"] == "0:0"


def test_local_slurm_status_command_lists_every_daemon(slurm: Cluster) -> None:
    result = run(
        [sys.executable, "tools/local_slurm.py", "status", "--dir", slurm.folder],
        cwd=REPO, env=project_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ") for line in result.stdout.splitlines())
    assert set(lines) == {"slurmd-n1.pid", "slurmd-n2.pid", "slurmctld.pid", "munged.pid"}
    assert all(value.isdigit() for value in lines.values())
