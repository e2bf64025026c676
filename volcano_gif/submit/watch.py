"""Follow a run until its GIF is made: ``volcano-gif watch``, ``submit-gif-job --watch``.

Each poll costs the scheduler one ``squeue`` call for both jobs (every array
task on its own line), never one per task, and polls back off from
:data:`FIRST_INTERVAL` to :data:`LAST_INTERVAL` seconds. A line is printed when
something changes: frames on disk out of the total, the array's tasks pending /
running / completed / failed, and the assembly job's state and reason.

A job that has left ``squeue`` (after Slurm's MinJobAge) is judged from
``scontrol``, then ``sacct`` if the cluster keeps accounting, then from the
files on disk (the run record, which the assembler updates): the line says
which; a record still under way then hears how its jobs ended. A controller
that does not answer is ridden out. The watch ends with exit status 0 when the
GIF was made and verified, and 1 otherwise, with the command that finishes the run.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from volcano_gif import sacct, slurm
from volcano_gif.arguments import EXIT_FAILURE
from volcano_gif.errors import UsageError
from volcano_gif.layout import RESUME_COMMAND
from volcano_gif.paths import ProjectPaths
from volcano_gif.run import lifecycle
from volcano_gif.run.failures import Kill, fix_options, kills
from volcano_gif.run.guard import folder_holder
from volcano_gif.run.lifecycle import require_record, run_is_complete
from volcano_gif.run.record import UNDER_WAY, Mode, RecordError, RunRecord, RunState
from volcano_gif.run.report import Report, written_from_sacct_entirely
from volcano_gif.submit.polling import poll_until
from volcano_gif.task.frames import frames_on_disk

logger = logging.getLogger(__name__)

#: Says how a run ended, once its jobs have: (paths, run id, stream) -> exit status.
Judge = Callable[[ProjectPaths, str, TextIO], int]

FIRST_INTERVAL = 2.0
LAST_INTERVAL = 30.0

_PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"}
_RUNNING = {"RUNNING", "CONFIGURING", "RESIZING", "SIGNALING", "STAGE_OUT"}
#: Always counted on the watch's line; then those of :data:`_NOTED` that there are.
_COUNTED = ("pending", "running", "completed", "failed")
_NOTED = {"held": "held", "requeued": "requeued", "ending": "ending", "gone": "left the queue"}


def task_category(state: str, reason: str = "") -> str:
    """pending, held or requeued (with Slurm's reason), running, ending (COMPLETING),
    completed or failed (cancelled, timed out, node lost...)."""
    waiting = state in _PENDING
    if state == "REQUEUE_HOLD" or (waiting and "held" in reason.lower()):
        return "held"
    if state in {"REQUEUED", "REQUEUE_FED"} or (waiting and "requeued" in reason.lower()):
        return "requeued"
    if waiting:
        return "pending"
    if state in _RUNNING:
        return "running"
    if state == "COMPLETING":
        return "ending"
    return "completed" if state == "COMPLETED" else "failed"


@dataclass(frozen=True)
class Snapshot:
    """Where a Slurm run stands, from one poll."""

    frames: int
    total: int
    tasks: tuple[tuple[str, int], ...]  # (category, count) in a fixed order
    reasons: tuple[tuple[str, str], ...]  # (category, Slurm's reason) for held and requeued
    gif_job: str
    gif_state: str
    gif_reason: str
    source: str  # squeue, scontrol, sacct, or the files on disk
    ended: bool
    kills: tuple[Kill, ...] = ()  # tasks or the assembly ended for want of memory or time

    def line(self, array_job: str | None, dependent: str = "gif job") -> str:
        counts, reasons = dict(self.tasks), dict(self.reasons)
        tasks = (
            f"array {array_job}: " + ", ".join(f"{counts.get(c, 0)} {c}" for c in _COUNTED)
            if array_job
            else "no array"
        )
        for category, label in _NOTED.items():
            if counts.get(category):
                why = f" ({reasons[category]})" if reasons.get(category) else ""
                tasks += f", {counts[category]} {label}{why}"
        reason = f" ({self.gif_reason})" if self.gif_reason not in {"", "None"} else ""
        source = "" if self.source == "squeue" else f"  [judged from {self.source}]"
        return (
            f"frames {self.frames}/{self.total} | {tasks} | "
            f"{dependent} {self.gif_job}: {self.gif_state}{reason}{source}"
        )


@dataclass(frozen=True)
class Watched:
    """The jobs a watch follows: an array (or none) and its assembly job."""

    array_job: str | None
    gif_job: str
    array_tasks: int  # how many tasks the array has

    @classmethod
    def latest(cls, record: RunRecord) -> Watched:
        latest = record.latest
        if latest is None or latest.gif_job_id is None:
            raise UsageError(f"run {record.run_id} has no submitted assembly job to watch")
        tasks = len(_tasks_of(latest.array)) if latest.array else 0
        return cls(latest.array_job_id, latest.gif_job_id, tasks)

    @classmethod
    def given(cls, record: RunRecord, jobs: str) -> Watched:
        """From ``--jobs ARRAY,GIF`` (or ``--jobs GIF``), e.g. from submit-gif-job's output."""
        ids = [job.strip() for job in jobs.split(",") if job.strip()]
        if not 1 <= len(ids) <= 2 or not all(job.isdigit() for job in ids):
            raise UsageError(f"--jobs {jobs!r}: give ARRAY_ID,GIF_ID (or GIF_ID), e.g. 12,13")
        arrays = [s.array for s in record.submissions if s.job_ids == ids and s.array]
        tasks = len(_tasks_of(arrays[0])) if arrays else 0
        return cls(ids[0] if len(ids) == 2 else None, ids[-1], tasks)


def poll(paths: ProjectPaths, record: RunRecord, watched: Watched, accounting: bool) -> Snapshot:
    """One look at the run: one squeue call, and more only for jobs that left it."""
    array_job, gif_job = watched.array_job, watched.gif_job
    jobs = [job for job in (array_job, gif_job) if job]
    queued = lines = slurm.job_lines(jobs)
    source = "squeue"
    if not any(line.job_id == gif_job for line in lines):
        lines, source = [], "scontrol"
        for job in jobs:
            lines += slurm.scontrol_states(job)
        if not any(line.job_id == gif_job for line in lines) and accounting:
            lines, source = sacct.sacct_states(jobs), "sacct"
    gif_lines = [line for line in lines if line.job_id == gif_job]
    task_lines = [line for line in lines if line.job_id == array_job and line.task is not None]
    task_lines = task_lines or [q for q in queued if q.job_id == array_job and q.task is not None]
    categories = [(task_category(line.state, line.reason), line.reason) for line in task_lines]
    counts = Counter(category for category, _ in categories)
    reasons = {c: why for c, why in reversed(categories) if c in {"held", "requeued"}}
    if array_job and len(task_lines) < watched.array_tasks:
        counts["gone"] = watched.array_tasks - len(task_lines)
    current = _reread(paths, record)
    if gif_lines:
        gif_state, gif_reason = gif_lines[0].state, gif_lines[0].reason
        ended = gif_state in slurm.ENDED_STATES
    else:  # Slurm has forgotten it (MinJobAge, or a crash): done once no task is at work
        source = "output/run.json and the files on disk: the jobs have left Slurm's memory"
        gif_state, gif_reason = f"gone, run {current.state}", ""
        ended = not any(map(counts.get, ("pending", "held", "requeued", "running", "ending")))
    assembled = current.state == RunState.ASSEMBLED
    frames = current.parameters.frame_count if assembled else len(frames_on_disk(paths.images))
    return Snapshot(
        frames,
        current.parameters.frame_count,
        tuple((c, counts[c]) for c in (*_COUNTED, *_NOTED) if counts[c]),
        tuple(reasons.items()),
        gif_job,
        gif_state,
        gif_reason,
        source,
        ended,
        tuple(kills([*task_lines, *gif_lines])),
    )


class _ChangedLines:
    """Prints a line when it differs from the one printed before, not on every poll."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.shown = out, ""

    def __call__(self, line: str) -> None:
        if line != self.shown:
            print(line, file=self.out, flush=True)
            self.shown = line


def _reread(paths: ProjectPaths, record: RunRecord) -> RunRecord:
    """The run's record as it is now; the one known before if it was removed or damaged."""
    try:
        current = lifecycle.read_record(paths)
    except RecordError:
        current = None
    if current is None:
        return record
    if current.run_id != record.run_id:
        raise UsageError(
            f"output/run.json now holds run {current.run_id}, not {record.run_id}: stopped"
        )
    return current


#: How long the watch rides out a controller that does not answer, in seconds of waiting.
OUTAGE_LIMIT = 1800.0


class _Outage:
    """Says once that Slurm does not answer, and once that it answers again; counts the wait."""

    def __init__(self, out: TextIO, sleep: Callable[[float], None]) -> None:
        self.out, self._sleep = out, sleep
        self.waited: float | None = None  # seconds waited since Slurm stopped answering

    def saw(self, error: slurm.SlurmError | None) -> None:
        """What a poll got: ``error``, or an answer (None)."""
        if error is not None and self.waited is None:
            print(
                f"Slurm does not answer ({error.said}); the jobs go on without it: still watching",
                file=self.out,
                flush=True,
            )
        elif error is None and self.waited is not None:
            print("Slurm answers again", file=self.out, flush=True)
        self.waited = (self.waited or 0.0) if error else None

    def sleep(self, seconds: float) -> None:
        if self.waited is not None:
            self.waited += seconds
        self._sleep(seconds)

    @property
    def too_long(self) -> bool:
        return self.waited is not None and self.waited >= OUTAGE_LIMIT


def watch_run(
    paths: ProjectPaths,
    first_interval: float = FIRST_INTERVAL,
    last_interval: float = LAST_INTERVAL,
    *,
    stream: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jobs: str | None = None,
    judge: Judge | None = None,
    dependent: str = "gif job",
) -> int:
    """Follow the run in output/run.json to its end; 0 if its GIF was made and verified.

    ``jobs`` (``"ARRAY,GIF"``) watches those jobs instead of the run's latest two.
    ``judge`` says how the run ended instead of :func:`judge_run_end` (a reproduction's
    comparison, say), and ``dependent`` names the job that follows the array. A
    controller that does not answer is ridden out for :data:`OUTAGE_LIMIT` seconds.
    """
    out = stream or sys.stderr
    record = lifecycle.wait_while_submitting(paths, require_record(paths))
    if record.state is RunState.SUBMITTING:
        lifecycle.settle(paths, record, f"the submission of run {record.run_id} ended")
    if record.mode == Mode.LOCAL and jobs is None:
        return _watch_local(
            paths, record, out, intervals=(first_interval, last_interval), sleep=sleep, judge=judge
        )
    latest = record.latest
    if jobs is None and (latest is None or latest.gif_job_id is None):  # nothing was queued
        return (judge or judge_run_end)(paths, record.run_id, out)
    watched = Watched.given(record, jobs) if jobs else Watched.latest(record)
    show, outage = _ChangedLines(out), _Outage(out, sleep)
    accounting = [None if slurm.available() else False]

    def look() -> Snapshot | None:
        try:
            if accounting[0] is None:
                accounting[0] = slurm.read_config().accounting
            snapshot = poll(paths, record, watched, bool(accounting[0]))
        except slurm.SlurmError as error:
            outage.saw(error)
            return None
        outage.saw(None)
        show(snapshot.line(watched.array_job, dependent))
        return snapshot

    snapshot = poll_until(
        look,
        lambda seen: outage.too_long or (seen is not None and seen.ended),
        outage.sleep,
        first_interval,
        last_interval,
    )
    if snapshot is None:
        print(
            f"Slurm has not answered for {OUTAGE_LIMIT / 60:.0f} minutes: the jobs of run "
            f"{record.run_id} may still be queued or running; watch again later with: "
            "volcano-gif watch (or squeue --me)",
            file=out,
        )
        return EXIT_FAILURE
    _settle(paths, record, snapshot, dependent)
    if judge is not None:
        return judge(paths, record.run_id, out)
    return judge_run_end(
        paths,
        record.run_id,
        out,
        accounting=bool(accounting[0]),
        sleep=sleep,
        found=snapshot.kills,
    )


def _settle(paths: ProjectPaths, record: RunRecord, snapshot: Snapshot, dependent: str) -> None:
    """The dependent job ended: a record still in flight hears how (it was killed, say)."""
    current = _reread(paths, record)
    if current.state in UNDER_WAY:
        gone = snapshot.gif_state.startswith("gone")
        ended = "left Slurm's memory" if gone else f"ended {snapshot.gif_state}"
        how = f"the {dependent} {snapshot.gif_job} {ended}"
        lifecycle.settle(paths, current, how, by_user=snapshot.gif_state == "CANCELLED")


def _watch_local(
    paths: ProjectPaths,
    record: RunRecord,
    out: TextIO,
    *,
    intervals: tuple[float, float],
    sleep: Callable[[float], None],
    judge: Judge | None = None,
) -> int:
    show = _ChangedLines(out)

    def ended() -> bool:
        if folder_holder(paths) is None:
            return True
        frames = len(frames_on_disk(paths.images))
        show(f"frames {frames}/{record.parameters.frame_count} | a local run is under way")
        return False

    poll_until(ended, bool, sleep, *intervals)
    current = _reread(paths, record)
    if current.state in UNDER_WAY:  # its process is gone: killed, say
        lifecycle.settle(paths, current, "the local run's process ended")
    return (judge or judge_run_end)(paths, record.run_id, out)


def say_what_failed(record: RunRecord, what: str, failed: str, out: TextIO) -> None:
    """``run ID did not make its GIF: error``, then the missing frames, if any."""
    problem = record.error or f"the run ended in state {record.state.value}"
    print(f"{what} {record.run_id} {failed}: {problem}", file=out)
    if missing := record.missing_frames:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        print(f"  missing frames: {shown}", file=out)


def judge_run_end(
    paths: ProjectPaths,
    run_id: str,
    out: TextIO,
    *,
    accounting: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    found: tuple[Kill, ...] = (),
) -> int:
    """Say how the run ended: the outputs and the report, or what is wrong and the fix.

    With accounting, a report the assembly wrote before slurmdbd had its tasks
    is written again from sacct (see :func:`report_from_accounting`). Jobs that
    Slurm ended for want of memory or time (``found``) are named, and the fix
    goes into the one command that finishes the run.
    """
    record = require_record(paths)
    if record.run_id == run_id and run_is_complete(paths, record):
        summary = paths.report / "summary.txt"
        if accounting and summary.is_file() and not written_from_sacct_entirely(paths):
            report_from_accounting(paths, sleep)
        print(
            f"run {run_id} assembled: {record.outputs['gif'].path} and "
            f"{record.outputs['mp4'].path}, frames in {record.outputs['archive'].path}; "
            "checksums verified",
            file=out,
        )
        if summary.is_file():
            for line in summary.read_text().splitlines():
                print(f"  {line}", file=out)
        print(paths.root / record.outputs["gif"].path)
        return 0
    say_what_failed(record, "run", "did not make its GIF", out)
    for kill in found:
        print(f"  {kill.line()}", file=out)
    options = fix_options(found, record.resume_options)
    print(
        f"finish it with: {RESUME_COMMAND}" + (f" -- {' '.join(options)}" if options else ""),
        file=out,
    )
    return 1


#: How long the watch waits for slurmdbd to hold every task, in seconds; its first wait.
ACCOUNTING_WAIT, ACCOUNTING_FIRST_WAIT = 30.0, 2.0


def report_from_accounting(paths: ProjectPaths, sleep: Callable[[float], None]) -> None:
    """Write the report again, from sacct, once slurmdbd holds every task of the run.

    slurmctld tells slurmdbd of each ended task a moment later, in batches: for
    a few seconds after the assembly ends, sacct may lack some. These calls go
    to slurmdbd, not to the controller. Once it has waited ``ACCOUNTING_WAIT`` s
    or more, the report stays as it is then; its source line says what came from where.
    """
    from volcano_gif.run.report import write_report

    def rewritten() -> Report | None:
        try:
            return write_report(paths)
        except Exception as error:  # noqa: BLE001  (the assembly's report stays)
            logger.warning("report not rewritten from sacct: %s", error)
            return None

    poll_until(
        rewritten,
        lambda report: report is None or report.sacct_has_every_task,
        sleep,
        ACCOUNTING_FIRST_WAIT,
        give_up_after=ACCOUNTING_WAIT,
    )


def _tasks_of(spec: str) -> list[int]:
    """The task indices of an ``--array`` value such as ``1-5,9%2``."""
    indices: list[int] = []
    for part in spec.split("%", 1)[0].split(","):
        first, _, last = part.partition("-")
        indices.extend(range(int(first), int(last or first) + 1))
    return indices
