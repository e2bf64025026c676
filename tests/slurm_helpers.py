"""Running the real scripts on a localhost cluster, and reading back what Slurm did."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers import project_env
from tests.helpers import run
from tools.local_slurm import Cluster
from tools.local_slurm import job_records
from tools.local_slurm import wait_for_jobs
from volcano_gif.layout import ProjectPaths
from volcano_gif.run.record import require_record


def cluster_env(cluster: Cluster, **extra: str) -> dict[str, str]:
    return project_env({"SLURM_CONF": str(cluster.conf), **extra})


def submit_run(
    cluster: Cluster,
    project: Path,
    *options: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``bash submit-gif-job`` against the cluster."""
    return run(["bash", project / "submit-gif-job", *options], cwd=cwd or project,
               env=env or cluster_env(cluster))  # fmt: skip


def submit(
    cluster: Cluster,
    project: Path,
    *options: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Run submit-gif-job on the cluster; return (array job id, assembly job id)."""
    result = submit_run(cluster, project, *options, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    array_id = re.search(r"^frames job: (\d+) ", result.stdout, flags=re.MULTILINE)
    gif_id = re.search(r"^gif job: (\d+) \(afterany:(\d+)\)$", result.stdout, flags=re.MULTILINE)
    assert array_id, result.stdout
    assert gif_id, result.stdout
    assert gif_id.group(2) == array_id.group(1)
    return array_id.group(1), gif_id.group(1)


def wait_for_run(cluster: Cluster, project: Path, timeout: float = 300) -> None:
    """Wait until every job of the run in the project's run record has ended."""
    wait_for_jobs(cluster, require_record(ProjectPaths(project)).job_ids(), timeout=timeout)


def queued_ids(cluster: Cluster) -> list[str]:
    """Every job and array task id in the queue (pending or running)."""
    output = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], env=cluster.env(),
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sorted(output.split())


def task_states(cluster: Cluster, array_id: str) -> dict[int, str]:
    return {int(t["ArrayTaskId"]): t["JobState"] for t in job_records(cluster, array_id)}
