"""One run per folder.

A local run holds an OS file lock (``fcntl.flock`` on ``output/.folder.lock``)
for its whole length; the OS drops it when the process ends, however it ends,
so a crash never leaves a stale lock behind. A Slurm run holds the folder while
its jobs are queued or running: ``squeue`` is asked once, for every job id in
the run record. A second run in the same folder is refused with a one-line
message that names what holds it and how to wait for it or stop it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from volcano_gif import slurm
from volcano_gif.errors import UsageError
from volcano_gif.files import short_hostname
from volcano_gif.layout import RESUME_COMMAND, SUBMIT_SCRIPT
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.record import Parameters, RunRecord, RunState
from volcano_gif.task.frames import frames_of_other_runs

logger = logging.getLogger(__name__)


class FolderBusyError(RuntimeError):
    """Another run holds this folder: a failure to run now (exit 1), not bad input."""


def check_writable(folder: Path) -> None:
    """Raise a one-line UsageError unless a run can write files in ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(
            f"cannot write in {folder}: {error.strerror or error}; "
            "run from a folder you can write to"
        ) from None


def _open_lock(paths: ProjectPaths) -> IO[str]:
    try:
        paths.output.mkdir(parents=True, exist_ok=True)
        return open(paths.folder_lock, "a+", encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"cannot write in {paths.output}: {error.strerror or error}; "
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


def _busy_message(paths: ProjectPaths, holder: str) -> str:
    pid, _, rest = holder.partition(" ")
    _, _, what = rest.partition(" ")
    return (
        f"{what or 'another run'} (pid {pid}) is under way in {paths.root}: wait for it to end, "
        f"or stop it (Ctrl-C in its terminal, or kill {pid}), then finish it with: "
        f"{RESUME_COMMAND}"
    )


def refuse_if_active(paths: ProjectPaths, record: RunRecord | None) -> None:
    """Raise FolderBusyError if a run is under way in this folder.

    Asks ``squeue`` once, for every job id in the record, when the record is a
    Slurm run's and sbatch is here.
    """
    holder = folder_holder(paths)
    if holder is not None:
        raise FolderBusyError(_busy_message(paths, holder))
    if record is None or not record.mode_is_slurm:
        return
    submitter = record.submitter or {}
    if (
        record.state == RunState.SUBMITTING
        and submitter.get("host") == short_hostname()
        and _alive(submitter.get("pid"))
    ):
        raise FolderBusyError(
            f"run {record.run_id} is being submitted by process {submitter.get('pid')} "
            f"in {paths.root}: wait a moment and try again"
        )
    if not slurm.available() or not record.job_ids():
        return
    try:
        queued = slurm.queued_jobs(record.job_ids())
    except slurm.ControllerUnreachableError as error:
        logger.warning(
            "could not ask Slurm whether run %s still has jobs queued: %s", record.run_id, error
        )
        return
    if queued:
        # In job id order: squeue's own order depends on the site's priority plugin.
        ordered = sorted(queued.items(), key=lambda item: int(item[0]))
        jobs = ", ".join(f"{job} ({state})" for job, state in ordered)
        ids = ",".join(job for job, _ in ordered)
        raise FolderBusyError(
            f"run {record.run_id} still has jobs in the queue: {jobs}. One run per folder: "
            f"wait for them (squeue --me -j {ids}, or volcano-gif watch) or cancel them "
            f"(bash {SUBMIT_SCRIPT} --cancel)"
        )


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def refuse_frames_of_other_runs(paths: ProjectPaths, parameters: Parameters) -> None:
    """Refuse to overwrite complete frames that belong to another run."""
    others = frames_of_other_runs(paths.images, parameters.frame_count, parameters.size)
    if others:
        first = min(others)
        raise UsageError(
            f"images/ holds {len(others)} complete frames of another run, which this run of "
            f"{parameters.describe()} would overwrite (frame {first} {others[first]}): finish "
            f"that run with {RESUME_COMMAND}, or start over with --force"
        )
