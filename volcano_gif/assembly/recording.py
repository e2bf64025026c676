"""What the assembly writes in the run record (``output/run.json``): each outcome.

Which record is this run's, what the archive keeps of it, and what goes into it
once the outputs are verified, before any frame is deleted: every checksum and
the memory used. The moves (assembling, failed, assembled) are
:mod:`volcano_gif.run.lifecycle`'s. A record of another run is never changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from volcano_gif.assembly.ffmpeg_commands import mp4_size
from volcano_gif.files import sha256_of
from volcano_gif.numbering import gif_size
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import read_record, succeeded
from volcano_gif.run.record import (
    AssemblyMemory,
    OutputFile,
    Parameters,
    RecordError,
    RunRecord,
    RunState,
)
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


def archived_record(record: RunRecord | None) -> Callable[[dict[str, str]], bytes] | None:
    """The run record as the archive keeps it: with the frames' checksums."""
    if record is None:
        return None

    def copy(digests: dict[str, str]) -> bytes:
        data = record.to_json()
        data["state"] = RunState.ASSEMBLING
        data["frames_sha256"] = _by_frame_name(digests)
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
    files = {"mp4": paths.mp4, "gif": paths.gif, "archive": archive}
    facts = {name: _output_file(paths, path) for name, path in files.items()}

    def outputs(record: RunRecord) -> str:
        parameters = record.parameters
        sizes = {"mp4": mp4_size(parameters.size)}
        sizes["gif"] = gif_size(parameters.size, parameters.gif_width)
        for name, output in facts.items():
            output.frames = parameters.frame_count
            output.width, output.height = sizes.get(name, (None, None))
        record.outputs = facts
        record.frames_sha256 = _by_frame_name(digests)
        record.assembly_memory = memory
        _date_the_first_task(paths, record)
        return f"{paths.relative(paths.gif)}, {paths.relative(archive)}"

    succeeded(paths, run_id, outputs)


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


def _by_frame_name(digests: dict[str, str]) -> dict[str, str]:
    """The frames' SHA-256 by file name, from the archive's by member name."""
    return {
        name.rsplit("/", 1)[-1]: sha for name, sha in digests.items() if name.startswith("images/")
    }
