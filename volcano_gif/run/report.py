"""The run report: where the time went, task by task.

After the assembly, this step loads every render task's timing file
(``output/timing/``, see :mod:`volcano_gif.task.task_timing`) with pandas, together
with the submission times from ``output/run.json``, and writes:

* ``output/report/tasks.csv``: one row per task (node, queue wait, start-up,
  render seconds, frames; state, exit code, elapsed, CPU time and peak memory,
  with the CPU and memory efficiency ``seff`` would show);
* ``output/report/timeline.png``: the tasks over wall-clock time, and core-seconds
  by node and phase (:mod:`volcano_gif.run.timeline`);
* ``output/report/summary.txt``: a few lines, also logged: tasks, median
  start-up, median seconds per frame, core-seconds, the share spent starting
  up, the ``--frames-per-task`` that would bring start-up under 10%, and the
  peak memory of the render tasks and of the assembly against what each job
  asked for (``--mem``), the efficiency line, and where the figures came from.

On Slurm, state, exit code, elapsed, CPU time and peak memory come from one
``sacct`` call when the cluster keeps accounting, so the report also works for
a run whose jobs left ``squeue`` long ago. Where sacct is missing or fails
(no slurmdbd, or it is down), or lacks a task, the task timing files stand in;
a task's peak memory is the larger of sacct's sampled MaxRSS and its own
high-water mark. The summary's ``source:`` line says which was used.

pandas and seaborn are imported here only: never by a render task. A report
that fails never fails the run: :func:`write_report_safely` logs why instead.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from volcano_gif import sacct, slurm
from volcano_gif.files import write_atomically
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.failures import kills, over_asked_line
from volcano_gif.run.lifecycle import Stopped, read_record, stop_on_signals
from volcano_gif.run.record import AssemblyMemory, RunRecord
from volcano_gif.run.timeline import draw_timeline
from volcano_gif.task.task_timing import load_run_timings

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

TASKS_CSV = "tasks.csv"
TIMELINE_PNG = "timeline.png"
SUMMARY_TXT = "summary.txt"
#: Start-up should stay under this share of a task's work.
STARTUP_TARGET = 0.10


@dataclass(frozen=True)
class Report:
    tasks_csv: Path
    timeline_png: Path
    summary: list[str]
    tasks: int = 0
    from_sacct: int = 0  # tasks whose state, CPU time and memory sacct gave

    @property
    def sacct_has_every_task(self) -> bool:
        return self.from_sacct == self.tasks


def _epoch(iso_time: str | None) -> float | None:
    return datetime.fromisoformat(iso_time).timestamp() if iso_time else None


@dataclass(frozen=True)
class Accounting:
    """What sacct said of a run's array tasks, and the report's ``source:`` line."""

    tasks: dict[tuple[str, int], sacct.Usage]
    unavailable: str | None  # why there is nothing, if there is nothing


def read_accounting(record: RunRecord) -> Accounting:
    """The run's array tasks from one ``sacct`` call; nothing (and why) where it cannot be had."""
    if not record.mode_is_slurm:
        return Accounting({}, "a local run: no Slurm accounting")
    jobs = record.array_job_ids()
    if not jobs:
        return Accounting({}, "no array job was submitted")
    when = record.submitted
    since = f"{datetime.fromisoformat(when).astimezone():%Y-%m-%dT%H:%M:%S}" if when else None
    try:
        usages = sacct.sacct_usage(jobs, since)
    except slurm.SlurmError as error:
        return Accounting({}, str(error))
    tasks = {
        (usage.line.job_id, usage.line.task): usage
        for usage in usages
        if usage.line.task is not None and usage.line.state in slurm.ENDED_STATES
    }
    why = "sacct lists none of the run's tasks as ended yet"
    return Accounting(tasks, None if tasks else f"{why}: `volcano-gif report` again will read them")


#: The columns that may be empty (None) and are floats where they are not.
_FLOAT_COLUMNS = "cpu_s cpu_efficiency maxrss_mib peak_rss_mib mem_requested_mib mem_efficiency"


def _measured(timing: dict[str, Any], wall: float, usage: sacct.Usage | None) -> dict[str, Any]:
    """A task's columns from ``state`` to ``source``: from sacct, or from its timing file."""
    peak, requested = timing.get("peak_rss_mib"), timing.get("mem_requested_mib")
    elapsed, cpu, cpus, source = wall, timing.get("cpu_s"), timing.get("cpus") or 1, "timing file"
    state: str | None = None
    exit_code: str | None = None
    sampled: float | None = None
    if usage is not None:
        # sacct counts whole seconds (the job ran at least as long as its Python process)
        # and samples memory once a second (the process's own high-water mark can be more).
        state, exit_code, source = usage.line.state, usage.exit_code, "sacct"
        elapsed, cpu, cpus = max(usage.elapsed_s, wall), usage.cpu_s, usage.cpus
        sampled, requested = usage.max_rss_mib, usage.requested_mib
        peak = max((mib for mib in (sampled, peak) if mib is not None), default=None)
    return {
        "state": state,
        "exit_code": exit_code,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "cpus": cpus,
        "cpu_efficiency": cpu / (elapsed * cpus) if cpu is not None and elapsed else None,
        "maxrss_mib": sampled,
        "peak_rss_mib": peak,
        "mem_requested_mib": requested,
        "mem_efficiency": peak / requested if peak is not None and requested else None,
        "source": source,
    }


def task_table(
    record: RunRecord, timings: list[dict[str, Any]], accounting: Accounting | None = None
) -> pd.DataFrame:
    """One row per task, times in seconds since the run's first submission.

    State, elapsed, CPU time and memory from accounting where it has them, else
    from the task's timing file: the ``source`` column says which.
    """
    import pandas as pd

    accounted = accounting.tasks if accounting else {}
    submitted = {s.array_job_id: _epoch(s.time) for s in record.submissions if s.array_job_id}
    origin = _epoch(record.submitted) or min(float(t["process_start"]) for t in timings)
    rows = []
    for timing in timings:
        job = str(timing.get("job_id"))
        usage = accounted.get((job, timing.get("array_task") or 0))
        rows.append(_task_row(timing, origin, submitted.get(job) or origin, usage))
    table = pd.DataFrame(rows).astype(dict.fromkeys(_FLOAT_COLUMNS.split(), float))
    return table.sort_values(["start_s", "task"], ignore_index=True)


def _task_row(
    timing: dict[str, Any], origin: float, submit: float, usage: sacct.Usage | None
) -> dict[str, Any]:
    """A task's row of the table, from its timing file and what sacct said of it."""
    frames = timing.get("frames") or []
    start = float(timing["process_start"])
    first = float(frames[0][1]) if frames else float(timing.get("ready") or start)
    last = float(frames[-1][2]) if frames else first
    end = float(timing.get("end") or last)
    return {
        "task": timing["task"],
        "node": timing["node"],
        "array_task": timing.get("array_task"),
        "frames": len(frames),
        "skipped": len(timing.get("skipped") or []),
        "queue_wait_s": max(0.0, start - submit),
        "startup_s": first - start,
        "render_s": sum(float(f[2]) - float(f[1]) for f in frames),
        "wall_s": end - start,
        "start_s": start - origin,
        "first_frame_s": first - origin,
        "end_s": end - origin,
        **_measured(timing, end - start, usage),
    }


def summary_lines(table: pd.DataFrame, slurm: bool = True) -> list[str]:
    """The report's few lines of plain text; on Slurm, the frames per task to use."""
    nodes = table.groupby("node").size()
    frames = int(table["frames"].sum())
    rendering = table[table["frames"] > 0]
    per_frame = float((rendering["render_s"] / rendering["frames"]).median())
    startup = float(table["startup_s"].median())
    core = float(table["wall_s"].sum())
    startup_core = float(table["startup_s"].sum())
    share = startup_core / core if core > 0 else 0.0
    lines = [
        f"tasks: {len(table)} on {len(nodes)} node(s), {frames} frames rendered",
        f"median start-up: {startup:.2f} s per task; median {per_frame:.3f} s per frame",
        f"core-seconds: {core:.1f}, of which start-up {startup_core:.1f} ({share:.0%}) "
        f"and rendering {float(table['render_s'].sum()):.1f}",
    ]
    if rendering.empty or not per_frame > 0:
        lines.append("no task rendered a frame (all were complete already): nothing to measure")
        return lines
    needed = min(math.ceil((1 - STARTUP_TARGET) / STARTUP_TARGET * startup / per_frame), frames)
    per_task = frames / len(table)
    if not slurm:
        lines.append(f"start-up is {share:.0%} of the work: each local worker starts once")
    elif share <= STARTUP_TARGET or needed <= per_task:
        lines.append(f"start-up is {share:.0%} of the work: about 10% or less already")
    else:
        lines.append(
            f"start-up is {share:.0%} of the work; to bring it under 10% on this cluster, "
            f"use --frames-per-task {needed} or more (now {per_task:.0f})"
        )
    return lines


def _asked(value: float | None) -> str:
    """``asked for 256 MiB``, or ``no limit asked`` (a local run, a job without --mem)."""
    return "no limit asked" if value is None or math.isnan(value) else f"asked for {value:.0f} MiB"


def _most_asked(table: pd.DataFrame) -> float | None:
    """The most memory a render task asked for, in MiB; None if none asked."""
    asked = table["mem_requested_mib"].dropna()
    return float(asked.max()) if len(asked) else None


def memory_line(table: pd.DataFrame, assembly: AssemblyMemory | None) -> str:
    """Peak memory against what each job asked for (``--mem``), like ``seff``'s line."""
    parts = []
    if "peak_rss_mib" in table and table["peak_rss_mib"].notna().any():
        parts.append(
            f"render tasks peaked at {table['peak_rss_mib'].max():.0f} MiB "
            f"(median {table['peak_rss_mib'].median():.0f}), {_asked(_most_asked(table))}"
        )
    if assembly is not None and assembly.peaks_mib:
        largest = max(assembly.peaks_mib, key=lambda name: assembly.peaks_mib[name])
        parts.append(
            f"assembly peaked at {assembly.peaks_mib[largest]:.0f} MiB ({largest}), "
            f"{assembly.together_mib:.0f} MiB if all its processes peaked at once, "
            f"{_asked(assembly.requested_mib)}"
        )
    return "memory: " + ("; ".join(parts) if parts else "not measured")


def warning_lines(table: pd.DataFrame, accounting: Accounting) -> list[str]:
    """Tasks that Slurm ended for want of memory or time (sacct), with the option that
    asks for enough; tasks that peaked above the memory they asked for."""
    killed = [usage.line for usage in accounting.tasks.values()]
    lines = [f"killed: {kill.line()}" for kill in kills(killed)]
    over = over_asked_line(table["peak_rss_mib"].dropna(), _most_asked(table))
    return [*lines, *([over] if over else [])]


def efficiency_line(table: pd.DataFrame) -> str:
    """What ``seff`` would say of the render tasks together: CPU and memory efficiency."""
    parts = []
    used = table.dropna(subset=["cpu_s"])
    allocated = float((used["elapsed_s"] * used["cpus"]).sum())
    if allocated > 0:
        parts.append(
            f"CPU {float(used['cpu_s'].sum()) / allocated:.0%} of "
            f"{allocated:.1f} core-seconds allocated"
        )
    memory = table.dropna(subset=["peak_rss_mib", "mem_requested_mib"])
    if len(memory):
        peak = float(memory["peak_rss_mib"].max())
        requested = float(memory["mem_requested_mib"].max())
        parts.append(
            f"memory {peak / requested:.0%} of the {requested:.0f} MiB asked for, "
            f"at the largest task's peak ({peak:.0f} MiB)"
        )
    return "efficiency: " + ("; ".join(parts) if parts else "not measured")


def source_line(table: pd.DataFrame, accounting: Accounting) -> str:
    """Where the table's state, CPU and memory figures came from."""
    sources = table["source"].value_counts()
    from_sacct = len(table) - int(sources.get("timing file", 0))
    if from_sacct == 0:
        return f"source: the task timing files ({accounting.unavailable or 'no sacct record'})"
    states = table.loc[table["source"] != "timing file", "state"].value_counts()
    said = ", ".join(f"{count} {state}" for state, count in states.items())
    sampled = int(table["maxrss_mib"].notna().sum())
    line = (
        f"source: sacct for {from_sacct} of {len(table)} tasks ({said}); peak memory: the "
        f"larger of each task's own high-water mark and sacct's MaxRSS (sampled for "
        f"{sampled})"
    )
    if (missing := int(sources.get("timing file", 0))) > 0:
        line += f"; {missing} from their timing files only (not in sacct yet)"
    return line


def written_from_sacct_entirely(paths: ProjectPaths) -> bool:
    """True if the report on disk says (in its source line) that sacct gave every task."""
    summary = paths.report / SUMMARY_TXT
    text = summary.read_text() if summary.is_file() else ""
    counts = re.search(r"^source: sacct for (\d+) of (\d+) tasks", text, flags=re.MULTILINE)
    return counts is not None and counts.group(1) == counts.group(2)


def _assembly_span(record: RunRecord) -> tuple[float, float] | None:
    """When the assembly began and ended, in seconds since the run's first submission."""
    origin, began, ended = (
        _epoch(when) for when in (record.submitted, record.assembly_started, record.ended)
    )
    if origin is None or began is None or ended is None:
        return None
    return began - origin, ended - origin


def _timeline_title(record: RunRecord, tasks: int) -> str:
    per_task = record.parameters.frames_per_task
    what = (
        f" of {per_task} frame{'s' * (per_task > 1)}"
        if record.mode_is_slurm
        else " (local workers)"
    )
    return f"{record.parameters.describe()}: {tasks} tasks{what}"


def write_report(paths: ProjectPaths) -> Report:
    """Write tasks.csv, timeline.png and summary.txt for the run in output/run.json."""
    record = read_record(paths)
    if record is None:
        raise RuntimeError("no run record (output/run.json): nothing to report on")
    timings, problems = load_run_timings(paths.timing, record.array_job_ids(), record.run_id)
    for problem in problems:
        logger.warning("report: %s", problem)
    if not timings:
        raise RuntimeError(f"no task timing files of run {record.run_id} in {paths.timing}")
    accounting = read_accounting(record)
    table = task_table(record, timings, accounting)
    times = summary_lines(table, record.mode_is_slurm)
    efficiency, memory = efficiency_line(table), memory_line(table, record.assembly_memory)
    warnings = warning_lines(table, accounting)
    summary = [*times, efficiency, memory, *warnings, source_line(table, accounting)]
    paths.report.mkdir(parents=True, exist_ok=True)
    csv = paths.report / TASKS_CSV
    write_atomically(
        csv, lambda temporary: table.to_csv(temporary, index=False, float_format="%.3f")
    )
    timeline = paths.report / TIMELINE_PNG
    footer = "\n".join(["   ".join(times[1:3]), efficiency, memory])
    title = _timeline_title(record, len(table))
    draw_timeline(
        table, title, _assembly_span(record), f"run {record.run_id}.   {footer}", timeline
    )
    text = "\n".join(summary) + "\n"
    write_atomically(paths.report / SUMMARY_TXT, lambda temporary: temporary.write_text(text))
    return Report(csv, timeline, summary, len(table), int((table["source"] == "sacct").sum()))


def write_report_safely(paths: ProjectPaths) -> Report | None:
    """Write the report; if that fails, or SIGTERM or Ctrl-C stops it, log a warning that
    says why, and go on: the run has its outcome (``volcano-gif report`` writes it later)."""
    try:
        with stop_on_signals():
            report = write_report(paths)
    except Stopped as stop:
        logger.warning("no run report: %s; volcano-gif report writes it", stop.line())
        return None
    except Exception as error:  # noqa: BLE001  (a report must never fail the run)
        logger.warning("no run report: %s: %s", type(error).__name__, error)
        return None
    for line in report.summary:
        logger.info("report: %s", line)
    logger.info(
        "report: %s, %s", paths.relative(report.tasks_csv), paths.relative(report.timeline_png)
    )
    return report
