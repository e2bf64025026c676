"""The run report: where the time went, task by task.

After the assembly, this step loads every render task's timing file
(``output/timing/``, see :mod:`volcano_gif.task_timing`) with pandas, together
with the submission times from ``output/run.json``, and writes:

* ``output/report/tasks.csv``: one row per task (node, queue wait, start-up,
  render seconds, frames);
* ``output/report/timeline.png``: one bar per task over wall-clock time,
  start-up and rendering shaded differently, coloured by node, the assembly
  as its own bar; beside it, core-seconds by node and phase (seaborn);
* ``output/report/summary.txt``: a few lines, also logged: tasks, median
  start-up, median seconds per frame, core-seconds, the share spent starting
  up, and the ``--frames-per-task`` that would bring start-up under 10%.

pandas and seaborn are imported here only: never by a render task. A report
that fails never fails the run: :func:`write_report_safely` logs why instead.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from volcano_gif.files import write_atomically
from volcano_gif.layout import ProjectPaths
from volcano_gif.run_record import RunRecord, read_record
from volcano_gif.task_timing import load_run_timings

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


def _epoch(iso_time: str | None) -> float | None:
    return datetime.fromisoformat(iso_time).timestamp() if iso_time else None


def task_table(record: RunRecord, timings: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per task, times in seconds since the run's first submission."""
    import pandas as pd

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
        })  # fmt: skip
    table = pd.DataFrame(rows)
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
        f"tasks: {len(table)} on {len(nodes)} node(s) "
        f"({', '.join(f'{node} {count}' for node, count in nodes.items())}), "
        f"{frames} frames rendered",
        f"median start-up: {startup:.2f} s per task; median {per_frame:.3f} s per frame",
        f"core-seconds: {core:.1f}, of which start-up {startup_core:.1f} ({share:.0%}) "
        f"and rendering {float(table['render_s'].sum()):.1f}",
    ]
    if rendering.empty or not per_frame > 0:
        lines.append("no task rendered a frame (all were complete already): nothing to measure")
        return lines
    needed = math.ceil((1 - STARTUP_TARGET) / STARTUP_TARGET * startup / per_frame)
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


def draw_timeline(table: pd.DataFrame, record: RunRecord, summary: list[str], target: Path) -> None:
    """The timeline picture: a bar per task, and core-seconds by node and phase."""
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
    with sns.axes_style("whitegrid"):
        figure = Figure(figsize=(TIMELINE_SIZE[0] / 100, TIMELINE_SIZE[1] / 100), dpi=100)
        FigureCanvasAgg(figure)
        timeline, phases = figure.subplots(1, 2, width_ratios=[3, 1])
        height = 0.9 if len(table) < 60 else 1.0
        rows = list(range(len(table)))
        colours = [palette[node] for node in table["node"]]
        start, first, end = (
            table[c].to_numpy(float) for c in ("start_s", "first_frame_s", "end_s")
        )
        timeline.barh(rows, first - start, left=start, height=height, color=colours, alpha=0.35,
                      linewidth=0)  # fmt: skip
        timeline.barh(rows, end - first, left=first, height=height, color=colours, linewidth=0)
        if assembly is not None and origin is not None:
            began, ended = (value - origin for value in assembly if value is not None)
            timeline.barh(len(table) + 1, ended - began, left=began, height=height, color="0.3")
            timeline.text(began, len(table) + 1.6, " assembly", va="bottom", fontsize=9)
        timeline.set_ylim(-1, len(table) + 4)
        timeline.set_yticks([])
        timeline.set_xlabel("seconds since submission")
        timeline.set_ylabel(f"{len(table)} render tasks, by start time")
        timeline.set_title(f"run {record.run_id}: {record.parameters.describe()}", fontsize=11)
        handles = [Patch(color=palette[node], label=node) for node in nodes]
        handles += [Patch(color="0.5", alpha=0.35, label="start-up"),
                    Patch(color="0.5", label="rendering")]  # fmt: skip
        timeline.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.9)

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
        phases.set_title("core time by phase", fontsize=11)
        phases.legend(fontsize=8)
        figure.text(0.01, 0.01, "   ".join(summary[1:3]), fontsize=8, color="0.25")
        figure.subplots_adjust(left=0.05, right=0.98, top=0.92, bottom=0.16, wspace=0.25)
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
    table = task_table(record, timings)
    summary = summary_lines(table, record.mode_is_slurm)
    paths.report.mkdir(parents=True, exist_ok=True)
    csv = paths.report / TASKS_CSV
    write_atomically(csv, lambda temporary: table.to_csv(temporary, index=False,
                                                         float_format="%.3f"))  # fmt: skip
    timeline = paths.report / TIMELINE_PNG
    draw_timeline(table, record, summary, timeline)
    text = "\n".join(summary) + "\n"
    write_atomically(paths.report / SUMMARY_TXT, lambda temporary: temporary.write_text(text))
    return Report(csv, timeline, summary)


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
