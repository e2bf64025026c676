"""The run record's file, ``output/run.json``: a new run's record, read, written and updated.

Every change is a read-modify-write under a short lock (:func:`update_record`),
and each write is atomic, so the file is valid JSON at every moment and no
update is lost. What a record holds, and the moves between its states, are
:mod:`volcano_gif.run.record`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from volcano_gif.errors import UsageError
from volcano_gif.files import sha256_of, short_hostname, write_json_atomically
from volcano_gif.layout import RUN_RECORD
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.record import (
    Kind,
    Mode,
    Parameters,
    RecordError,
    RunRecord,
    RunState,
    new_run_id,
    now,
)


class NoRecordError(RecordError, UsageError):
    """There is no run record to resume or cancel: bad input (exit 2), as the usage is."""


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
    """A new run's record (``run_id``: a new one if not given); ``data_file`` (its
    SHA-256 is kept) and ``command`` as given."""
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
        submitter={
            "host": short_hostname(),
            "pid": os.getppid() if mode is Mode.SLURM else os.getpid(),
        },
    )
    what = "run" if kind is Kind.RUN else "reproduction"
    record.note("created", f"{mode.value} {what} of {parameters.describe()}")
    return record


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
    except (json.JSONDecodeError, RecordError) as error:
        raise RecordError(
            f"{paths.run_record}: not a run record of this version ({error}); "
            f"move it away to start a new run"
        ) from None


def require_record(paths: ProjectPaths) -> RunRecord:
    record = read_record(paths)
    if record is None:
        raise NoRecordError(
            f"there is no run record ({RUN_RECORD}) in {paths.root}: nothing to resume or "
            "cancel; start a run with: bash submit-gif-job"
        )
    return record


def write_record(paths: ProjectPaths, record: RunRecord) -> None:
    """Write ``record`` atomically (callers that read first use :func:`updating`)."""
    paths.output.mkdir(parents=True, exist_ok=True)
    write_json_atomically(paths.run_record, record.to_json())


@contextlib.contextmanager
def record_lock(paths: ProjectPaths) -> Iterator[None]:
    """Hold the record's lock: one read-modify-write at a time, across processes."""
    paths.output.mkdir(parents=True, exist_ok=True)
    with open(paths.record_lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_record(
    paths: ProjectPaths, change: Callable[[RunRecord], None], run_id: str | None = None
) -> RunRecord | None:
    """Apply ``change`` to the record on disk and write it back, under the lock.

    With ``run_id``, only a record of that run is changed (a newer run in the
    folder is left alone). Returns the record written, or None if none was.
    """
    with record_lock(paths):
        record = read_record(paths)
        if record is None or (run_id is not None and record.run_id != run_id):
            return None
        change(record)
        record.updated = now()
        write_record(paths, record)
        return record


def run_is_complete(paths: ProjectPaths, record: RunRecord) -> bool:
    """True if the run was assembled and its outputs are on disk, checksums intact."""
    return record.state == RunState.ASSEMBLED and outputs_verified(paths, record)


def outputs_verified(paths: ProjectPaths, record: RunRecord) -> bool:
    """True if every output in the record is on disk with its recorded checksum."""
    if set(record.outputs) != {"mp4", "gif", "archive"}:
        return False
    for output in record.outputs.values():
        path = paths.root / output.path
        if not path.is_file() or sha256_of(path) != output.sha256:
            return False
    return True
