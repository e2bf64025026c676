"""Running the real scripts on a localhost cluster as the learner, and reading back what
Slurm did.

Everything a user would type runs as the unprivileged learner
(:data:`tools.learners.LEARNER`), with their own Python; the test itself (root)
only reads what Slurm and the pipeline left behind, as an administrator could.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.learners import LEARNER, Learner
from tools.local_slurm import Cluster, job_records, wait_for_jobs
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import require_record


@functools.cache
def learner() -> Learner:
    """The learner, made (useradd) the first time it is asked for."""
    return Learner.named(LEARNER)


@functools.cache
def learner_python() -> Path:
    """The learner's own Python, with the project's dependencies."""
    return learner().python()


def cluster_env(cluster: Cluster, **extra: str) -> dict[str, str]:
    """The environment the learner's commands run in: this cluster, their Python."""
    return {
        **os.environ,
        "SLURM_CONF": str(cluster.conf),
        "VOLCANO_PYTHON": str(learner_python()),
        **extra,
    }


def as_learner(
    args: Sequence[str | Path],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` as the learner (never raises on a non-zero exit)."""
    return learner().run(args, cwd=cwd, env=env, timeout=timeout)


def volcano_gif(
    cluster: Cluster, project: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m volcano_gif ARGS`` in the project, as the learner."""
    return as_learner(
        [learner_python(), "-m", "volcano_gif", *args], cwd=project, env=env or cluster_env(cluster)
    )


def submit_run(
    cluster: Cluster,
    project: Path,
    *options: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``bash submit-gif-job`` against the cluster, as the learner."""
    return as_learner(
        ["bash", project / "submit-gif-job", *options],
        cwd=cwd or project,
        env=env or cluster_env(cluster),
    )


def submit(
    cluster: Cluster,
    project: Path,
    *options: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
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
    """Every job and array task id in the queue (pending or running), anyone's."""
    return sorted(slurm_output(cluster, ["squeue", "-h", "-r", "-o", "%i"]).split())


def slurm_output(cluster: Cluster, args: list[str], cwd: Path | None = None) -> str:
    """What a Slurm client run against ``cluster`` printed; raises if it failed."""
    return subprocess.run(
        args, env=cluster.env(), cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def task_states(cluster: Cluster, array_id: str) -> dict[int, str]:
    return {int(t["ArrayTaskId"]): t["JobState"] for t in job_records(cluster, array_id)}
