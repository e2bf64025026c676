"""One run per folder.

A local run holds an OS file lock (``fcntl.flock`` on ``output/.folder.lock``)
for its whole length; the OS drops it when the process ends, however it ends,
so a crash never leaves a stale lock behind. A Slurm run holds the folder while
its jobs are queued or running: the queue says which (one ``squeue --me``: the
jobs submitted from the folder whose comment names a run), whether or not the
run record is there or readable. A submission holds it while its shell is at work.
A second run in the same folder is refused with a one-line message that names
what holds it and how to wait for it or stop it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

from volcano_gif import slurm
from volcano_gif.errors import UsageError
from volcano_gif.files import short_hostname
from volcano_gif.layout import RESUME_COMMAND, SUBMIT_SCRIPT, job_comment
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import (
    DamagedRecordError,
    read_record,
    require_record,
    run_is_complete,
    submitter_alive,
)
from volcano_gif.run.record import UNDER_WAY, Kind, Parameters, RunRecord, RunState
from volcano_gif.task.frames import frames_of_other_runs

logger = logging.getLogger(__name__)
Written = TypeVar("Written")


CANCEL_COMMAND = f"bash {SUBMIT_SCRIPT} --cancel"
RM_FRAMES = "rm images/image*.png"


class FolderBusyError(RuntimeError):
    """Another run holds this folder: a failure to run now (exit 1), not bad input."""


def check_writable(folder: Path) -> None:
    """Raise a one-line UsageError unless a run can write files in ``folder``, whose path
    holds no control character or backslash (ffmpeg's frame list and sbatch's logs can't)."""
    if bad := next((c for c in str(folder) if ord(c) < 32 or ord(c) == 127 or c == "\\"), ""):
        raise UsageError(
            f"{str(folder)!r} holds a control character or backslash ({bad!r}) in its path: "
            "rename or move the project, then try again"
        )
    _writing(folder, lambda: tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-").close())


def _open_lock(paths: ProjectPaths) -> IO[str]:
    return _writing(paths.output, lambda: open(paths.folder_lock, "a+", encoding="utf-8"))


def _writing(folder: Path, write: Callable[[], Written]) -> Written:
    """``write()`` in ``folder`` (made if missing), or a one-line UsageError that says why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return write()
    except OSError as error:
        raise UsageError(
            f"cannot write in {folder}: {error.strerror or error}; "
            "run from a folder you can write to"
        ) from None


@contextlib.contextmanager
def holding_folder(paths: ProjectPaths, what: str) -> Iterator[None]:
    """Hold the folder for ``what`` (e.g. "a local run"), or raise FolderBusyError."""
    handle = _open_lock(paths)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(_busy_message(paths, _holder(handle))) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {short_hostname()} {what}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing drops the lock


def folder_holder(paths: ProjectPaths) -> str | None:
    """Who holds the folder's lock (``"<pid> <host> <what>"``), or None if nobody does."""
    if not paths.folder_lock.exists():
        return None
    handle = _open_lock(paths)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(handle) or "another process"
        return None
    finally:
        handle.close()


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    return handle.read().strip()


def _busy_message(paths: ProjectPaths, holder: str, finish: str = RESUME_COMMAND) -> str:
    pid, _, rest = holder.partition(" ")
    _, _, what = rest.partition(" ")
    return (
        f"{what or 'another run'} (pid {pid}) is under way in {paths.root}: wait for it to end, "
        f"or stop it (Ctrl-C in its terminal, or kill {pid}), then finish it with: {finish}"
    )


def live_jobs(
    paths: ProjectPaths,
    record: RunRecord | None,
    comment_prefix: str,
    jobs_root: Path,
    must_know: bool = False,
) -> list[slurm.FolderJob]:
    """The folder's live jobs, from the queue (none without sbatch).

    Where the controller does not answer, a record that says a Slurm run is under
    way holds the folder (its jobs may well be queued), as ``must_know`` does any.
    """
    if not slurm.available():
        return []
    try:
        return slurm.folder_jobs(jobs_root, comment_prefix)
    except slurm.ControllerUnreachableError as error:
        if must_know or (record and record.mode_is_slurm and record.state in UNDER_WAY):
            raise FolderBusyError(
                f"jobs of {paths.root} may still be in the queue, and Slurm does not answer "
                f"({error.said}): try again once it does (sinfo)"
            ) from None
        if record is not None and record.mode_is_slurm:
            logger.warning("could not ask Slurm for the jobs of %s: %s", paths.root, error.said)
        return []


def refuse_if_active(
    paths: ProjectPaths,
    record: RunRecord | None,
    *,
    comment_prefix: str = job_comment(Kind.RUN.value, ""),
    jobs_root: Path | None = None,
    ways: tuple[str, str, str] = ("volcano-gif watch", CANCEL_COMMAND, RESUME_COMMAND),
) -> None:
    """Raise FolderBusyError if a run is under way in this folder: a local run or a
    submission at work here, or jobs in the queue (one ``squeue --me``).

    ``ways`` are the commands that watch, cancel and finish the run; ``jobs_root`` is
    the folder its jobs were submitted from (the project's, for a reproduction).
    """
    holder = folder_holder(paths)
    if holder is not None:
        raise FolderBusyError(_busy_message(paths, holder, ways[2]))
    if record is not None and record.state is RunState.SUBMITTING:
        pid = submitter_alive(record)
        if pid is not None:
            raise FolderBusyError(
                f"run {record.run_id} is being submitted by process {pid} in {paths.root}: "
                "wait a moment and try again"
            )
    jobs = live_jobs(paths, record, comment_prefix, jobs_root or paths.root)
    if jobs:
        listed = ", ".join(f"{job.job_id} ({job.state})" for job in jobs)
        ids = ",".join(job.job_id for job in jobs)
        raise FolderBusyError(
            f"run {jobs[0].run_id} still has jobs in the queue: {listed}. One run per folder: "
            f"wait for them (squeue --me -j {ids}{f', or {ways[0]}' if record else ''}) or "
            f"cancel them ({ways[1]})"
        )


def claim_record(paths: ProjectPaths, *, resume: bool = False) -> RunRecord | None:
    """The folder's run record (required for ``resume``), once no other run is at work here.

    The queue is asked first: where the record is damaged, the run's live jobs are
    named, with the way to cancel them, before the damage is.
    """
    try:
        record = read_record(paths)
    except DamagedRecordError:
        refuse_if_active(paths, None)
        raise
    refuse_if_active(paths, record)
    return require_record(paths) if resume and record is None else record


def refuse_frames_of_other_runs(
    paths: ProjectPaths, parameters: Parameters, record: RunRecord | None
) -> None:
    """Refuse to overwrite complete frames that belong to another run, saying what they are."""
    others = frames_of_other_runs(paths.images, parameters.frame_count, parameters.size)
    if not others:
        return
    first = min(others)
    if record is None:
        way = f"no run recorded here made them: delete them ({RM_FRAMES})"
    elif run_is_complete(paths, record):
        way = f"run {record.run_id} is complete, so they are left over: delete them ({RM_FRAMES})"
    else:
        way = f"finish run {record.run_id} with {RESUME_COMMAND}"
    raise UsageError(
        f"images/ holds {len(others)} complete frames of another run, which this run of "
        f"{parameters.describe()} would overwrite ({paths.frame(first).name} "
        f"{others[first].rsplit(': ', 1)[0]}): {way}, or start over with --force"
    )
