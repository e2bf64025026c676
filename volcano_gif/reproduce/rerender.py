"""``volcano-gif reproduce SOURCE``: render a past run's frames again, and compare them.

SOURCE is a run's archive, or its run record. The frames are rendered with the
run's recorded parameters in a folder of their own, ``output/reproduce/<run
id>/``: a project root with a copy of the data file, whose own
``output/run.json`` is the record of a run of kind ``reproduce`` that points at
the original. So a reproduction has its own lock and its own record, resumes
as a run does (the same command again renders only what is missing, then
compares; once compared, it prints the outcome again) and can be watched.
Nothing of the project's own run is touched: not ``images/``, not
``output/run.json``, not its outputs.

On Slurm the frames are rendered as an array, exactly as a run's are
(``generate_frames.slurm`` with ``--root``), and compared by a job that depends
on it (``compare_frames.slurm``, ``afterany``), both logging into the
reproduction's folder (:mod:`volcano_gif.reproduce.jobs`). With ``--local``, or
without sbatch, they are rendered on this machine's cores and compared here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from volcano_gif import slurm
from volcano_gif.arguments import EXIT_CANCELLED, EXIT_FAILURE
from volcano_gif.errors import UsageError
from volcano_gif.files import sha256_of, short_hostname, write_atomically
from volcano_gif.layout import DATA_FILE
from volcano_gif.local.runner import RunCancelledError, render_frames
from volcano_gif.paths import ProjectPaths
from volcano_gif.reproduce.compare import compare_reproduction, finish_hint, print_outcome
from volcano_gif.reproduce.jobs import submit_jobs
from volcano_gif.reproduce.source import Source, load_source
from volcano_gif.run.guard import FolderBusyError, check_writable, folder_holder, holding_folder
from volcano_gif.run.record import (
    Kind,
    Mode,
    Reproduction,
    RunRecord,
    RunState,
    check_run_id,
    now,
)
from volcano_gif.run.record_store import (
    new_record,
    read_record,
    require_record,
    update_record,
    write_record,
)
from volcano_gif.submit.watch import FIRST_INTERVAL, LAST_INTERVAL, watch_run
from volcano_gif.task.frames import check_frames
from volcano_gif.task.main import use_project_matplotlib_cache
from volcano_gif.task.task_timing import remove_other_runs_timings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """How to reproduce: what ``volcano-gif reproduce`` was given besides SOURCE."""

    local: bool = False
    frames_per_task: int | None = None  # default: the original run's
    force: bool = False  # render every frame again, in a new reproduction
    watch: bool = False
    sbatch_options: list[str] = field(default_factory=list)  # after --, for both jobs
    command: list[str] | None = None  # as given, for the record


def scratch_of(paths: ProjectPaths, run_id: str) -> ProjectPaths:
    """The reproduction folder of run ``run_id`` in the project ``paths``."""
    return ProjectPaths(paths.reproductions / check_run_id(run_id))


def reproduce(paths: ProjectPaths, source_path: Path, options: Options) -> int:
    """Render the run that ``source_path`` describes again, compare, report; an exit code.

    0 only when every frame is identical (or, on Slurm without ``--watch``,
    once both jobs are submitted: the same command prints the outcome later).
    """
    if options.watch and options.local:
        raise UsageError("--watch follows Slurm jobs; a reproduction here shows its progress")
    if any("\n" in option for option in options.sbatch_options):
        raise UsageError("sbatch options after -- must not contain line breaks")
    source = load_source(source_path, paths)
    for note in source.notes:
        logger.info("%s", note)
    original = source.record
    scratch = scratch_of(paths, original.run_id)
    check_writable(scratch.output)
    use_project_matplotlib_cache(scratch)
    record = _reproduction_so_far(scratch, original.run_id)
    if record is not None and _compared_already(record, source) and not options.force:
        logger.info(
            "run %s was reproduced already (run %s, compared %s); its outcome follows "
            "(--force renders it again)",
            original.run_id,
            record.run_id,
            record.reproduces and record.reproduces.compared,
        )
        return print_outcome(scratch, record)
    local = options.local or not slurm.available()
    if local and not options.local:
        logger.info("sbatch not found; rendering on this machine")
    previous = None if options.force else record  # a reproduction to resume
    with holding_folder(scratch, "a reproduction"):
        _copy_data(paths, scratch, previous)
        if local:
            record, todo = _begin(scratch, source, previous, options, mode=Mode.LOCAL)
            return _render_here(scratch, record, todo, options.force)
        _start_on_slurm(paths, scratch, source, previous, options)
    if options.watch:
        return watch_reproduction(scratch)
    logger.info(
        "follow it with: volcano-gif watch --root %s; then this command again prints the outcome",
        scratch.root,
    )
    return 0


def _reproduction_so_far(scratch: ProjectPaths, run_id: str) -> RunRecord | None:
    """The record in ``scratch``, if any: of a reproduction of run ``run_id``, none busy."""
    record = read_record(scratch)
    if record is not None and (record.reproduces is None or record.reproduces.run_id != run_id):
        raise UsageError(
            f"{scratch.run_record} is not a reproduction of run {run_id}: move it away"
        )
    _refuse_if_busy(scratch, record, run_id)
    return record


def _compared_already(record: RunRecord, source: Source) -> bool:
    """True if ``record`` compared its frames already, with the same source."""
    return (
        record.state is RunState.COMPARED
        and record.reproduces is not None
        and (
            (record.reproduces.source, record.reproduces.source_sha256)
            == (str(source.path), source.sha256)
        )
    )


def _start_on_slurm(
    paths: ProjectPaths,
    scratch: ProjectPaths,
    source: Source,
    previous: RunRecord | None,
    options: Options,
) -> None:
    """Begin (or resume) the reproduction's record, and submit its jobs."""
    config = _cluster()
    record, todo = _begin(
        scratch, source, previous, options, mode=Mode.SLURM, slurm_version=config.version
    )
    submit_jobs(
        paths,
        scratch,
        record,
        todo,
        config=config,
        sbatch_options=options.sbatch_options,
        force=options.force,
        resumed=previous is not None,
    )


def _cluster() -> slurm.ClusterConfig:
    try:
        return slurm.read_config()
    except slurm.ControllerUnreachableError as error:
        said = str(error).split(";", 1)[0]
        raise slurm.ControllerUnreachableError(
            f"{said}; check the cluster with `sinfo`, or reproduce on this machine with --local"
        ) from None


def _refuse_if_busy(scratch: ProjectPaths, record: RunRecord | None, run_id: str) -> None:
    """One reproduction of a run at a time: refuse while one renders here or has jobs queued."""
    holder = folder_holder(scratch)
    if holder is not None:
        pid = holder.split()[0]
        raise FolderBusyError(
            f"a reproduction of run {run_id} is under way in {scratch.root} (pid {pid}): wait "
            f"for it to end, or stop it (kill {pid}); this command then finishes it"
        )
    if record is None or not record.mode_is_slurm or not record.job_ids() or not slurm.available():
        return
    try:
        queued = slurm.queued_jobs(record.job_ids())
    except slurm.ControllerUnreachableError as error:
        logger.warning(
            "could not ask Slurm whether reproduction %s still has jobs queued: %s",
            record.run_id,
            error,
        )
        return
    if queued:
        ordered = sorted(queued.items(), key=lambda item: int(item[0]))
        jobs = ", ".join(f"{job} ({state})" for job, state in ordered)
        raise FolderBusyError(
            f"reproduction {record.run_id} of run {run_id} still has jobs in the queue: {jobs}; "
            f"wait for them (volcano-gif watch --root {scratch.root}) or cancel them "
            f"(volcano-gif cancel --root {scratch.root})"
        )


def _copy_data(paths: ProjectPaths, scratch: ProjectPaths, resumed: RunRecord | None) -> None:
    """Copy the project's data file into the reproduction folder (atomically).

    A reproduction resumed with another data file would mix frames of two: refused.
    """
    from volcano_gif.task.data import load_grid

    load_grid(paths.data_file)  # one line if it is missing or broken
    content = paths.data_file.read_bytes()
    if resumed is not None and resumed.data_sha256 not in {None, sha256_of(paths.data_file)}:
        raise UsageError(
            f"{DATA_FILE} changed since reproduction {resumed.run_id} started: its frames would "
            "come from two data files; render them all again with --force"
        )
    scratch.data_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(scratch.data_file, lambda temporary: temporary.write_bytes(content))


def _begin(
    scratch: ProjectPaths,
    source: Source,
    record: RunRecord | None,
    options: Options,
    *,
    mode: Mode,
    slurm_version: str | None = None,
) -> tuple[RunRecord, list[int] | None]:
    """Write the reproduction's record, new or resumed; return it and the frames to render
    (None: every frame)."""
    origin = Reproduction(
        source.record.run_id,
        str(source.path),
        source.sha256,
        str(source.archive.path) if source.archive else None,
    )
    submitter = {"host": short_hostname(), "pid": os.getpid()}
    if record is None:
        recorded = source.record.parameters
        frames_per_task = options.frames_per_task or recorded.frames_per_task
        parameters = dataclasses.replace(
            recorded,
            frames_per_task=frames_per_task if mode is Mode.SLURM else 1,
            max_running=None,
        )
        record = new_record(
            mode,
            parameters,
            slurm_version,
            data_file=scratch.data_file,
            command=options.command,
            kind=Kind.REPRODUCE,
        )
        record.reproduces, record.submitter = origin, submitter
        record.note("reproduces", f"run {origin.run_id}, from {origin.source}")
        if mode is Mode.LOCAL:
            record.move_to(RunState.RENDERING, "rendering", "locally")
            record.submitted = record.started = now()
        write_record(scratch, record)
        remove_other_runs_timings(scratch.timing, record.run_id)  # a new reproduction's own
        return record, None
    todo = sorted(
        check_frames(scratch.images, record.parameters.frame_count, record.parameters.size)
    )

    def resumed(current: RunRecord) -> None:
        current.mode, current.submitter, current.reproduces = mode, submitter, origin
        if options.frames_per_task and mode is Mode.SLURM:
            current.parameters.frames_per_task = options.frames_per_task
        state = RunState.SUBMITTING if mode is Mode.SLURM else RunState.RENDERING
        current.move_to(state, "resumed", f"{len(todo)} frames to render, from {origin.source}")

    return update_record(scratch, resumed, record.run_id) or record, todo


def _render_here(
    scratch: ProjectPaths, record: RunRecord, todo: list[int] | None, force: bool
) -> int:
    parameters = record.parameters
    try:
        render_frames(
            scratch,
            parameters.frame_count,
            frames=todo,
            size=parameters.size,
            force=force,
            run_id=record.run_id,
        )
    except RunCancelledError:

        def cancelled(current: RunRecord) -> None:
            current.move_to(RunState.CANCELLED, "cancelled", "stopped; rendered frames kept")

        update_record(scratch, cancelled, record.run_id)
        logger.warning(
            "stopped: the frames rendered so far are kept; %s",
            finish_hint(scratch, _origin(record)).replace("\n", " "),
        )
        return EXIT_CANCELLED
    return compare_reproduction(scratch)


def _origin(record: RunRecord) -> Reproduction:
    if record.reproduces is None:
        raise UsageError(f"run {record.run_id} is not a reproduction")
    return record.reproduces


# ---------------------------------------------------------------------------- watch
def watch_reproduction(
    scratch: ProjectPaths,
    first_interval: float = FIRST_INTERVAL,
    last_interval: float = LAST_INTERVAL,
    *,
    jobs: str | None = None,
) -> int:
    """Follow a reproduction's jobs to their end, then print its outcome."""
    return watch_run(
        scratch, first_interval, last_interval, jobs=jobs, judge=judge, dependent="compare job"
    )


def judge(scratch: ProjectPaths, run_id: str, out: TextIO) -> int:
    """How a reproduction ended: its outcome (0 if identical), or what is wrong and the fix."""
    record = require_record(scratch)
    if record.run_id == run_id and record.state is RunState.COMPARED:
        return print_outcome(scratch, record)
    problem = record.error or f"it ended in state {record.state}"
    print(f"reproduction {run_id} did not compare its frames: {problem}", file=out)
    if record.missing_frames:
        missing = record.missing_frames
        print(
            f"  missing frames: {', '.join(map(str, missing[:20]))}"
            + (" ..." if len(missing) > 20 else ""),
            file=out,
        )
    print(finish_hint(scratch, _origin(record)), file=out)
    return EXIT_FAILURE
