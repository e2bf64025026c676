"""Turn the rendered frames into an MP4, a GIF and a verified archive.

The order is what keeps frames safe:

1. every expected frame must exist, decode and be this run's frame (its PNG
   label says so), or nothing happens at all;
2. the MP4, the GIF and the archive are written to temporary names (the two
   encodes run concurrently with the archive);
3. all three are read back: the archive member by member against the frames'
   SHA-256, the MP4 and the GIF frame by frame (count and size);
4. only then are the outputs renamed into place, the run record updated with
   every checksum, and each frame deleted that is still what the archive holds.

A failure at any step (SIGTERM included) leaves every frame where it was, no
temporary file, and the record saying why (:mod:`volcano_gif.run.lifecycle`).
The outputs are written and read back by :mod:`volcano_gif.assembly.outputs`.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from volcano_gif import slurm
from volcano_gif.assembly.archive import archive_path, member_name
from volcano_gif.assembly.latency import unready_frames
from volcano_gif.assembly.outputs import verify_outputs, write_outputs
from volcano_gif.assembly.recording import archived_record, record_of_this_run, record_success
from volcano_gif.files import (
    remove_stale_temporaries,
    sha256_of,
    temporary_beside,
    temporary_target,
)
from volcano_gif.layout import (
    ARCHIVE_PREFIX,
    DEFAULT_SIZE,
    GIF_NAME,
    MP4_NAME,
    RESUME_COMMAND,
    frame_number,
    job_comment,
)
from volcano_gif.numbering import expected_frames
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.failures import Kill, fix_options, kills
from volcano_gif.run.guard import FolderBusyError, live_jobs
from volcano_gif.run.lifecycle import (
    adopt,
    complete_line,
    recording_failures,
    run_is_complete,
    started,
    stop_on_signals,
)
from volcano_gif.run.record import UNDER_WAY, AssemblyMemory, Kind, Parameters, RunRecord
from volcano_gif.stage_times import StageTimes, peak_memory_mib
from volcano_gif.task.task_timing import requested_memory_mib

logger = logging.getLogger(__name__)

#: Frames listed one per line in a missing-frames error; the rest are counted.
LISTED_PROBLEMS = 20


def resume_hint(paths: ProjectPaths, options: Sequence[str] = ()) -> str:
    """The one command that finishes a run with missing frames, however it was started.

    ``options`` are the sbatch options its failure needs (``--mem=1024M``).
    """
    command = RESUME_COMMAND + (" -- " + " ".join(options) if options else "")
    return (
        "finish the run with one command, from the project folder:\n"
        f"  cd {shlex.quote(str(paths.root))} && {command}\n"
        "(it renders only these frames, as one array on Slurm or here for a local run, "
        "then assembles again)"
    )


class FramesNotReadyError(RuntimeError):
    """Some expected frames are missing, broken, or another run's.

    ``kills`` are the run's array tasks that Slurm ended for want of memory or
    time: named after the frames, and their fix goes into the resume command.
    """

    def __init__(
        self, problems: dict[int, str], frame_count: int, hint: str, kills: Sequence[Kill] = ()
    ) -> None:
        self.problems = problems
        self.resume_options = fix_options(kills)
        frames = sorted(problems)
        listed = "\n".join(
            f"  frame {frame}: {problems[frame]}" for frame in frames[:LISTED_PROBLEMS]
        )
        more = len(frames) - LISTED_PROBLEMS
        if more > 0:
            listed += f"\n  ... and {more} more"
        listed += "".join(f"\n  {kill.line()}" for kill in kills)
        super().__init__(
            f"{len(problems)} of {frame_count} frames are missing or broken "
            f"({_short_list(frames)}); nothing was assembled and no frame was deleted\n"
            f"{listed}\n{hint}"
        )


def _short_list(frames: list[int], limit: int = 12) -> str:
    shown = ", ".join(str(frame) for frame in frames[:limit])
    return shown + (f", ... ({len(frames) - limit} more)" if len(frames) > limit else "")


@dataclass(frozen=True)
class AssemblyResult:
    """What an assembly wrote."""

    mp4: Path
    gif: Path
    archive: Path
    frames_deleted: int
    unexpected_files: list[Path] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)


def unexpected_files(images_dir: Path, frame_count: int) -> list[Path]:
    """Files in ``images_dir`` that are neither frames of this run nor our temporaries."""
    expected = set(expected_frames(frame_count))
    return sorted(
        path
        for path in images_dir.iterdir()
        if path.name != ".gitkeep"
        and frame_number(path.name) not in expected
        and temporary_target(path.name) is None
    )


def assemble(
    paths: ProjectPaths,
    frame_count: int,
    gif_width: int | None = None,
    now: datetime | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    latency_wait: float = 0.0,
) -> AssemblyResult:
    """Check the frames, write MP4, GIF and archive, verify all three, then delete the frames.

    ``gif_width`` defaults to 400 pixels (or the frame width, if narrower);
    ``now`` dates the archive's name. Frames missing at the first look are
    looked for again for ``latency_wait`` seconds (a shared filesystem's delay).
    """
    parameters = Parameters.of(frame_count, size, gif_width)
    record = record_of_this_run(paths, parameters)
    if record is not None and run_is_complete(paths, record):
        return complete_run(paths, record, "assemble")
    if record is not None and record.state in UNDER_WAY:  # by hand, while its jobs wait?
        mine, prefix = os.environ.get("SLURM_JOB_ID"), job_comment(Kind.RUN.value, record.run_id)
        if waiting := [
            job.job_id for job in live_jobs(paths, record, prefix, paths.root) if job.job_id != mine
        ]:
            raise FolderBusyError(
                f"run {record.run_id} has jobs in the queue ({', '.join(waiting)}): its own "
                "assembly job will assemble it; nothing was done (follow it: volcano-gif watch)"
            )
    if record is None:  # jobs of one's own: a failure writes a record, for --resume
        with stop_on_signals():
            try:
                return _assemble(paths, parameters, None, now or datetime.now(), latency_wait)
            except FramesNotReadyError as error:
                adopt(paths, parameters, sorted(error.problems), str(error))
                raise
    started(paths, record.run_id)
    with recording_failures(paths, record.run_id):
        return _assemble(paths, parameters, record, now or datetime.now(), latency_wait)


def complete_run(paths: ProjectPaths, record: RunRecord, left: str) -> AssemblyResult:
    """A complete run's outputs, for a command that has nothing ``left`` to do: it says so."""
    logger.info("%s", complete_line(record, left))
    mp4, gif, archive = (paths.root / record.outputs[key].path for key in ("mp4", "gif", "archive"))
    return AssemblyResult(mp4, gif, archive, frames_deleted=0)


def _assemble(
    paths: ProjectPaths,
    parameters: Parameters,
    record: RunRecord | None,
    when: datetime,
    latency_wait: float,
) -> AssemblyResult:
    times = StageTimes()
    frames, extras = _checked_frames(paths, parameters, record, latency_wait, times)
    archive, digests = _outputs_in_place(
        paths, parameters, record, frames=frames, when=when, times=times
    )
    memory = _memory_used(times)
    if record is not None:
        record_success(paths, record.run_id, archive, digests, memory)
    deleted = _delete_frames(paths, frames, archive, digests, times)
    logger.info("assembly stages: %s", times.summary())
    return AssemblyResult(paths.mp4, paths.gif, archive, deleted, extras, times)


def _checked_frames(
    paths: ProjectPaths,
    parameters: Parameters,
    record: RunRecord | None,
    latency_wait: float,
    times: StageTimes,
) -> tuple[list[Path], list[Path]]:
    """Step 1: every expected frame is there, decodes and is this run's, or nothing happens.

    Returns the frames, and the other files beside them (left alone).
    """
    images, frame_count = paths.images, parameters.frame_count
    with times.stage("check"):
        problems = unready_frames(images, frame_count, parameters.size, latency_wait)
    if problems:
        found = _kills_of_the_array(record)
        hint = resume_hint(paths, fix_options(found))
        raise FramesNotReadyError(problems, frame_count, hint, found)
    logger.info("checked %d frames: all there, complete, of this run", frame_count)
    frames = [paths.frame(frame) for frame in expected_frames(frame_count)]
    extras = unexpected_files(images, frame_count)
    for path in extras:
        logger.warning("left alone, not a frame of this %d-frame run: %s", frame_count, path)
    return frames, extras


def _outputs_in_place(
    paths: ProjectPaths,
    parameters: Parameters,
    record: RunRecord | None,
    *,
    frames: list[Path],
    when: datetime,
    times: StageTimes,
) -> tuple[Path, dict[str, str]]:
    """Steps 2 to 4: the outputs written under temporary names, read back, renamed into
    place; returns the archive and its members' SHA-256."""
    for folder in (paths.gifs, paths.archives):
        folder.mkdir(parents=True, exist_ok=True)
    archive = archive_path(paths.archives, when)
    outputs = {target: temporary_beside(target) for target in (paths.mp4, paths.gif, archive)}
    try:
        digests = write_outputs(
            paths,
            parameters,
            archived_record(record),
            frames=frames,
            outputs=outputs,
            archive=archive,
            times=times,
        )
        logger.info("wrote the MP4, the GIF and the archive; reading all three back")
        with times.stage("verify"):
            facts = verify_outputs(paths, parameters, outputs, archive, digests)
        for target, temporary in outputs.items():
            temporary.replace(target)
    finally:
        for temporary in outputs.values():
            temporary.unlink(missing_ok=True)
    logger.info("verified %s", ", ".join(facts.values()))
    return archive, digests


def _memory_used(times: StageTimes) -> AssemblyMemory:
    """The peaks of the assembly's processes, and what its job asked for."""
    times.peak("python", peak_memory_mib())
    memory = AssemblyMemory(dict(times.peaks_mib), requested_memory_mib())
    logger.info(
        "peak memory: %s%s",
        times.memory_summary(),
        (f"; the job asked for {memory.requested_mib:.0f} MiB" if memory.requested_mib else ""),
    )
    return memory


def _delete_frames(
    paths: ProjectPaths,
    frames: list[Path],
    archive: Path,
    digests: dict[str, str],
    times: StageTimes,
) -> int:
    """Step 4's end: each frame that is still what the verified archive holds (its SHA-256
    read again right before it goes) is deleted; one that changed or went is left and said so.
    So are what killed tasks and assemblies left."""
    changed = []
    with times.stage("clean"):
        for path in frames:
            try:
                unchanged = sha256_of(path) == digests[member_name(path)]
            except FileNotFoundError:
                unchanged = False
            if unchanged:
                path.unlink()
            else:
                changed.append(path)
        stale = _remove_stale_temporaries(paths)
    for path in changed:
        logger.warning(
            "left %s: it changed since it was archived, so it is not in the archive", path
        )
    logger.info(
        "deleted the %d frames, now in %s%s",
        len(frames) - len(changed),
        paths.relative(archive),
        f"; removed {len(stale)} temporary files of interrupted tasks" if stale else "",
    )
    return len(frames) - len(changed)


def _kills_of_the_array(record: RunRecord | None) -> list[Kill]:
    """The latest array's tasks that Slurm ended for memory or time (one squeue call)."""
    latest = record.latest if record is not None and record.mode_is_slurm else None
    if latest is None or latest.array_job_id is None or not slurm.available():
        return []
    try:
        return kills(slurm.job_lines([latest.array_job_id]))
    except slurm.SlurmError as error:
        logger.warning("could not ask Slurm how the array's tasks ended: %s", error)
        return []


def _remove_stale_temporaries(paths: ProjectPaths) -> list[Path]:
    """Remove what killed tasks and assemblies left: only our own temporary names."""
    return [
        *remove_stale_temporaries(paths.images, lambda name: frame_number(name) is not None),
        *remove_stale_temporaries(paths.gifs, lambda name: name in {MP4_NAME, GIF_NAME}),
        *remove_stale_temporaries(paths.archives, lambda name: name.startswith(ARCHIVE_PREFIX)),
    ]
