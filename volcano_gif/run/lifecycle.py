"""The run's one owner: the only module that writes ``output/run.json`` and moves a run.

Commands ask it to :func:`begin` or :func:`resume` a run, and to record what was
:func:`submitted` or :func:`refused`, that the dependent step :func:`started`,
:func:`succeeded` or :func:`failed`, or that the run was :func:`cancelled`. A
command checks everything it can before it begins a run (a refused command leaves
the folder as it was), then runs inside :func:`recording_failures`: any failure,
SIGTERM or Ctrl-C ends with the record saying so. Every change is a read-modify-
write under a short lock, each write atomic, and never touches another run's record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import signal
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from volcano_gif.errors import UsageError
from volcano_gif.files import sha256_of, short_hostname, write_json_atomically
from volcano_gif.layout import RESUME_COMMAND, RUN_RECORD, SUBMIT_SCRIPT
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.record import (
    UNDER_WAY,
    Kind,
    Mode,
    Parameters,
    RecordError,
    Reproduction,
    RunRecord,
    RunState,
    Submission,
    new_run_id,
    now,
)
from volcano_gif.task.task_timing import remove_other_runs_timings

logger = logging.getLogger(__name__)

#: The states in which a run has its outcome: a failure recorded later changes nothing.
OUTCOMES = frozenset(RunState) - UNDER_WAY


class NoRecordError(RecordError, UsageError):
    """There is no run record to resume or cancel: bad input (exit 2), as the usage is."""


class DamagedRecordError(RecordError):
    """``output/run.json`` is there but cannot be read as a run record."""


class Stopped(KeyboardInterrupt):
    """The command got SIGTERM or SIGINT; ``signal`` names it (``SIGTERM``)."""

    def __init__(self, signum: int) -> None:
        self.signal, self.way = signal.Signals(signum).name, ""
        super().__init__(self.signal)

    def line(self) -> str:
        slurm = "on a cluster: the job's time limit, preemption, or scancel"
        return f"stopped by {self.signal} ({'Ctrl-C' if self.signal == 'SIGINT' else slurm})"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`Stopped`, so that every ``finally`` runs.

    Python ends at SIGTERM without running them: temporary files would stay and the
    record would say the run is still at work.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------ the file
def versions(slurm_version: str | None = None) -> dict[str, str]:
    """The versions that made the frames and outputs."""
    import matplotlib
    import numpy

    found = {
        "python": platform.python_version(),
        "matplotlib": matplotlib.__version__,
        "numpy": numpy.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,  # compresses the frames' PNG data: their bytes
    }
    with contextlib.suppress(Exception):  # ffmpeg's version is a nicety, never a failure
        import imageio_ffmpeg

        found["ffmpeg"] = str(imageio_ffmpeg.get_ffmpeg_version())
    if slurm_version:
        found["slurm"] = slurm_version
    return found


def new_record(
    mode: Mode,
    parameters: Parameters,
    slurm_version: str | None = None,
    run_id: str | None = None,
    *,
    data_file: Path | None = None,
    command: list[str] | None = None,
    kind: Kind = Kind.RUN,
) -> RunRecord:
    """A new run's record, not yet written (``run_id``: a new one if not given)."""
    stamp = now()
    record = RunRecord(
        run_id=run_id or new_run_id(),
        mode=mode,
        state=RunState.SUBMITTING,
        parameters=parameters,
        versions=versions(slurm_version),
        created=stamp,
        updated=stamp,
        kind=kind,
        data_sha256=sha256_of(data_file) if data_file and data_file.is_file() else None,
        command=command,
        submitter=_submitter(mode),
    )
    what = "run" if kind is Kind.RUN else "reproduction"
    record.note("created", f"{mode.value} {what} of {parameters.describe()}")
    return record


def _submitter(mode: Mode) -> dict[str, object]:
    """Who is at work on the run: submit-gif-job's shell (Slurm), or this process (local)."""
    return {"host": short_hostname(), "pid": os.getppid() if mode is Mode.SLURM else os.getpid()}


def read_record(paths: ProjectPaths) -> RunRecord | None:
    """The run record of this folder, or None if there is none."""
    try:
        text = paths.run_record.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RecordError(f"{paths.run_record}: cannot read the run record: {error}") from None
    try:
        return RunRecord.from_json(json.loads(text))
    except json.JSONDecodeError as error:
        raise DamagedRecordError(_damaged(paths, f"not valid JSON: {error}")) from None
    except RecordError as error:
        if "schema version" in str(error) and "newer" in str(error):
            raise RecordError(f"{paths.run_record}: {error}") from None
        raise DamagedRecordError(_damaged(paths, str(error))) from None


def _damaged(paths: ProjectPaths, what: str) -> str:
    return (
        f"{paths.run_record} is damaged ({what}): it was cut short or edited. Move it away "
        f"(mv {RUN_RECORD} {RUN_RECORD}.damaged) and start the run again with the same "
        f"options: its complete frames in images/ are kept (if its jobs are still queued, "
        f"cancel them first: bash {SUBMIT_SCRIPT} --cancel)"
    )


def require_record(paths: ProjectPaths) -> RunRecord:
    record = read_record(paths)
    if record is None:
        raise NoRecordError(
            f"there is no run record ({RUN_RECORD}) in {paths.root}: nothing to resume or "
            "cancel; start a run with: bash submit-gif-job"
        )
    return record


def write_record(paths: ProjectPaths, record: RunRecord) -> None:
    """Write ``record`` atomically (a change to one on disk is :func:`update_record`'s)."""
    paths.output.mkdir(parents=True, exist_ok=True)
    write_json_atomically(paths.run_record, record.to_json())


def update_record(
    paths: ProjectPaths, change: Callable[[RunRecord], None], run_id: str | None = None
) -> RunRecord | None:
    """Apply ``change`` to the record on disk and write it back, under the lock.

    With ``run_id``, only a record of that run is changed (a newer run in the
    folder is left alone). Returns the record written, or None if none was.
    """
    paths.output.mkdir(parents=True, exist_ok=True)
    with open(paths.record_lock, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one read-modify-write at a time; closing unlocks
        record = read_record(paths)
        if record is None or (run_id is not None and record.run_id != run_id):
            return None
        change(record)
        record.updated = now()
        write_record(paths, record)
        return record


# ---------------------------------------------------------------- the moves
def begin(
    paths: ProjectPaths,
    mode: Mode,
    parameters: Parameters,
    *,
    slurm_version: str | None = None,
    run_id: str | None = None,
    command: list[str] | None = None,
    submission: Submission | None = None,
    reproduces: Reproduction | None = None,
) -> RunRecord:
    """Write a new run's record: ``submitting`` on Slurm, ``rendering`` here.

    Call it once the command has checked everything it can: from here on the folder is
    this run's. Other runs' timing files go (the report counts this run's only).
    """
    kind = Kind.RUN if reproduces is None else Kind.REPRODUCE
    record = new_record(
        mode,
        parameters,
        slurm_version,
        run_id,
        data_file=paths.data_file,
        command=command,
        kind=kind,
    )
    if reproduces is not None:
        record.reproduces, record.submitter = reproduces, _submitter(Mode.LOCAL)
        record.note("reproduces", f"run {reproduces.run_id}, from {reproduces.source}")
    if submission is not None:
        record.submissions.append(submission)
    if mode is Mode.LOCAL:
        record.move_to(RunState.RENDERING, "rendering", "locally")
        record.submitted = record.started = now()
    remove_other_runs_timings(paths.timing, record.run_id)
    write_record(paths, record)
    return record


def resume(
    paths: ProjectPaths,
    record: RunRecord,
    mode: Mode,
    detail: str,
    *,
    submission: Submission | None = None,
    change: Callable[[RunRecord], None] | None = None,
) -> RunRecord:
    """Resume ``record``'s run: ``submitting`` its missing frames on Slurm, ``rendering`` here."""

    def resumed(current: RunRecord) -> None:
        current.mode = mode
        current.submitter = _submitter(
            mode if current.kind is Kind.RUN else Mode.LOCAL  # a reproduction submits itself
        )
        if submission is not None:
            current.submissions.append(submission)
        if change is not None:
            change(current)
        state = RunState.SUBMITTING if mode is Mode.SLURM else RunState.RENDERING
        current.move_to(state, "resumed", detail)

    return update_record(paths, resumed, record.run_id) or record


def planned(paths: ProjectPaths, run_id: str, submission: Submission) -> None:
    """A submission is about to be made (its job ids follow: :func:`submitted`)."""

    def plan(record: RunRecord) -> None:
        record.parameters.frames_per_task = submission.frames_per_task
        record.submissions.append(submission)
        record.note("submitting", f"array {submission.array or '(none)'}")

    update_record(paths, plan, run_id)


def submitted(
    paths: ProjectPaths,
    run_id: str,
    jobs: tuple[str | None, str | None],
    commands: list[list[str]],
    said: str,
) -> None:
    """The latest submission's jobs, (array, dependent), are queued; or the dependent one
    was refused (``said``): the run failed."""
    array_id, dependent_id = jobs

    def queued(record: RunRecord) -> None:
        latest = record.submissions[-1]
        latest.array_job_id, latest.gif_job_id, latest.commands = array_id, dependent_id, commands
        record.submitted = record.submitted or latest.time
        record.submitter = None
        step = _step(record)
        jobs = ", ".join(
            f"{what} {job}" for what, job in (("array", array_id), (step, dependent_id)) if job
        )
        if dependent_id is None:
            record.error = f"the {step} job was not submitted: {said}"
            record.move_to(RunState.FAILED, "submitted in part", jobs)
        elif record.state is RunState.SUBMITTING:
            record.move_to(RunState.SUBMITTED, "submitted", jobs)
        else:  # the assembly has started already (an assembly-only resume)
            record.note("submitted", jobs)

    update_record(paths, queued, run_id)


def refused(paths: ProjectPaths, run_id: str, said: str) -> None:
    """sbatch refused the submission: nothing was queued."""

    def refusal(record: RunRecord) -> None:
        record.submissions.pop()  # it never happened
        record.error = f"sbatch refused the submission: {said}"
        record.submitter = None
        record.move_to(RunState.REFUSED, "refused", said)

    update_record(paths, refusal, run_id)


def cancelled(paths: ProjectPaths, run_id: str, detail: str, error: str | None = None) -> None:
    """The run was stopped; every frame rendered so far is kept."""

    def stop(record: RunRecord) -> None:
        record.submitter = None
        record.error = error or record.error
        record.move_to(RunState.CANCELLED, "cancelled", detail)

    update_record(paths, stop, run_id)


def started(paths: ProjectPaths, run_id: str) -> None:
    """The dependent step (the assembly, or a reproduction's comparison) is at work."""
    job = os.environ.get("SLURM_JOB_ID")

    def at_work(record: RunRecord) -> None:
        record.assembly_job_id = job or record.assembly_job_id
        record.assembly_started = now()
        record.error = None
        record.resume_options = []
        record.move_to(RunState.ASSEMBLING, f"{_step(record)} started", f"job {job}" if job else "")

    update_record(paths, at_work, run_id)


def failed(
    paths: ProjectPaths,
    run_id: str,
    error: BaseException | str,
    *,
    missing: Sequence[int] = (),
    resume_options: Sequence[str] = (),
) -> None:
    """The run failed with ``error`` (its first line); a run with an outcome keeps it.

    Never raises: a record that cannot be written is warned of.
    """
    line = _first_line(error)

    def fail(record: RunRecord) -> None:
        if record.state in OUTCOMES:
            return
        step = _step(record) if record.state is RunState.ASSEMBLING else "run"
        record.error, record.missing_frames = line, list(missing)
        record.resume_options = list(resume_options)
        record.ended, record.submitter = now(), None
        record.move_to(RunState.FAILED, f"{step} failed", line)

    try:
        update_record(paths, fail, run_id)
    except (OSError, RecordError) as record_error:
        logger.warning("could not record the failure in %s: %s", RUN_RECORD, record_error)


def _step(record: RunRecord) -> str:
    """What the job after the array does: a run's assembly, or a reproduction's comparison."""
    return "assembly" if record.kind is Kind.RUN else "comparison"


def _first_line(error: BaseException | str) -> str:
    text = error.line() if isinstance(error, Stopped) else str(error)
    return text.splitlines()[0] if text else type(error).__name__


def succeeded(
    paths: ProjectPaths, run_id: str, fill: Callable[[RunRecord], str]
) -> RunRecord | None:
    """The dependent step made its outputs: ``fill`` sets them in the record and says what
    they are; the run is ``assembled`` (a reproduction: ``compared``)."""

    def done(record: RunRecord) -> None:
        detail = fill(record)
        record.missing_frames, record.error, record.ended = [], None, now()
        state = RunState.ASSEMBLED if record.kind is Kind.RUN else RunState.COMPARED
        record.move_to(state, state.value, detail)

    return update_record(paths, done, run_id)


def adopt(paths: ProjectPaths, parameters: Parameters, missing: list[int], error: str) -> None:
    """Write a record for a run that had none (jobs of one's own): failed, with its missing
    frames, so that the resume command printed works for it too. Never over another record."""
    if paths.run_record.exists():
        return
    job = os.environ.get("SLURM_JOB_ID")
    record = new_record(Mode.SLURM if job else Mode.LOCAL, parameters, data_file=paths.data_file)
    record.submitter, record.assembly_job_id = None, job
    record.error, record.missing_frames, record.ended = error.splitlines()[0], missing, now()
    record.move_to(RunState.FAILED, "assembly failed", f"a run with no record: {record.error}")
    try:
        write_record(paths, record)
    except (OSError, RecordError) as record_error:
        logger.warning("could not write %s for --resume: %s", RUN_RECORD, record_error)


def settle(paths: ProjectPaths, record: RunRecord, how: str, *, by_user: bool = False) -> None:
    """The run's jobs (or its process) ended without recording an outcome: say so.

    ``how`` is what ended and how (``assembly job 13 ended CANCELLED``); ``by_user``:
    it was cancelled, not killed.
    """
    if record.state in OUTCOMES:
        return
    if by_user:
        cancelled(paths, record.run_id, how, error=how)
    else:
        failed(paths, record.run_id, f"{how} without recording an outcome")


@contextlib.contextmanager
def recording_failures(
    paths: ProjectPaths, run_id: str, way: str = RESUME_COMMAND
) -> Iterator[None]:
    """Once a command has begun or resumed a run: any failure, SIGTERM or Ctrl-C ends with
    the record saying so (a run that has its outcome keeps it), and the exception goes on;
    a stop says the ``way`` to finish the run."""
    try:
        with stop_on_signals():
            yield
    except BaseException as error:
        if isinstance(error, Stopped):
            error.way = way
        failed(
            paths,
            run_id,
            error,
            missing=sorted(getattr(error, "problems", ())),
            resume_options=getattr(error, "resume_options", ()),
        )
        raise


# ------------------------------------------------------------- questions
def run_is_complete(paths: ProjectPaths, record: RunRecord) -> bool:
    """True if the run was assembled and its outputs are on disk, checksums intact."""
    return record.state == RunState.ASSEMBLED and outputs_verified(paths, record)


def outputs_verified(paths: ProjectPaths, record: RunRecord) -> bool:
    """True if every output in the record is on disk with its recorded checksum."""
    return set(record.outputs) == {"mp4", "gif", "archive"} and all(
        (path := paths.root / output.path).is_file() and sha256_of(path) == output.sha256
        for output in record.outputs.values()
    )


def complete_line(record: RunRecord, left: str) -> str:
    """What a command says of a complete run it has nothing to ``left`` (do) for."""
    outputs = ", ".join(output.path for output in record.outputs.values())
    return (
        f"run {record.run_id} is complete: {outputs} verified against {RUN_RECORD}; "
        f"nothing to {left}"
    )


def submitter_alive(record: RunRecord) -> int | None:
    """The pid of the process at work on ``record`` on this host, if it is alive."""
    submitter = record.submitter or {}
    pid = submitter.get("pid")
    if submitter.get("host") != short_hostname() or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        with contextlib.suppress(PermissionError):  # alive, and another user's
            os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def wait_while_submitting(
    paths: ProjectPaths, record: RunRecord, timeout: float = 120
) -> RunRecord:
    """Wait (at most ``timeout`` s) for a submission under way, its sbatch calls, to end;
    the record then."""
    deadline = time.monotonic() + timeout
    while record.state is RunState.SUBMITTING and submitter_alive(record):
        if time.monotonic() > deadline:
            return record
        time.sleep(0.2)
        record = read_record(paths) or record
    return record
