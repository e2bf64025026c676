"""On a cluster that keeps accounting (MariaDB and slurmdbd, as sites run them).

``sacct`` is how users learn what happened to their jobs once Slurm's controller
has forgotten them, and the only way a finished run's peak memory and CPU time
can be read back. These tests run on the accounting cluster of tests/clusters.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import run
from tests.helpers import wait_for
from tests.slurm_helpers import cluster_env
from tests.slurm_helpers import queued_ids
from tests.slurm_helpers import submit
from tools.local_slurm import Cluster
from tools.local_slurm import start
from tools.local_slurm import wait_for_jobs


def _sacct(cluster: Cluster, job: str, fields: str) -> list[list[str]]:
    output = subprocess.run(
        ["sacct", "--noheader", "--parsable2", "--jobs", job, "--format", fields],
        env=cluster.env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split("|") for line in output.splitlines() if line]


def _wait_for_accounting(cluster: Cluster, array_id: str, tasks: int) -> None:
    """Wait until slurmdbd holds every task's final record: it is told a moment later."""

    def recorded() -> bool:
        rows = _sacct(cluster, array_id, "JobID,State")
        done = [row for row in rows if "." not in row[0] and row[1] == "COMPLETED"]
        return len(done) == tasks

    wait_for(recorded, f"sacct to list the {tasks} tasks of {array_id}", timeout=60)


def _forget_every_job(cluster: Cluster) -> None:
    """Restart slurmctld with no job state (``-c``): as if MinJobAge had passed for all."""
    pid = int(cluster.pid_file("slurmctld").read_text().split()[0])
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "slurmctld to stop", timeout=20)
    start(cluster)


def test_sacct_has_every_task_with_its_peak_memory_and_the_memory_it_asked_for(
    accounting_slurm: Cluster, project: Path
) -> None:
    # Tasks of over a second: jobacct_gather/linux samples each step once a second
    # (JobAcctGatherFrequency=1), so a shorter task may end before its first sample.
    array_id, gif_id = submit(accounting_slurm, project, "--frames", "96",
                              "--frames-per-task", "48")  # fmt: skip
    wait_for_jobs(accounting_slurm, [array_id, gif_id], timeout=240)
    _wait_for_accounting(accounting_slurm, array_id, 2)
    rows = _sacct(accounting_slurm, array_id, "JobID,State,ExitCode,TotalCPU,MaxRSS,ReqMem")
    tasks = {row[0]: row for row in rows if "." not in row[0]}
    steps = {row[0]: row for row in rows if row[0].endswith(".batch")}
    assert sorted(tasks) == [f"{array_id}_{task}" for task in (1, 2)], rows
    assert {row[1] for row in tasks.values()} == {"COMPLETED"}
    assert {row[5] for row in tasks.values()} == {"256M"}  # generate_frames.slurm's --mem
    for row in steps.values():  # the batch step of each task: its own peak, in KiB
        assert row[4].endswith("K"), rows
        assert 20_000 < int(row[4][:-1]) < 256 * 1024, rows
    ((gif_job, state, exit_code, _cpu, _rss, requested),) = [
        row for row in _sacct(accounting_slurm, gif_id, "JobID,State,ExitCode,TotalCPU,MaxRSS,"
                              "ReqMem") if "." not in row[0]
    ]  # fmt: skip
    assert (gif_job, state, exit_code, requested) == (gif_id, "COMPLETED", "0:0", "1G")


def test_the_watch_judges_a_run_slurm_has_forgotten_from_sacct(
    accounting_slurm: Cluster, project: Path
) -> None:
    array_id, gif_id = submit(accounting_slurm, project, "--frames", "2")
    wait_for_jobs(accounting_slurm, [array_id, gif_id], timeout=240)
    _wait_for_accounting(accounting_slurm, array_id, 2)
    _forget_every_job(accounting_slurm)
    assert queued_ids(accounting_slurm) == []
    result = run([sys.executable, "-m", "volcano_gif", "watch"], cwd=project,
                 env=cluster_env(accounting_slurm))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = [text for text in result.stderr.splitlines() if text.startswith("frames ")]
    assert line.startswith(f"frames 2/2 | array {array_id}: 0 pending, 0 running, 2 completed")
    assert f"gif job {gif_id}: COMPLETED" in line
    assert line.endswith("[judged from sacct]"), line
    assert result.stdout == f"{project / 'output/gifs/volcano.gif'}\n"
