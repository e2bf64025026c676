"""The run report: the table, the summary, the timeline picture.

From task timing files, and from sacct where the cluster keeps accounting (a
fake sacct here, for its output's forms and its failures; the real one in
tests/test_accounting.py).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from tests.fakes import fake_slurm_env, slurm_calls
from tests.helpers import run
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import new_record, write_record
from volcano_gif.run.record import AssemblyMemory, Mode, Parameters, Submission
from volcano_gif.run.report import summary_lines, write_report, write_report_safely
from volcano_gif.run.timeline import TIMELINE_SIZE

T0 = datetime(2026, 11, 21, 10, 0, 0).astimezone()


@pytest.fixture(autouse=True)
def fake_sacct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake Slurm programs first on PATH: sacct answers $FAKE_SACCT_OUTPUT, if set."""
    env = fake_slurm_env(tmp_path / "fakes")
    for name in ("PATH", "FAKE_SLURM_LOG"):
        monkeypatch.setenv(name, env[name])
    return Path(env["FAKE_SLURM_LOG"])


def _timing(job: str, task: int, node: str, start: float, frames: int) -> dict[str, object]:
    """A task that starts ``start`` s after T0, takes 1 s to start and 0.1 s per frame."""
    origin = T0.timestamp() + start
    rendered = [
        [task * 100 + k, origin + 1 + 0.1 * k, origin + 1.1 + 0.1 * k] for k in range(frames)
    ]
    return {
        "task": f"slurm-{job}_{task}",
        "kind": "slurm",
        "node": node,
        "pid": 100 + task,
        "process_start": origin,
        "job_id": job,
        "array_task": task,
        "run_id": None,
        "imports_done": origin + 0.8,
        "ready": origin + 0.95,
        "frames": rendered,
        "skipped": [],
        "end": origin + 1.05 + 0.1 * frames,
        "peak_rss_mib": 70.0 + task,
        "mem_requested_mib": 256.0,
        "cpu_s": 1.0,
        "cpus": 1,
    }


def _run(tmp_path: Path, tasks: int = 6, frames_per_task: int = 2) -> ProjectPaths:
    paths = ProjectPaths(tmp_path)
    record = new_record(
        Mode.SLURM, Parameters(tasks * frames_per_task, frames_per_task, 640, 480, 25, 400)
    )
    record.submitted = T0.isoformat()
    record.submissions.append(
        Submission("start", T0.isoformat(), f"1-{tasks}", frames_per_task, [], "55", "56")
    )
    record.assembly_started = datetime.fromtimestamp(T0.timestamp() + 9).astimezone().isoformat()
    record.ended = datetime.fromtimestamp(T0.timestamp() + 11).astimezone().isoformat()
    record.assembly_memory = AssemblyMemory(
        {"python": 120.0, "ffmpeg mp4": 80.0, "ffmpeg palette": 70.0, "ffmpeg gif": 75.0}, 1024.0
    )
    write_record(paths, record)
    paths.timing.mkdir(parents=True)
    for task in range(1, tasks + 1):
        timing = _timing("55", task, "n1" if task % 2 else "n2", 0.5 * task, frames_per_task)
        (paths.timing / f"slurm-55_{task}.json").write_text(json.dumps(timing))
    # Another run's task in the same folder is left out.
    (paths.timing / "slurm-54_1.json").write_text(json.dumps(_timing("54", 1, "n1", 0, 1)))
    return paths


def test_tasks_csv_has_one_row_per_task_and_its_numbers_add_up(tmp_path: Path) -> None:
    paths = _run(tmp_path)
    report = write_report(paths)
    table = pd.read_csv(report.tasks_csv)
    assert list(table["task"]) == [f"slurm-55_{k}" for k in range(1, 7)]
    assert set(table["node"]) == {"n1", "n2"}
    assert list(table["frames"]) == [2] * 6
    assert table["queue_wait_s"].tolist() == pytest.approx([0.5 * k for k in range(1, 7)])
    assert table["startup_s"].tolist() == pytest.approx([1.0] * 6)
    assert table["render_s"].tolist() == pytest.approx([0.2] * 6)
    # start-up and rendering fit inside each task's wall time.
    assert (table["startup_s"] + table["render_s"] <= table["wall_s"] + 1e-3).all()
    assert table["peak_rss_mib"].tolist() == [71.0, 72.0, 73.0, 74.0, 75.0, 76.0]
    assert table["mem_requested_mib"].tolist() == [256.0] * 6


def test_summary_shows_each_jobs_peak_memory_next_to_what_it_asked_for(tmp_path: Path) -> None:
    report = write_report(_run(tmp_path))
    assert report.summary[-3:] == [
        "efficiency: CPU 80% of 7.5 core-seconds allocated; "
        "memory 30% of the 256 MiB asked for, at the largest task's peak (76 MiB)",
        "memory: render tasks peaked at 76 MiB (median 74), asked for 256 MiB; "
        "assembly peaked at 120 MiB (python), 345 MiB if all its processes peaked at once, "
        "asked for 1024 MiB",
        "source: the task timing files (sacct: Slurm accounting storage is disabled)",
    ]
    assert (report.tasks_csv.parent / "summary.txt").read_text().splitlines()[-3:] == (
        report.summary[-3:]
    )


def _sacct_lines(task: int, state: str = "COMPLETED", rss: str = "81920K") -> list[str]:
    """sacct's lines for task ``task`` of array 55: the allocation, its batch and extern steps."""
    return [
        f"55_{task}|{state}|0:0|4|00:02.500|2||256M|n1|00:05:00",
        f"55_{task}.batch|{state}|0:0|4|00:02.500|2|{rss}|256M|n1|",
        f"55_{task}.extern|COMPLETED|0:0|4|00:00:00|2|102400K|256M|n1|",
    ]


def test_with_accounting_the_report_takes_state_cpu_and_memory_from_one_sacct_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_sacct: Path
) -> None:
    lines = [
        *_sacct_lines(1),
        *_sacct_lines(2, "FAILED"),
        *_sacct_lines(3, rss="0"),
        *_sacct_lines(4, rss="70M"),
        *_sacct_lines(5),
        "55_[6]|PENDING|0:0|0|00:00:00|1||256M|None|00:05:00",
    ]
    monkeypatch.setenv("FAKE_SACCT_OUTPUT", ";".join(lines))
    report = write_report(_run(tmp_path))
    (call,) = slurm_calls(fake_sacct, "sacct")
    assert call["args"] == [
        "--noheader",
        "--parsable2",
        "--starttime",
        T0.strftime("%Y-%m-%dT%H:%M:%S"),
        "--jobs",
        "55",
        "--format",
        "JobID,State,ExitCode,ElapsedRaw,TotalCPU,AllocCPUS,MaxRSS,ReqMem,NodeList,Timelimit",
    ]
    table = pd.read_csv(report.tasks_csv)
    assert table["source"].tolist() == ["sacct"] * 5 + ["timing file"]
    assert table["state"].fillna("").tolist() == [
        "COMPLETED",
        "FAILED",
        "COMPLETED",
        "COMPLETED",
        "COMPLETED",
        "",
    ]
    # MaxRSS of the batch step (never the extern step's), where sampled: 80 MiB, 70 MiB...
    assert table["maxrss_mib"].fillna(0).tolist() == [80.0, 80.0, 0, 70.0, 80.0, 0]
    # ... and the peak: the larger of that and the task's own high-water mark (70 + task).
    assert table["peak_rss_mib"].tolist() == [80.0, 80.0, 73.0, 74.0, 80.0, 76.0]
    # 2.5 s of CPU in 4 s on 2 CPUs: 31%, as seff would say; the timing file's task: 1 s in 1.25.
    assert table["cpu_efficiency"].tolist() == pytest.approx([0.3125] * 5 + [0.8], abs=1e-3)
    assert table["mem_efficiency"].tolist() == pytest.approx(
        [mib / 256 for mib in (80.0, 80.0, 73.0, 74.0, 80.0, 76.0)], abs=1e-3
    )
    assert report.summary[-3] == (
        "efficiency: CPU 33% of 41.2 core-seconds allocated; "
        "memory 31% of the 256 MiB asked for, at the largest task's peak (80 MiB)"
    )
    assert report.summary[-1] == (
        "source: sacct for 5 of 6 tasks (4 COMPLETED, 1 FAILED); peak memory: the larger of "
        "each task's own high-water mark and sacct's MaxRSS (sampled for 4); 1 from their "
        "timing files only (not in sacct yet)"
    )


@pytest.mark.parametrize(
    ("sacct", "said"),
    [
        (None, "sacct not found on PATH"),
        (
            "sacct: error: Problem talking to the database: Connection refused",
            "sacct: error: Problem talking to the database: Connection refused",
        ),
    ],
)
def test_without_sacct_or_its_database_the_report_uses_the_timing_files_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sacct: str | None, said: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if sacct is not None:  # slurmdbd down: sacct fails with its last line
        (bin_dir / "sacct").write_text(
            f"#!/bin/sh\necho 'sacct: error: slurmdbd: "
            f"connect refused' >&2\necho '{sacct}' >&2\nexit 1\n"
        )
        (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    report = write_report(_run(tmp_path))
    assert report.summary[-1] == f"source: the task timing files ({said})"
    assert set(pd.read_csv(report.tasks_csv)["source"]) == {"timing file"}


def test_summary_says_where_the_time_went_and_what_to_change() -> None:
    rows = [{"node": "n1", "frames": 1, "startup_s": 0.9, "render_s": 0.07, "wall_s": 1.0}] * 200
    table = pd.DataFrame(rows)
    assert summary_lines(table) == [
        "tasks: 200 on 1 node(s), 200 frames rendered",
        "median start-up: 0.90 s per task; median 0.070 s per frame",
        "core-seconds: 200.0, of which start-up 180.0 (90%) and rendering 14.0",
        "start-up is 90% of the work; to bring it under 10% on this cluster, "
        "use --frames-per-task 116 or more (now 1)",
    ]
    # Never more frames per task than the run has frames.
    assert summary_lines(table.head(4))[-1].endswith("use --frames-per-task 4 or more (now 1)")
    big = pd.DataFrame([{**rows[0], "frames": 180, "render_s": 12.6, "wall_s": 13.6}] * 2)
    assert summary_lines(big)[-1] == "start-up is 7% of the work: about 10% or less already"
    assert summary_lines(big, slurm=False)[-1] == (
        "start-up is 7% of the work: each local worker starts once"
    )


def test_timeline_decodes_at_its_size(tmp_path: Path) -> None:
    report = write_report(_run(tmp_path, tasks=40, frames_per_task=1))
    with Image.open(report.timeline_png) as image:
        image.load()
        assert image.size == TIMELINE_SIZE


@pytest.mark.parametrize("nodes", [["vm"], ["n1", "n2"]], ids=["local", "two nodes"])
def test_every_swatch_of_the_timeline_s_legend_is_the_colour_of_its_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nodes: list[str]
) -> None:
    from matplotlib.figure import Figure

    from volcano_gif.run import timeline

    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *_, **__: drawn.append(figure))
    monkeypatch.setattr(timeline, "write_atomically", lambda target, write: write(target))
    table = pd.DataFrame(
        {
            "node": [nodes[k % len(nodes)] for k in range(4)],
            "start_s": [0.0, 0.0, 1.0, 1.0],
            "first_frame_s": [0.4, 0.4, 1.4, 1.4],
            "end_s": [1.0, 1.0, 2.0, 2.0],
            "startup_s": [0.4] * 4,
            "render_s": [0.6] * 4,
        }
    )
    timeline.draw_timeline(table, "a run", (2.0, 3.0), "", tmp_path / "timeline.png")
    axes = drawn[0].axes[0]

    def colour(patch: Any) -> tuple[float, ...]:
        return tuple(round(float(value), 3) for value in patch.get_facecolor())

    bars = {colour(patch) for patch in axes.patches}
    legend = axes.get_legend()
    assert legend is not None
    swatches = {
        text.get_text(): colour(handle)
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True)
    }
    phases = ["start-up", "rendering"]
    named = (
        phases if len(nodes) == 1 else [f"{node}: {phase}" for node in nodes for phase in phases]
    )
    assert list(swatches) == named
    assert set(swatches.values()) <= bars


def test_a_broken_task_file_gives_a_warning_and_a_report_of_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _run(tmp_path)
    broken = paths.timing / "slurm-55_3.json"
    broken.write_text('{"task": "slurm-55_3", "process_')
    report = write_report_safely(paths)
    assert report is not None
    assert len(pd.read_csv(report.tasks_csv)) == 5
    assert f"report: {broken}: not a task timing record" in caplog.text


def test_a_failing_report_never_fails_the_assembly(
    rendered_project: ProjectPaths,
) -> None:
    paths = rendered_project
    record = new_record(Mode.LOCAL, Parameters(12, 1, 640, 480, 25, 400))
    write_record(paths, record)
    # No timing files at all, and output/report is a file: no report can be made.
    paths.output.mkdir(exist_ok=True)
    (paths.output / "report").write_text("in the way")
    result = run(
        [sys.executable, "-m", "volcano_gif", "assemble", "--frames", "12"], cwd=paths.root
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING volcano_gif.run.report: no run report: RuntimeError: no task timing files" in (
        result.stderr
    )
    assert (paths.root / "output/gifs/volcano.gif").is_file()


def test_lanes_put_tasks_that_never_overlap_on_one_node_in_one_lane() -> None:
    from volcano_gif.run.timeline import lanes

    table = pd.DataFrame(
        {
            "node": ["n1", "n1", "n2", "n1", "n1"],
            "start_s": [0.0, 0.1, 0.0, 1.0, 1.2],
            "end_s": [1.0, 1.1, 2.0, 2.0, 2.1],
        }
    )
    assert lanes(table) == ["n1 #1", "n1 #2", "n2 #1", "n1 #1", "n1 #2"]


def test_a_run_that_asked_for_no_memory_limit_says_so_once() -> None:
    from volcano_gif.run.report import memory_line

    # A local run: no task and no assembly had a --mem.
    table = pd.DataFrame({"peak_rss_mib": [70.0, 72.0], "mem_requested_mib": [None, None]})
    line = memory_line(table.astype(float), AssemblyMemory({"python": 120.0}, None))
    assert line == (
        "memory: render tasks peaked at 72 MiB (median 71), no limit asked; "
        "assembly peaked at 120 MiB (python), 120 MiB if all its processes peaked at once, "
        "no limit asked"
    )


def test_the_report_counts_this_runs_tasks_only_where_job_ids_repeat(tmp_path: Path) -> None:
    paths = _run(tmp_path)
    run_id = json.loads(paths.run_record.read_text())["run_id"]
    for task in range(1, 7):
        timing = _timing("55", task, "n1", 0.5 * task, 2) | {"run_id": run_id}
        (paths.timing / f"slurm-55_{task}.json").write_text(json.dumps(timing))
    # An earlier run in this folder, on a cluster whose job ids started again: array 55 too.
    earlier = _timing("55", 7, "n1", 0, 2) | {"run_id": "20261101T090000-0001"}
    (paths.timing / "slurm-55_7.json").write_text(json.dumps(earlier))
    report = write_report(paths)
    assert report.tasks == 6
    assert report.summary[0] == "tasks: 6 on 1 node(s), 12 frames rendered"


def test_tasks_killed_or_over_their_memory_are_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _run(tmp_path)
    for task in range(1, 7):  # these tasks asked for 72 MiB; 4 of them peaked above it
        timing = _timing("55", task, "n1", 0.5 * task, 2) | {"mem_requested_mib": 72.0}
        (paths.timing / f"slurm-55_{task}.json").write_text(json.dumps(timing))
    # Task 7 was killed for memory: it wrote no timing file, but sacct knows it.
    killed = "55_7|OUT_OF_MEMORY|0:125|2|00:01.000|1||72M|n2|00:05:00"
    monkeypatch.setenv("FAKE_SACCT_OUTPUT", killed)
    report = write_report(paths)
    assert report.summary[-4:-1] == [
        "memory: render tasks peaked at 76 MiB (median 74), asked for 72 MiB; assembly peaked at "
        "120 MiB (python), 345 MiB if all its processes peaked at once, asked for 1024 MiB",
        "killed: array task 7 of job 55 ran out of memory (OUT_OF_MEMORY): it asked for 72 MiB "
        "(--mem); ask for more with --mem=256M",
        "warning: 4 render tasks peaked above the 72 MiB asked for (at most 76 MiB): where "
        "cgroups enforce --mem such a task is killed; ask for more with --mem=256M",
    ]
