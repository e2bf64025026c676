"""Everything ``submit-gif-job`` does before its two ``sbatch`` calls.

The script runs ``python -m volcano_gif plan-submission PLAN_DIR [options]``
first. That checks the options, the data, the folder and the queue (one run per
folder), and does whatever needs no submission itself: ``--help``, a run on this
machine (``--local``, or no sbatch), ``--dry-run``, ``--cancel``, a ``--resume``
of a complete run. Otherwise it begins the run (``submitting``) and writes the
plan (:mod:`volcano_gif.submit.plan_files`); after the sbatch calls,
:mod:`volcano_gif.submit.record_submission` records what they did.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from volcano_gif import slurm
from volcano_gif.arguments import EXIT_USAGE
from volcano_gif.errors import UsageError
from volcano_gif.layout import (
    ARRAY_SCRIPT,
    ASSEMBLY_SCRIPT,
    DEFAULT_FRAME_COUNT,
    DEFAULT_SIZE,
    RUN_RECORD,
    SUBMIT_SCRIPT,
    job_comment,
)
from volcano_gif.numbering import compress_ranges, format_size, gif_size
from volcano_gif.paths import ProjectPaths
from volcano_gif.run import guard, lifecycle
from volcano_gif.run import record as run_record
from volcano_gif.run.cancel import cancel_run
from volcano_gif.run.record import Kind, Mode, Parameters, RunRecord, Submission
from volcano_gif.submit import options, plan, plan_files
from volcano_gif.submit.options import PROG
from volcano_gif.submit.plan import ArrayPlan
from volcano_gif.task.frames import check_frames, frames_on_disk

logger = logging.getLogger(__name__)


def _parameters(args: argparse.Namespace) -> Parameters:
    return Parameters.of(
        args.frames or DEFAULT_FRAME_COUNT,
        args.size or DEFAULT_SIZE,
        args.gif_width,
        args.frames_per_task or 1,
        args.max_running,
    )


# ------------------------------------------------------------------------ plan
def plan_main(argv: Sequence[str]) -> int:
    """``python -m volcano_gif plan-submission PLAN_DIR [submit-gif-job options]``."""
    if not argv:
        print(f"{PROG}: error: plan-submission needs the plan folder", file=sys.stderr)
        return EXIT_USAGE
    plan_dir, own_and_extra = Path(argv[0]), argv[1:]
    own, extra = options.split_extra(own_and_extra)
    args = options.build_parser().parse_args(own)
    args.command_line = [PROG, *own_and_extra]  # for the record
    options.configure_logging()
    options.check_combinations(args, extra)  # reported by arguments.guarded, as everywhere
    return _plan(ProjectPaths(Path.cwd()), args, extra, plan_dir)


def _plan(paths: ProjectPaths, args: argparse.Namespace, extra: list[str], plan_dir: Path) -> int:
    if args.cancel:
        return cancel_run(paths)
    if not args.dry_run:
        guard.check_writable(paths.output)
    local = args.local or not slurm.available()
    if args.resume and not args.local and _was_local(paths):
        local = True  # finish a run the way it was started
        logger.info("the run in %s was a local run: resuming it on this machine", RUN_RECORD)
    if local:
        configured = slurm.configuration_file()
        if not slurm.available() and not args.local and configured is not None:
            raise UsageError(
                f"Slurm is configured on this machine ({configured}) but sbatch is not on PATH "
                "(a module to load?); to run on this machine on purpose, with all of its "
                f"cores, use: bash {SUBMIT_SCRIPT} --local"
            )
        if not slurm.available():
            logger.info("sbatch not found; running on this machine")
        return _run_here(paths, args)
    config = slurm.read_config()  # also proves that the controller answers
    if not args.dry_run:  # the jobs' logs: Slurm 22.05 fails silently without the folder
        guard.check_writable(paths.slurm_logs)
    record = guard.claim_record(paths, resume=args.resume)
    with guard.holding_folder(paths, "a submission"):
        return _plan_slurm(paths, args, extra, plan_dir=plan_dir, record=record, config=config)


def _was_local(paths: ProjectPaths) -> bool:
    with contextlib.suppress(run_record.RecordError):
        record = lifecycle.read_record(paths)
        return record is not None and record.mode is run_record.Mode.LOCAL
    return False


def _run_here(paths: ProjectPaths, args: argparse.Namespace) -> int:
    from volcano_gif.local.runner import default_workers, run_local_command

    for name in ("--frames-per-task", "--max-running"):
        if getattr(args, name[2:].replace("-", "_")) is not None:
            logger.warning("%s is for Slurm arrays: a local run renders on every core", name)
    if not args.dry_run:
        return run_local_command(
            paths,
            args.frames or DEFAULT_FRAME_COUNT,
            None,
            args.gif_width,
            args.size or DEFAULT_SIZE,
            resume=args.resume,
            force=args.force,
            command=args.command_line,
        )
    record = lifecycle.require_record(paths) if args.resume else None
    if record is not None and lifecycle.run_is_complete(paths, record):
        return say_complete(paths, record)
    parameters = record.parameters if record is not None else _parameters(args)
    workers = min(default_workers(), parameters.frame_count)
    gif = gif_size(parameters.size, parameters.gif_width)
    todo = (
        len(check_frames(paths.images, parameters.frame_count, parameters.size))
        if record is not None
        else parameters.frame_count
    )
    print(
        f"would run on this machine, in {paths.root}:\n"
        f"  render {todo} of {parameters.describe()} on {workers} worker processes "
        f"(complete frames already in images/ are kept)\n"
        f"  then assemble output/gifs/volcano.mp4, output/gifs/volcano.gif "
        f"({format_size(gif)}) and output/archives/volcano-images-<time>.tar.gz\n"
        "nothing was run"
    )
    return 0


def say_complete(paths: ProjectPaths, record: RunRecord) -> int:
    print(lifecycle.complete_line(record, "submit"))
    return 0


def _plan_slurm(
    paths: ProjectPaths,
    args: argparse.Namespace,
    extra: list[str],
    *,
    plan_dir: Path,
    record: RunRecord | None,
    config: slurm.ClusterConfig,
) -> int:
    _preflight(paths)
    resumed = record if args.resume else None
    if resumed is not None and lifecycle.run_is_complete(paths, resumed):
        return say_complete(paths, resumed)
    if resumed is not None:
        sbatch_options = _resume_options(resumed, extra)
        parameters, array = _resumed_array(paths, args, resumed, config)
    else:
        parameters, array = _new_array(paths, args, record, config)
        sbatch_options = extra
    if array is not None:
        array = ready_array(paths, array, parameters, config)
    frames_per_task = array.frames_per_task if array else parameters.frames_per_task
    if resumed is not None:
        run_id = resumed.run_id
    else:
        run_id = plan.RUN_ID_PLACEHOLDER if args.dry_run else run_record.new_run_id()
    render = plan.render_options(parameters, frames_per_task, run_id, args.force)
    assembly = plan.assembly_options(parameters)
    sbatch_options = [f"--comment={job_comment(Kind.RUN.value, run_id)}", *sbatch_options]
    if args.dry_run:  # the real commands are built once, by submit-gif-job itself
        return _dry_run(paths, array, sbatch_options, render, assembly)
    submission = Submission(
        kind="start" if resumed is None else "resume",
        time=run_record.now(),
        array=array.spec if array else None,
        frames_per_task=frames_per_task,
        commands=[],  # the script's, as run: see record_main
        sbatch_options=list(extra),  # what came after -- this time; the record keeps it
    )
    if resumed is not None:
        lifecycle.resume(
            paths,
            resumed,
            Mode.SLURM,
            f"array {submission.array or '(none)'}",
            submission=submission,
        )
    else:
        parameters.frames_per_task = frames_per_task
        lifecycle.begin(
            paths,
            Mode.SLURM,
            parameters,
            slurm_version=config.version,
            run_id=run_id,
            command=args.command_line,
            submission=submission,
        )
    with lifecycle.recording_failures(paths, run_id):
        plan_files.write_plan(
            plan_dir,
            plan_files.Plan(run_id, submission.array, render, assembly, sbatch_options, args.watch),
        )
    return 0


def _resumed_array(
    paths: ProjectPaths, args: argparse.Namespace, record: RunRecord, config: slurm.ClusterConfig
) -> tuple[Parameters, ArrayPlan | None]:
    """A resume's parameters (the record's) and the array of its missing frames, if any."""
    parameters = record.parameters
    if args.max_running is not None:
        parameters.max_running = args.max_running
    todo = sorted(check_frames(paths.images, parameters.frame_count, parameters.size))
    if not todo:
        logger.info(
            "run %s: all %d frames are there: submitting the assembly only",
            record.run_id,
            parameters.frame_count,
        )
        return parameters, None
    array = plan.plan_array(
        parameters.frame_count,
        parameters.frames_per_task,
        config.max_array_size,
        parameters.max_running,
        todo,
    )
    logger.info(
        "run %s: %d of %d frames to render again (%s), as array tasks %s",
        record.run_id,
        len(todo),
        parameters.frame_count,
        _frames_text(todo),
        array.spec,
    )
    return parameters, array


def _new_array(
    paths: ProjectPaths,
    args: argparse.Namespace,
    record: RunRecord | None,
    config: slurm.ClusterConfig,
) -> tuple[Parameters, ArrayPlan]:
    """A new run's parameters, from the options, and its array of every frame."""
    parameters = _parameters(args)
    if not args.force:
        guard.refuse_frames_of_other_runs(paths, parameters, record)
    array = plan.plan_array(
        parameters.frame_count,
        parameters.frames_per_task,
        config.max_array_size,
        parameters.max_running,
    )
    kept = len(frames_on_disk(paths.images))
    if kept and not args.force:
        logger.info("images/ holds %d frames of this run already: the tasks keep them", kept)
    return parameters, array


def _resume_options(record: RunRecord, given: list[str]) -> list[str]:
    """The run's sbatch options (every earlier submission's), then those given now.

    sbatch takes the last of an option given twice: what a resume adds overrides.
    """
    options = [*record.sbatch_options(), *given]
    if options != given:
        logger.info(
            "run %s: the run's sbatch options, then yours: %s", record.run_id, " ".join(options)
        )
    missing = [option for option in record.resume_options if option not in given]
    if missing:
        logger.warning(
            "run %s failed for want of %s; without it, this resume may fail the same way: %s",
            record.run_id,
            " ".join(missing),
            record.resume_command(),
        )
    return options


def _preflight(paths: ProjectPaths) -> None:
    """Check the data, and build matplotlib's font cache once, before any task starts.

    (The run's 3D scene is cached too, once the plan knows its frame count and size.)
    """
    from volcano_gif.task.data import load_grid
    from volcano_gif.task.main import use_project_matplotlib_cache

    load_grid(paths.data_file)
    use_project_matplotlib_cache(paths)
    import matplotlib.font_manager  # noqa: F401  (builds the font cache)


def _frames_text(frames: list[int]) -> str:
    text = compress_ranges(frames)
    return text if len(text) <= 60 else text[:57] + "..."


def ready_array(
    paths: ProjectPaths, array: ArrayPlan, parameters: Parameters, config: slurm.ClusterConfig
) -> ArrayPlan:
    """Fit the array to the user's submit limit, say what changed, cache the 3D scene."""
    limit = slurm.submit_limit() if config.accounting else None
    if limit is not None:
        array = plan.fit_submit_limit(array, parameters, config.max_array_size, limit)
    if array.note:
        logger.warning("%s", array.note)
    from volcano_gif.task.scene import load_scene  # the tasks load it, not work it out

    load_scene(paths, parameters.frame_count, parameters.size)
    return array


def _dry_run(
    paths: ProjectPaths,
    array: ArrayPlan | None,
    sbatch_options: list[str],
    render: list[str],
    assembly: list[str],
) -> int:
    """Show the plan's sbatch commands, and sbatch --test-only's answer to each."""
    commands = (
        [plan.sbatch_command(ARRAY_SCRIPT, render, sbatch_options, array=array)] if array else []
    )
    array_id = plan.ARRAY_ID_PLACEHOLDER if array else None
    commands.append(plan.sbatch_command(ASSEMBLY_SCRIPT, assembly, sbatch_options, after=array_id))
    print(f"would submit, from {paths.root}:")
    for command in commands:
        print(f"  {plan.show(command)}")
    print("sbatch --test-only checks each job without submitting it:")
    for command in commands:
        checked = [part for part in command if not part.startswith("--dependency=")]
        script = next(part for part in checked if part.endswith(".slurm"))
        note = (
            " (without its dependency: the array does not exist yet)"
            if len(checked) < len(command)
            else ""
        )
        answer = slurm.test_only(checked)
        print(f"  {script}{note}: {answer}")
    print("nothing was submitted")
    return 0
