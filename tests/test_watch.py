"""The watch's polling: one squeue per poll, backing off from 2 s to 30 s (fake squeue)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.fakes import fake_slurm_env, slurm_calls
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import new_record, write_record
from volcano_gif.run.record import Mode, Parameters, RunState, Submission
from volcano_gif.submit.watch import watch_run


def test_one_squeue_per_poll_and_a_back_off_from_2_to_30_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fake_slurm_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    queue = tmp_path / "queue"
    queue.write_text(
        "12|1|RUNNING|None|256M|5:00;12|2|PENDING|None|256M|5:00;13|N/A|PENDING|Dependency|1G|15:00"
    )
    monkeypatch.setenv("FAKE_SQUEUE_FILE", str(queue))
    paths = ProjectPaths(tmp_path / "project")
    record = new_record(Mode.SLURM, Parameters(2, 1, 640, 480, 25, 400))
    record.submissions.append(Submission("start", record.created, "1-2", 1, [], "12", "13"))
    record.state = RunState.SUBMITTED
    write_record(paths, record)

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 12:  # the run ends after 12 waits
            queue.write_text(
                "12|1|COMPLETED|None|256M|5:00;12|2|COMPLETED|None|256M|5:00;"
                "13|N/A|COMPLETED|None|1G|15:00"
            )

    shown = io.StringIO()
    code = watch_run(paths, stream=shown, sleep=sleep)
    assert waits == [2.0, 3.0, 4.5, 6.75, 10.125, 15.1875, 22.78125, 30.0, 30.0, 30.0, 30.0, 30.0]
    squeues = slurm_calls(tmp_path / "slurm.log", "squeue")
    assert len(squeues) == len(waits) + 1  # one per poll, for both jobs and every task
    assert all("12,13" in call["args"] for call in squeues)
    lines = shown.getvalue().splitlines()
    assert lines[:2] == [  # printed when something changes, not on every poll
        "frames 0/2 | array 12: 1 pending, 1 running, 0 completed, 0 failed | "
        "gif job 13: PENDING (Dependency)",
        "frames 0/2 | array 12: 0 pending, 0 running, 2 completed, 0 failed | "
        "gif job 13: COMPLETED",
    ]
    assert code == 1  # COMPLETED, but no verified GIF: the watch says so
    assert lines[-1] == "finish it with: bash submit-gif-job --resume"


@pytest.mark.parametrize(
    ("listed", "sleeps"),
    [
        ([3, 10, 24], [2.0, 3.0]),  # slurmdbd catches up: stop as soon as sacct has every task
        ([3] * 20, [2.0, 3.0, 4.5, 6.75, 10.125, 15.1875]),  # it never does: give up after 30 s
    ],
)
def test_the_watch_rewrites_the_report_until_sacct_has_every_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listed: list[int], sleeps: list[float]
) -> None:
    from volcano_gif.run import report
    from volcano_gif.submit.watch import report_from_accounting

    answers = iter(listed)

    def write_report(paths: ProjectPaths) -> report.Report:
        return report.Report(tmp_path / "t.csv", tmp_path / "t.png", [], 24, next(answers))

    monkeypatch.setattr(report, "write_report", write_report)
    slept: list[float] = []
    report_from_accounting(ProjectPaths(tmp_path), slept.append)
    assert slept == sleeps


@pytest.mark.parametrize(
    ("queue", "named", "command"),
    [
        (  # two render tasks killed for memory; the assembly found their frames missing
            "12|1|COMPLETED|None|60M|5:00;12|2|OUT_OF_MEMORY|OutOfMemory|60M|5:00;"
            "12|3|OUT_OF_MEMORY|OutOfMemory|60M|5:00;13|N/A|FAILED|NonZeroExitCode|60M|15:00",
            "  array tasks 2-3 of job 12 ran out of memory (OUT_OF_MEMORY): each asked for "
            "60 MiB (--mem); ask for more with --mem=256M",
            "finish it with: bash submit-gif-job --resume -- --mem=256M",
        ),
        (  # the assembly itself ran out of time
            "12|1|COMPLETED|None|256M|5:00;12|2|COMPLETED|None|256M|5:00;"
            "12|3|COMPLETED|None|256M|5:00;13|N/A|TIMEOUT|TimeLimit|1G|1:00",
            "  the assembly job 13 ran out of time (TIMEOUT): it asked for 1:00 (--time); ask "
            "for more with --time=00:15:00",
            "finish it with: bash submit-gif-job --resume -- --time=00:15:00",
        ),
    ],
    ids=["tasks-memory", "assembly-time"],
)
def test_a_job_killed_for_memory_or_time_is_named_with_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queue: str, named: str, command: str
) -> None:
    for name, value in fake_slurm_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FAKE_SQUEUE_OUTPUT", queue)
    paths = ProjectPaths(tmp_path / "project")
    record = new_record(Mode.SLURM, Parameters(3, 1, 640, 480, 25, 400))
    record.submissions.append(Submission("start", record.created, "1-3", 1, [], "12", "13"))
    record.state = RunState.SUBMITTED
    write_record(paths, record)
    shown = io.StringIO()
    assert watch_run(paths, stream=shown, sleep=lambda seconds: None) == 1
    lines = shown.getvalue().splitlines()
    assert lines[-2:] == [named, command]
