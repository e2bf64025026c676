"""The run report: where the time went, task by task.

After the assembly, this step loads every render task's timing file
(``output/timing/``, see :mod:`volcano_gif.task.task_timing`) with pandas, together
with the submission times from ``output/run.json``, and writes:

* ``output/report/tasks.csv``: one row per task (node, queue wait, start-up,
  render seconds, frames; state, exit code, elapsed, CPU time and peak memory,
  with the CPU and memory efficiency ``seff`` would show);
* ``output/report/timeline.png``: one bar per task over wall-clock time,
  start-up and rendering shaded differently, coloured by node, the assembly
  as its own bar; beside it, core-seconds by node and phase (seaborn);
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
from typing import TYPE_CHECKING
from typing import Any

from volcano_gif import slurm
from volcano_gif.files import write_atomically
from volcano_gif.layout import ProjectPaths
from volcano_gif.run.record import AssemblyMemory
from volcano_gif.run.record import RunRecord
from volcano_gif.run.record import read_record
from volcano_gif.task.task_timing import load_run_timings

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

TASKS_CSV = "tasks.csv"
TIMELINE_PNG = "timeline.png"
SUMMARY_TXT = "summary.txt"
#: The timeline picture's size in pixels.
TIMELINE_SIZE = (1200, 600)
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

    tasks: dict[tuple[str, int], slurm.Usage]
    unavailable: str | None  # why there is nothing, if there is nothing


def read_accounting(record: RunRecord) -> Accounting:
    """The run's array tasks from one ``sacct`` call; nothing (and why) where it cannot be had."""
    if not record.mode_is_slurm:
        return Accounting({}, "a local run: no Slurm accounting")
    jobs = record.array_job_ids()
    if not jobs:
        return Accounting({}, "no array job was submitted")
    since = _epoch(record.submitted)
    try:
        usages = slurm.sacct_usage(
            jobs, datetime.fromtimestamp(since).strftime("%Y-%m-%dT%H:%M:%S") if since else None
        )
    except slurm.SlurmError as error:
        return Accounting({}, str(error))
    tasks = {(usage.job_id, usage.task): usage for usage in usages
             if usage.task is not None and usage.state in slurm.ENDED_STATES}  # fmt: skip
    return Accounting(tasks, None if tasks else "sacct lists none of the run's tasks as ended "
                      "yet: `volcano-gif report` again will read them")  # fmt: skip


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
        frames = timing.get("frames") or []
        start = float(timing["process_start"])
        first = float(frames[0][1]) if frames else float(timing.get("ready") or start)
        last = float(frames[-1][2]) if frames else first
        end = float(timing.get("end") or last)
        submit = submitted.get(str(timing.get("job_id"))) or origin
        usage = accounted.get((str(timing.get("job_id")), timing.get("array_task") or 0))
        peak = timing.get("peak_rss_mib")
        measured: tuple[str | None, str | None, float, float | None, int, float | None,
                        float | None]  # fmt: skip
        if usage is None:
            source, sampled = "timing file", None
            measured = (None, None, end - start, timing.get("cpu_s"), timing.get("cpus") or 1,
                        peak, timing.get("mem_requested_mib"))  # fmt: skip
        else:
            # sacct counts whole seconds (the job ran at least as long as its Python process)
            # and samples memory once a second (the process's own high-water mark can be more).
            source, sampled = "sacct", usage.max_rss_mib
            highest = max((mib for mib in (sampled, peak) if mib is not None), default=None)
            measured = (usage.state, usage.exit_code, max(usage.elapsed_s, end - start),
                        usage.cpu_s, usage.cpus, highest, usage.requested_mib)  # fmt: skip
        state, exit_code, elapsed, cpu, cpus, rss, requested = measured
        rows.append({
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
            "state": state,
            "exit_code": exit_code,
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "cpus": cpus,
            "cpu_efficiency": cpu / (elapsed * cpus) if cpu is not None and elapsed else None,
            "maxrss_mib": sampled,
            "peak_rss_mib": rss,
            "mem_requested_mib": requested,
            "mem_efficiency": rss / requested if rss is not None and requested else None,
            "source": source,
        })  # fmt: skip
    table = pd.DataFrame(rows).astype({"cpu_s": float, "cpu_efficiency": float, "maxrss_mib": float,
                                       "peak_rss_mib": float, "mem_requested_mib": float,
                                       "mem_efficiency": float})  # fmt: skip
    return table.sort_values(["start_s", "task"], ignore_index=True)


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


def _mib(value: float | None) -> str:
    return "no limit asked" if value is None or math.isnan(value) else f"{value:.0f} MiB"


def memory_line(table: pd.DataFrame, assembly: AssemblyMemory | None) -> str:
    """Peak memory against what each job asked for (``--mem``), like ``seff``'s line."""
    parts = []
    if "peak_rss_mib" in table and table["peak_rss_mib"].notna().any():
        requested = table["mem_requested_mib"].dropna()
        parts.append(
            f"render tasks peaked at {table['peak_rss_mib'].max():.0f} MiB "
            f"(median {table['peak_rss_mib'].median():.0f}), asked for "
            f"{_mib(float(requested.max()) if len(requested) else None)}"
        )
    if assembly is not None and assembly.peaks_mib:
        largest = max(assembly.peaks_mib, key=lambda name: assembly.peaks_mib[name])
        parts.append(
            f"assembly peaked at {assembly.peaks_mib[largest]:.0f} MiB ({largest}), "
            f"{assembly.together_mib:.0f} MiB if all its processes peaked at once, "
            f"asked for {_mib(assembly.requested_mib)}"
        )
    return "memory: " + ("; ".join(parts) if parts else "not measured")


def efficiency_line(table: pd.DataFrame) -> str:
    """What ``seff`` would say of the render tasks together: CPU and memory efficiency."""
    parts = []
    used = table.dropna(subset=["cpu_s"])
    allocated = float((used["elapsed_s"] * used["cpus"]).sum())
    if allocated > 0:
        parts.append(f"CPU {float(used['cpu_s'].sum()) / allocated:.0%} of "
                     f"{allocated:.1f} core-seconds allocated")  # fmt: skip
    memory = table.dropna(subset=["peak_rss_mib", "mem_requested_mib"])
    if len(memory):
        peak, requested = (
            float(memory["peak_rss_mib"].max()),
            float(memory["mem_requested_mib"].max()),
        )
        parts.append(f"memory {peak / requested:.0%} of the {requested:.0f} MiB asked for, "
                     f"at the largest task's peak ({peak:.0f} MiB)")  # fmt: skip
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
    line = (f"source: sacct for {from_sacct} of {len(table)} tasks ({said}); peak memory: the "
            f"larger of each task's own high-water mark and sacct's MaxRSS (sampled for "
            f"{sampled})")  # fmt: skip
    if (missing := int(sources.get("timing file", 0))) > 0:
        line += f"; {missing} from their timing files only (not in sacct yet)"
    return line


def written_from_sacct_entirely(paths: ProjectPaths) -> bool:
    """True if the report on disk says (in its source line) that sacct gave every task."""
    summary = paths.report / SUMMARY_TXT
    text = summary.read_text() if summary.is_file() else ""
    counts = re.search(r"^source: sacct for (\d+) of (\d+) tasks", text, flags=re.MULTILINE)
    return counts is not None and counts.group(1) == counts.group(2)


def lanes(table: pd.DataFrame) -> list[str]:
    """A lane for each task: tasks on one node that never overlap share a lane.

    So 360 one-frame tasks on 4 cores draw as 4 lanes of 90 bars each: one
    bar per task, with the cores' idle gaps and start-ups in plain sight.
    """
    ends: dict[str, list[float]] = {}
    names = []
    for node, start, end in zip(table["node"], table["start_s"], table["end_s"], strict=True):
        lane_ends = ends.setdefault(node, [])
        free = next((k for k, last in enumerate(lane_ends) if last <= start + 0.05), None)
        if free is None:
            lane_ends.append(end)
            free = len(lane_ends) - 1
        lane_ends[free] = end
        names.append(f"{node} #{free + 1}")
    return names


def draw_timeline(table: pd.DataFrame, record: RunRecord, footer: list[str], target: Path) -> None:
    """The timeline picture: a bar per task in lanes, and core-seconds by node and phase."""
    import pandas as pd
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    nodes = sorted(table["node"].unique())
    palette = dict(zip(nodes, sns.color_palette("colorblind", len(nodes)), strict=True))
    origin = _epoch(record.submitted)
    assembly = (
        (_epoch(record.assembly_started), _epoch(record.ended))
        if origin is not None and record.assembly_started and record.ended
        else None
    )
    lane_of = lanes(table)
    lane_names = sorted(set(lane_of), key=lambda name: (name.split(" #")[0],
                                                          int(name.split(" #")[1])))  # fmt: skip
    row_of = {name: row for row, name in enumerate(lane_names)}
    rows = [row_of[name] for name in lane_of]
    with sns.axes_style("whitegrid"):
        figure = Figure(figsize=(TIMELINE_SIZE[0] / 100, TIMELINE_SIZE[1] / 100), dpi=100)
        FigureCanvasAgg(figure)
        timeline, phases = figure.subplots(1, 2, width_ratios=[3, 1])
        colours = [palette[node] for node in table["node"]]
        start, first, end = (
            table[c].to_numpy(float) for c in ("start_s", "first_frame_s", "end_s")
        )
        # A thin white edge keeps back-to-back tasks apart.
        timeline.barh(rows, first - start, left=start, height=0.8, color=colours, alpha=0.3,
                      edgecolor="white", linewidth=0.3)  # fmt: skip
        timeline.barh(rows, end - first, left=first, height=0.8, color=colours,
                      edgecolor="white", linewidth=0.3)  # fmt: skip
        labels = list(lane_names)
        if assembly is not None and origin is not None:
            began, ended = (value - origin for value in assembly if value is not None)
            timeline.barh(len(lane_names), ended - began, left=began, height=0.8, color="0.3")
            labels.append("assembly")
        timeline.set_yticks(range(len(labels)), labels, fontsize=8)
        timeline.set_ylim(-0.7, len(labels) - 0.3)
        timeline.invert_yaxis()
        timeline.set_xlim(left=0)
        timeline.set_xlabel("seconds since submission")
        frames_per_task = record.parameters.frames_per_task if record.mode_is_slurm else None
        tasks = f"{len(table)} tasks" + (
            f" of {frames_per_task} frame{'s' if frames_per_task > 1 else ''}"
            if frames_per_task else " (local workers)"
        )  # fmt: skip
        timeline.set_title(f"{record.parameters.describe()}: {tasks}", fontsize=11, pad=24)
        handles = [Patch(color=palette[node], label=node) for node in nodes]
        handles += [Patch(color="0.5", alpha=0.3, label="start-up"),
                    Patch(color="0.5", label="rendering")]  # fmt: skip
        timeline.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=6,
                        fontsize=8, frameon=False)  # fmt: skip

        by_phase = pd.concat(
            [
                table.groupby("node")["startup_s"].sum().rename("start-up"),
                table.groupby("node")["render_s"].sum().rename("rendering"),
            ],
            axis=1,
        ).reset_index()
        by_phase = by_phase.melt(id_vars="node", var_name="phase", value_name="seconds")
        sns.barplot(data=by_phase, y="node", x="seconds", hue="phase", ax=phases,
                    palette=["0.75", "0.35"])  # fmt: skip
        phases.set_xlabel("core-seconds")
        phases.set_ylabel("")
        phases.set_title("core time by phase", fontsize=11, pad=24)
        phases.legend(fontsize=8)
        figure.text(0.01, 0.012, f"run {record.run_id}.   " + "\n".join(footer), fontsize=8,
                    color="0.25")  # fmt: skip
        figure.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.2, wspace=0.22)
        write_atomically(target, lambda temporary: figure.savefig(temporary, format="png"))


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
    summary = [*times, efficiency, memory, source_line(table, accounting)]
    paths.report.mkdir(parents=True, exist_ok=True)
    csv = paths.report / TASKS_CSV
    write_atomically(csv, lambda temporary: table.to_csv(temporary, index=False,
                                                         float_format="%.3f"))  # fmt: skip
    timeline = paths.report / TIMELINE_PNG
    draw_timeline(table, record, ["   ".join(times[1:3]), efficiency, memory], timeline)
    text = "\n".join(summary) + "\n"
    write_atomically(paths.report / SUMMARY_TXT, lambda temporary: temporary.write_text(text))
    return Report(csv, timeline, summary, len(table), int((table["source"] == "sacct").sum()))


def write_report_safely(paths: ProjectPaths) -> Report | None:
    """Write the report; if that fails, log a warning that says why, and go on."""
    try:
        report = write_report(paths)
    except Exception as error:  # noqa: BLE001  (a report must never fail the run)
        logger.warning("no run report: %s: %s", type(error).__name__, error)
        return None
    for line in report.summary:
        logger.info("report: %s", line)
    logger.info("report: %s, %s", paths.relative(report.tasks_csv),
                paths.relative(report.timeline_png))  # fmt: skip
    return report
