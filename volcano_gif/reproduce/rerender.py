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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from volcano_gif import slurm
from volcano_gif.arguments import EXIT_CANCELLED, EXIT_FAILURE
from volcano_gif.errors import UsageError
from volcano_gif.files import sha256_of, write_atomically
from volcano_gif.layout import DATA_FILE, job_comment
from volcano_gif.local.runner import RunCancelledError, render_run
from volcano_gif.paths import ProjectPaths
from volcano_gif.reproduce.compare import (
    compare_reproduction,
    finish_hint,
    print_outcome,
    project_of,
)
from volcano_gif.reproduce.jobs import submit_jobs
from volcano_gif.reproduce.source import Source, load_source
from volcano_gif.run import lifecycle
from volcano_gif.run.guard import check_writable, holding_folder, refuse_if_active
from volcano_gif.run.lifecycle import read_record, require_record
from volcano_gif.run.record import Kind, Mode, Reproduction, RunRecord, RunState, check_run_id
from volcano_gif.submit.options import check_sbatch_extra
from volcano_gif.submit.watch import FIRST_INTERVAL, LAST_INTERVAL, say_what_failed, watch_run
from volcano_gif.task.frames import check_frames
from volcano_gif.task.main import use_project_matplotlib_cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """How to reproduce: what ``volcano-gif reproduce`` was given besides SOURCE."""

    local: bool = False
    frames_per_task: int | None = None  # default: the original run's
    force: bool = False  # render every frame again, in a new reproduction
    watch: bool = False
    sbatch_options: list[str] = field(default_factory=list)  # after --, for both jobs
    command_line: list[str] | None = None  # as given, for the record


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
    check_sbatch_extra(options.sbatch_options)
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
    with holding_folder(scratch, f"a reproduction of run {original.run_id}"):
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
    """The record in ``scratch``, if any: of a reproduction of run ``run_id``, none busy.

    One reproduction of a run at a time: refused while one renders here, or its jobs
    (submitted from the project, their comment naming the run) are in the queue.
    """
    record = read_record(scratch)
    if record is not None and (record.reproduces is None or record.reproduces.run_id != run_id):
        raise UsageError(
            f"{scratch.run_record} is not a reproduction of run {run_id}: move it away"
        )
    where = f"--root {scratch.root}"
    refuse_if_active(
        scratch,
        record,
        comment_prefix=job_comment(Kind.REPRODUCE.value, run_id),
        jobs_root=project_of(scratch).root,
        ways=(f"volcano-gif watch {where}", f"volcano-gif cancel {where}", "this command"),
    )
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
    if record is None:
        recorded = source.record.parameters
        frames_per_task = options.frames_per_task or recorded.frames_per_task
        parameters = dataclasses.replace(
            recorded,
            frames_per_task=frames_per_task if mode is Mode.SLURM else 1,
            max_running=None,
        )
        new = lifecycle.begin(
            scratch,
            mode,
            parameters,
            slurm_version=slurm_version,
            command=options.command_line,
            reproduces=origin,
        )
        return new, None
    todo = sorted(
        check_frames(scratch.images, record.parameters.frame_count, record.parameters.size)
    )

    def again(current: RunRecord) -> None:
        current.reproduces = origin
        if options.frames_per_task and mode is Mode.SLURM:
            current.parameters.frames_per_task = options.frames_per_task

    detail = f"{len(todo)} frames to render, from {origin.source}"
    return lifecycle.resume(scratch, record, mode, detail, change=again), todo


def _render_here(
    scratch: ProjectPaths, record: RunRecord, todo: list[int] | None, force: bool
) -> int:
    finish = finish_hint(scratch, record).replace("\n", " ")
    try:
        render_run(scratch, record, todo, force=force, finish=finish)
    except RunCancelledError:
        return EXIT_CANCELLED
    return compare_reproduction(scratch)


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
    say_what_failed(record, "reproduction", "did not compare its frames", out)
    print(finish_hint(scratch, record), file=out)
    return EXIT_FAILURE
