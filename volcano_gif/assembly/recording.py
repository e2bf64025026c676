"""What the assembly writes in the run record (``output/run.json``): each outcome.

The record says ASSEMBLING when the assembly starts, FAILED (with the missing
frames and the sbatch options the resume needs) when it fails, and ASSEMBLED,
with every checksum, once the outputs are verified and before any frame is
deleted. A run that has no record (its jobs submitted with plain sbatch, say)
gets one when frames are missing, so that the resume command printed works for
it too. A record of another run is never changed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from volcano_gif.assembly.ffmpeg_commands import mp4_size
from volcano_gif.files import sha256_of
from volcano_gif.numbering import gif_size
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.record import (
    AssemblyMemory,
    Mode,
    OutputFile,
    Parameters,
    RecordError,
    RunRecord,
    RunState,
)
from volcano_gif.run.record import now as timestamp
from volcano_gif.run.record_store import new_record, read_record, update_record, write_record
from volcano_gif.task.task_timing import load_run_timings

logger = logging.getLogger(__name__)


def record_of_this_run(paths: ProjectPaths, parameters: Parameters) -> RunRecord | None:
    """The folder's run record, if it describes the frames being assembled."""
    try:
        record = read_record(paths)
    except RecordError as error:
        logger.warning("%s; assembling without updating it", error)
        return None
    if record is None:
        return None
    wanted = (record.parameters.frame_count, record.parameters.size)
    if wanted != (parameters.frame_count, parameters.size):
        logger.warning(
            "output/run.json describes run %s (%s), not these %s: left as it is",
            record.run_id,
            record.parameters.describe(),
            parameters.describe(),
        )
        return None
    return record


def record_started(paths: ProjectPaths, run_id: str) -> None:
    """The run is ASSEMBLING, in this job (if it is one); its last error is cleared."""
    job = os.environ.get("SLURM_JOB_ID")

    def started(record: RunRecord) -> None:
        record.assembly_job_id = job or record.assembly_job_id
        record.assembly_started = timestamp()
        record.error = None
        record.resume_options = []
        record.move_to(RunState.ASSEMBLING, "assembly started", f"job {job}" if job else "")

    update_record(paths, started, run_id)


def record_failure(
    paths: ProjectPaths, run_id: str, error: BaseException, missing: Sequence[int]
) -> None:
    """The run FAILED with ``error`` (its first line), ``missing`` frames and the resume's
    sbatch options; a record that cannot be written is warned of, never raised."""
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    needs = list(getattr(error, "resume_options", []))  # e.g. --mem=1024M after an OOM kill

    def failed(record: RunRecord) -> None:
        record.error = first_line
        record.missing_frames = list(missing)
        record.resume_options = needs
        record.ended = timestamp()
        record.move_to(RunState.FAILED, "assembly failed", first_line)

    try:
        update_record(paths, failed, run_id)
    except (OSError, RecordError) as record_error:
        logger.warning("could not record the failure in output/run.json: %s", record_error)


def adopt_unrecorded_run(
    paths: ProjectPaths, parameters: Parameters, missing: list[int], error: str
) -> None:
    """Write a record for a run that had none: failed, with its missing frames."""
    if paths.run_record.exists():  # another run's record: never overwritten
        return
    job = os.environ.get("SLURM_JOB_ID")
    record = new_record(Mode.SLURM if job else Mode.LOCAL, parameters, data_file=paths.data_file)
    record.submitter = None
    record.assembly_job_id = job
    record.error = error.splitlines()[0]
    record.missing_frames = missing
    record.ended = timestamp()
    record.move_to(RunState.FAILED, "assembly failed", f"a run with no record: {record.error}")
    try:
        write_record(paths, record)
    except (OSError, RecordError) as record_error:
        logger.warning("could not write output/run.json for --resume: %s", record_error)


def archived_record(record: RunRecord | None) -> Callable[[dict[str, str]], bytes] | None:
    """The run record as the archive keeps it: with the frames' checksums."""
    if record is None:
        return None

    def copy(digests: dict[str, str]) -> bytes:
        data = record.to_json()
        data["state"] = RunState.ASSEMBLING
        data["frames_sha256"] = {name.rsplit("/", 1)[-1]: sha for name, sha in digests.items()}
        return (json.dumps(data, indent=2) + "\n").encode()

    return copy


def record_success(
    paths: ProjectPaths,
    run_id: str,
    archive: Path,
    digests: dict[str, str],
    memory: AssemblyMemory,
) -> None:
    """Record the verified outputs, every checksum and the memory used, before any frame
    is deleted."""
    mp4_facts = _output_file(paths, paths.mp4)
    gif_facts = _output_file(paths, paths.gif)
    archive_facts = _output_file(paths, archive)

    def assembled(record: RunRecord) -> None:
        parameters = record.parameters
        mp4_facts.frames, (mp4_facts.width, mp4_facts.height) = (
            parameters.frame_count,
            mp4_size(parameters.size),
        )
        gif_facts.frames, (gif_facts.width, gif_facts.height) = (
            parameters.frame_count,
            gif_size(parameters.size, parameters.gif_width),
        )
        archive_facts.frames = parameters.frame_count
        record.outputs = {"mp4": mp4_facts, "gif": gif_facts, "archive": archive_facts}
        record.frames_sha256 = {
            name.rsplit("/", 1)[-1]: sha
            for name, sha in digests.items()
            if name.startswith("images/")
        }
        record.missing_frames = []
        record.error = None
        record.assembly_memory = memory
        _date_the_first_task(paths, record)
        record.ended = timestamp()
        record.move_to(
            RunState.ASSEMBLED,
            "assembled",
            f"{paths.relative(paths.gif)}, {paths.relative(archive)}",
        )

    update_record(paths, assembled, run_id)


def _date_the_first_task(paths: ProjectPaths, record: RunRecord) -> None:
    """A Slurm run started when the process of its first task did."""
    timings, _ = load_run_timings(paths.timing, record.array_job_ids(), record.run_id)
    if timings and record.mode_is_slurm:
        first = min(float(str(timing["process_start"])) for timing in timings)
        record.started = (
            datetime.fromtimestamp(first).astimezone().isoformat(timespec="milliseconds")
        )


def _output_file(paths: ProjectPaths, path: Path) -> OutputFile:
    return OutputFile(paths.relative(path), sha256_of(path), path.stat().st_size)
