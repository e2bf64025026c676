"""On a cluster that keeps accounting (MariaDB and slurmdbd, as sites run them).

``sacct`` is how users learn what happened to their jobs once Slurm's controller
has forgotten them, and the only way a finished run's peak memory and CPU time
can be read back. These tests run on the accounting cluster of tests/clusters.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import copy_project, wait_for
from tests.slurm_helpers import learner, queued_ids, submit, submit_run, volcano_gif
from tools.local_slurm import Cluster, start, wait_for_jobs
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import require_record
from volcano_gif.sacct import seconds


@pytest.fixture
def project(learner_project: Path) -> Path:
    """The learner's own copy of the project: they submit, watch and report."""
    return learner_project


def _sacct(cluster: Cluster, job: str, fields: str) -> list[list[str]]:
    output = subprocess.run(
        ["sacct", "--noheader", "--parsable2", "--jobs", job, "--format", fields],
        env=cluster.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split("|") for line in output.splitlines() if line]


def _wait_for_accounting(cluster: Cluster, array_id: str, tasks: int) -> None:
    """Wait until slurmdbd holds every task's final record: it is told a moment later."""

    def recorded() -> bool:
        rows = _sacct(cluster, array_id, "JobID,State")
        done = [row for row in rows if "." not in row[0] and row[1] == "COMPLETED"]
        return len(done) == tasks

    wait_for(recorded, f"sacct to list the {tasks} tasks of {array_id}", timeout=60)


def _stop_daemon(cluster: Cluster, daemon: str) -> None:
    pid = int(cluster.pid_file(daemon).read_text().split()[0])
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), f"{daemon} to stop", timeout=20)


def _forget_every_job(cluster: Cluster) -> None:
    """Restart slurmctld with no job state (``-c``): as if MinJobAge had passed for all."""
    _stop_daemon(cluster, "slurmctld")
    start(cluster)


def _report(cluster: Cluster, project: Path) -> tuple[list[str], pd.DataFrame]:
    """``volcano-gif report``: its summary lines, and tasks.csv."""
    result = volcano_gif(cluster, project, "report")
    assert result.returncode == 0, result.stderr
    summary = (project / "output/report/summary.txt").read_text().splitlines()
    for line in summary:
        assert line in result.stderr
    return summary, pd.read_csv(project / "output/report/tasks.csv")


def test_sacct_has_every_task_with_its_peak_memory_and_the_memory_it_asked_for(
    accounting_slurm: Cluster, project: Path
) -> None:
    # A site samples each step's memory every 30 s (JobAcctGatherFrequency): a task of a
    # few seconds gets one sample, as it starts (a few MiB of bash). A user may ask for
    # more: --acctg-freq=1, after --, for both jobs. The tasks then last over a second.
    array_id, gif_id = submit(
        accounting_slurm,
        project,
        "--frames",
        "96",
        "--frames-per-task",
        "48",
        "--",
        "--acctg-freq=1",
    )
    wait_for_jobs(accounting_slurm, [array_id, gif_id], timeout=240)
    _wait_for_accounting(accounting_slurm, array_id, 2)
    rows = _sacct(
        accounting_slurm,
        array_id,
        "JobID,State,ExitCode,TotalCPU,MaxRSS,ReqMem,ElapsedRaw,AllocCPUS",
    )
    tasks = {row[0]: row for row in rows if "." not in row[0]}
    steps = {row[0]: row for row in rows if row[0].endswith(".batch")}
    assert sorted(tasks) == [f"{array_id}_{task}" for task in (1, 2)], rows
    assert {row[1] for row in tasks.values()} == {"COMPLETED"}
    assert {row[5] for row in tasks.values()} == {"256M"}  # generate_frames.slurm's --mem
    for row in steps.values():  # the batch step of each task: its own peak, in KiB
        assert row[4].endswith("K"), rows
        assert 20_000 < int(row[4][:-1]) < 256 * 1024, rows
    ((gif_job, state, exit_code, _cpu, _rss, requested, *_),) = [
        row
        for row in _sacct(accounting_slurm, gif_id, "JobID,State,ExitCode,TotalCPU,MaxRSS,ReqMem")
        if "." not in row[0]
    ]
    assert (gif_job, state, exit_code, requested) == (gif_id, "COMPLETED", "0:0", "1G")

    # The report reads the same from one sacct call, with what seff would say.
    summary, table = _report(accounting_slurm, project)
    assert summary[-1] == (
        "source: sacct for 2 of 2 tasks (2 COMPLETED); peak memory: the larger of each task's "
        "own high-water mark and sacct's MaxRSS (sampled for 2)"
    ), summary
    assert table["state"].tolist() == ["COMPLETED"] * 2
    assert table["exit_code"].tolist() == ["0:0"] * 2
    assert table["mem_requested_mib"].tolist() == [256.0] * 2
    peaks = {row[0].removesuffix(".batch"): int(row[4][:-1]) / 1024 for row in steps.values()}
    assert table["maxrss_mib"].tolist() == pytest.approx(
        [peaks[task.removeprefix("slurm-")] for task in table["task"]], abs=1e-3
    )
    assert (table["peak_rss_mib"] >= table["maxrss_mib"]).all()
    # CPU efficiency is sacct's TotalCPU over the elapsed time (sacct's whole seconds, or
    # the task's own wall time if longer) times AllocCPUS: a fraction, whatever the
    # machine's load, which only makes it smaller.
    figures = [tasks[task.removeprefix("slurm-")] for task in table["task"]]
    cpu = [seconds(row[3]) for row in figures]  # tasks.csv keeps 3 decimals
    assert table["cpu_s"].tolist() == pytest.approx(cpu, abs=1e-3)
    assert table["cpus"].tolist() == [int(row[7]) for row in figures]
    elapsed = table["elapsed_s"].tolist()
    assert all(shown >= int(row[6]) for shown, row in zip(elapsed, figures, strict=True)), elapsed
    efficiency = table["cpu_efficiency"]
    assert efficiency.tolist() == pytest.approx(
        (table["cpu_s"] / (table["elapsed_s"] * table["cpus"])).tolist(), abs=2e-3
    )
    assert efficiency.between(0, 1, inclusive="right").all(), efficiency.tolist()
    (line,) = [line for line in summary if line.startswith("efficiency: ")]
    assert re.fullmatch(
        r"efficiency: CPU \d+% of [\d.]+ core-seconds allocated; memory \d+% of "
        r"the 256 MiB asked for, at the largest task's peak \(\d+ MiB\)",
        line,
    ), line


def test_the_watch_judges_a_run_slurm_has_forgotten_from_sacct(
    accounting_slurm: Cluster, project: Path
) -> None:
    array_id, gif_id = submit(accounting_slurm, project, "--frames", "2")
    wait_for_jobs(accounting_slurm, [array_id, gif_id], timeout=240)
    _wait_for_accounting(accounting_slurm, array_id, 2)

    # slurmdbd down: the watch ends from squeue; the report from the timing files, and says so.
    _stop_daemon(accounting_slurm, "slurmdbd")
    try:
        watched = volcano_gif(accounting_slurm, project, "watch")
        assert watched.returncode == 0, watched.stderr
        assert f"gif job {gif_id}: COMPLETED" in watched.stderr
        summary, table = _report(accounting_slurm, project)
        assert summary[-1].startswith("source: the task timing files (sacct: "), summary
        assert set(table["source"]) == {"timing file"}
    finally:
        start(accounting_slurm)

    _forget_every_job(accounting_slurm)
    assert queued_ids(accounting_slurm) == []
    result = volcano_gif(accounting_slurm, project, "watch")
    assert result.returncode == 0, result.stderr
    (line,) = [text for text in result.stderr.splitlines() if text.startswith("frames ")]
    assert line.startswith(f"frames 2/2 | array {array_id}: 0 pending, 0 running, 2 completed")
    assert f"gif job {gif_id}: COMPLETED" in line
    assert line.endswith("[judged from sacct]"), line
    assert result.stdout == f"{project / 'output/gifs/volcano.gif'}\n"
    # The assembly's report came before slurmdbd knew its tasks had ended: the watch
    # wrote it again from sacct, and shows it.
    assert "  source: sacct for 2 of 2 tasks (2 COMPLETED); peak memory: " in result.stderr
    # The report of a run Slurm has forgotten: from sacct.
    summary, table = _report(accounting_slurm, project)
    assert summary[-1].startswith("source: sacct for 2 of 2 tasks (2 COMPLETED); "), summary
    assert table["state"].tolist() == ["COMPLETED"] * 2


def _sacctmgr(cluster: Cluster, *words: str, check: bool = True) -> None:
    subprocess.run(
        ["sacctmgr", "-i", *words], env=cluster.env(), capture_output=True, text=True, check=check
    )


def _no_class_qos(cluster: Cluster) -> None:
    """Back to the cluster's own QOS (normal): the user first, then the class's QOS."""
    _sacctmgr(
        cluster,
        "modify",
        "user",
        learner().name,
        "set",
        "qos=normal",
        "defaultqos=normal",
        check=False,
    )
    _sacctmgr(cluster, "delete", "qos", "class50", check=False)


def test_a_run_fits_the_qos_submit_limit_and_a_used_up_limit_submits_nothing(
    accounting_slurm: Cluster, project: Path, learner_folder: Path
) -> None:
    # A class's QOS: each learner may queue 50 jobs; each array task counts as one.
    _no_class_qos(accounting_slurm)  # as an earlier, interrupted run may have left it
    _sacctmgr(accounting_slurm, "add", "qos", "class50", "MaxSubmitJobsPerUser=50")
    _sacctmgr(
        accounting_slurm,
        "modify",
        "user",
        learner().name,
        "set",
        "qos=class50",
        "defaultqos=class50",
    )
    try:
        result = submit_run(accounting_slurm, project, "--frames", "360")
        assert result.returncode == 0, result.stderr
        assert (
            "360 array tasks would exceed your submit limit (QOS class50 "
            "MaxSubmitJobsPerUser=50, 0 jobs queued already): rendering 8 frames per task "
            "instead, as 45 tasks"
        ) in result.stderr
        record = require_record(ProjectPaths(project))
        assert (record.parameters.frames_per_task, record.latest and record.latest.array) == (
            8,
            "1-45",
        )
        assert len(queued_ids(accounting_slurm)) <= 50
        cancelled = submit_run(accounting_slurm, project, "--cancel")
        assert cancelled.returncode == 0, cancelled.stderr

        _sacctmgr(accounting_slurm, "modify", "qos", "class50", "set", "MaxSubmitJobsPerUser=0")
        second = learner().own(copy_project(learner_folder / "second"))
        refused = submit_run(accounting_slurm, second, "--frames", "4")
        assert refused.returncode == 2
        (line,) = refused.stderr.splitlines()
        assert line.startswith(
            "submit-gif-job: error: your submit limit (QOS class50 MaxSubmitJobsPerUser=0) "
            "is used up"
        ), line
        assert queued_ids(accounting_slurm) == []
    finally:
        _no_class_qos(accounting_slurm)
