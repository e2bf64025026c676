"""Slurm's accounting, read with ``sacct``: job states, and what ``seff`` reports.

These calls go to slurmdbd, not to the controller. Rows are read by field
name (:func:`volcano_gif.slurm.parsable_rows`), never by position.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from volcano_gif.commands import CommandError, last_line, run_capturing
from volcano_gif.slurm import JobLine, SlurmError, call, memory_mib, parsable_rows

#: What the report asks ``sacct`` for: what ``seff`` reads, the node and the time limit.
SACCT_USAGE_FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "ElapsedRaw",
    "TotalCPU",
    "AllocCPUS",
    "MaxRSS",
    "ReqMem",
    "NodeList",
    "Timelimit",
)


def _command(job_ids: list[str], fields: tuple[str, ...], *options: str) -> list[str]:
    """The ``sacct`` command for ``job_ids``, one ``--parsable2`` line each, ``fields``."""
    jobs, columns = ",".join(job_ids), ",".join(fields)
    return ["sacct", "--noheader", "--parsable2", *options, "--jobs", jobs, "--format", columns]


def sacct_states(job_ids: list[str]) -> list[JobLine]:
    """Job and array task states from accounting (one ``sacct`` call)."""
    fields = ("JobID", "State", "ReqMem", "Timelimit")
    output = call(_command(job_ids, fields, "--allocations"))
    lines = []
    for row in parsable_rows(output, fields):
        base, task = _job_and_task(row["JobID"])
        lines.append(JobLine(base, task, _state(row), "None", row["ReqMem"], row["Timelimit"]))
    return lines


def _job_and_task(sacct_job_id: str) -> tuple[str, int | None]:
    """``12_3`` is task 3 of array 12; ``12`` and ``12_[4-9]`` (not started) have no task."""
    base, _, task = sacct_job_id.partition("_")
    return base, int(task) if task.isdigit() else None


def _state(row: dict[str, str]) -> str:
    """``CANCELLED by 0`` is CANCELLED."""
    return (row["State"].split() or [""])[0]


def seconds(text: str) -> float:
    """Slurm's time in seconds: a time limit (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M:S``),
    or sacct's CPU time (``[D-][HH:]MM:SS[.mmm]``)."""
    days, _, clock = text.strip().rpartition("-")
    parts = [float(part) for part in clock.split(":") if part]
    if days:  # with days, the clock is H, H:M or H:M:S
        parts += [0.0] * (3 - len(parts))
        hours, minutes, seconds = parts[:3]
    elif len(parts) == 1:  # minutes
        hours, minutes, seconds = 0.0, parts[0], 0.0
    else:
        hours, minutes, seconds = ([0.0, *parts] if len(parts) == 2 else parts)[:3]
    return (float(days or 0) * 24 + hours) * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class Usage:
    """What accounting recorded of one job or array task: what ``seff`` reports."""

    line: JobLine  # as a line of squeue would show it: for what a job or task ended of
    exit_code: str
    elapsed_s: float
    cpu_s: float  # TotalCPU: user and system time of all its steps
    cpus: int  # AllocCPUS
    max_rss_mib: float | None  # the largest MaxRSS of its steps; None if none was sampled
    requested_mib: float | None  # ReqMem
    node: str


def sacct_usage(job_ids: list[str], since: str | None = None) -> list[Usage]:
    """Each job and array task of ``job_ids`` as accounting recorded it, in one ``sacct``.

    ``since`` (``YYYY-MM-DDTHH:MM:SS``) leaves out older jobs that had the same
    ids (a cluster whose job ids started again). Tasks still pending are left
    out. Raises :class:`SlurmError` where there is no sacct or no accounting.
    """
    if shutil.which("sacct") is None:
        raise SlurmError("sacct not found on PATH")
    window = ["--starttime", since] if since else []
    try:
        output = run_capturing(_command(job_ids, SACCT_USAGE_FIELDS, *window))[0]
    except CommandError as error:  # the last line says why: no database, accounting off...
        said = last_line(error.stderr) or f"exit code {error.returncode}, no message"
        raise SlurmError(said if said.startswith("sacct") else f"sacct: {said}") from None
    allocations: dict[str, dict[str, str]] = {}
    step_peaks: dict[str, float] = {}
    for row in parsable_rows(output, SACCT_USAGE_FIELDS):
        allocation, _, step = row["JobID"].partition(".")
        if step:  # "12_3.batch": MaxRSS is measured per step; the extern step only waits
            rss = memory_mib(row["MaxRSS"]) if step != "extern" else None
            if rss is not None:
                step_peaks[allocation] = max(step_peaks.get(allocation, 0.0), rss)
        else:
            allocations[allocation] = row
    return [
        _usage(row, step_peaks.get(job))
        for job, row in allocations.items()
        if not (_job_and_task(job)[1] is None and "_" in job)  # "12_[3-10]": not started yet
    ]


def _usage(row: dict[str, str], step_peak: float | None) -> Usage:
    """An allocation's row of sacct, with the largest MaxRSS of its steps."""
    base, task = _job_and_task(row["JobID"])
    cpus = int(row["AllocCPUS"]) if row["AllocCPUS"].isdigit() else 1
    requested = memory_mib(row["ReqMem"])
    if requested is not None and row["ReqMem"].endswith("c"):  # per CPU, before 21.08
        requested *= cpus
    asked = f"{requested:.0f}M" if requested else ""
    return Usage(
        JobLine(base, task, _state(row), "None", asked, row["Timelimit"]),
        row["ExitCode"],
        float(row["ElapsedRaw"]) if row["ElapsedRaw"].isdigit() else 0.0,
        seconds(row["TotalCPU"] or "0"),
        cpus,
        step_peak or memory_mib(row["MaxRSS"]),
        requested,
        row["NodeList"],
    )
