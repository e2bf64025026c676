"""Everything ``submit-gif-job`` does but its two ``sbatch`` calls.

The script runs ``python -m volcano_gif plan-submission PLAN_DIR [options]``
first. That checks the options and the data, reads this folder's run record
(``output/run.json``), refuses a second run while the first one's jobs are
queued, and does whatever needs no submission itself: ``--help``, a run on
this machine (``--local``, or no sbatch), ``--dry-run``, ``--cancel``, and a
``--resume`` of a run that is complete. Otherwise it writes the run record
(state ``submitting``) and the plan, as small files in PLAN_DIR:

* ``submit``: the run's id; the script submits only when this file is there;
* ``array``: the ``--array`` index list (absent when every frame is rendered);
* ``render-options``, ``assembly-options``, ``sbatch-options``: one argument
  per line, for ``generate_frames.slurm``, ``create_gif.slurm`` and both
  ``sbatch`` calls;
* ``watch`` when ``--watch`` was given.

The script builds each sbatch command once, as a bash array, keeps it
(``array-job``, ``gif-job``: the arguments NUL-separated) and runs it, keeping
sbatch's messages (``sbatch-messages``). Then ``python -m volcano_gif
record-submission PLAN_DIR ARRAY_ID GIF_ID`` records the commands exactly as
they ran and the job ids (or sbatch's refusal), prints the ids, and with
``--watch`` follows the run to its end.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from volcano_gif import slurm
from volcano_gif.arguments import EXIT_FAILURE
from volcano_gif.arguments import EXIT_USAGE
from volcano_gif.arguments import Parser
from volcano_gif.arguments import add_frames_option
from volcano_gif.arguments import positive_int
from volcano_gif.arguments import size_arg
from volcano_gif.arguments import task_option
from volcano_gif.files import short_hostname
from volcano_gif.layout import DEFAULT_FRAME_COUNT
from volcano_gif.layout import DEFAULT_SIZE
from volcano_gif.layout import RESUME_COMMAND
from volcano_gif.layout import SUBMIT_SCRIPT
from volcano_gif.layout import ProjectPaths
from volcano_gif.layout import UsageError
from volcano_gif.layout import format_size
from volcano_gif.layout import gif_size
from volcano_gif.run.cancel import cancel_run
from volcano_gif.run.guard import check_writable
from volcano_gif.run.guard import holding_folder
from volcano_gif.run.guard import refuse_frames_of_other_runs
from volcano_gif.run.guard import refuse_if_active
from volcano_gif.run.record import Mode
from volcano_gif.run.record import Parameters
from volcano_gif.run.record import RunRecord
from volcano_gif.run.record import RunState
from volcano_gif.run.record import Submission
from volcano_gif.run.record import new_record
from volcano_gif.run.record import now
from volcano_gif.run.record import read_record
from volcano_gif.run.record import require_record
from volcano_gif.run.record import run_is_complete
from volcano_gif.run.record import update_record
from volcano_gif.run.record import write_record
from volcano_gif.submit.plan import ARRAY_ID_PLACEHOLDER
from volcano_gif.submit.plan import ArrayPlan
from volcano_gif.submit.plan import array_command
from volcano_gif.submit.plan import assembly_command
from volcano_gif.submit.plan import assembly_options
from volcano_gif.submit.plan import compress_ranges
from volcano_gif.submit.plan import plan_array
from volcano_gif.submit.plan import render_options
from volcano_gif.submit.plan import show
from volcano_gif.task.frames import check_frames
from volcano_gif.task.frames import frames_on_disk

logger = logging.getLogger(__name__)

PROG = SUBMIT_SCRIPT
#: The plan files that submit-gif-job reads (tests/test_scripts.py holds it to them).
PLAN_FILES = (
    "submit", "array", "render-options", "assembly-options", "sbatch-options", "watch",
    "array-job", "gif-job", "sbatch-messages",
)  # fmt: skip
#: The options that describe the frames: a --resume takes them from the record.
RUN_SHAPE_OPTIONS = ("frames", "frames_per_task", "size", "gif_width")


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        help_command=f"bash {PROG} --help",
        usage=f"bash {PROG} [options] [-- extra sbatch options for both jobs]",
        description=(
            "Render the rotating volcano as a Slurm job array, then assemble "
            "output/gifs/volcano.mp4 and volcano.gif in a job that depends on the array "
            "(afterany). Without sbatch on PATH, or with --local, both stages run on this "
            "machine. One run per folder: its record is output/run.json."
        ),
        epilog=(
            "Site settings come from sbatch's own variables, e.g. "
            f"SBATCH_ACCOUNT=myproject SBATCH_PARTITION=short bash {PROG}. "
            "The jobs run $VOLCANO_PYTHON, else .venv/bin/python here, else python3."
        ),
    )
    shape = parser.add_argument_group("the run")
    add_frames_option(shape, None)
    for flag, kind, metavar, text in (
        (
            "--frames-per-task",
            task_option,
            "F",
            "frames each array task renders (default 1; raised to fit the cluster's MaxArraySize)",
        ),
        ("--size", size_arg, "WxH", f"frame size in pixels (default {format_size(DEFAULT_SIZE)})"),
        (
            "--gif-width",
            positive_int,
            "PX",
            "GIF width; the height keeps the aspect (default 400, or the frame width if narrower)",
        ),
        (
            "--max-running",
            task_option,
            "M",
            "run at most M array tasks at once (sbatch --array=...%%M)",
        ),
    ):
        shape.add_argument(flag, type=kind, metavar=metavar, help=text)
    how = parser.add_argument_group("what to do")
    for flag, text in (
        ("--local", "run on this machine even if sbatch is available"),
        (
            "--resume",
            "finish the run in output/run.json: render only the missing frames "
            "(one array), then assemble",
        ),
        (
            "--force",
            "render every frame again, even those already complete, and overwrite "
            "frames of another run",
        ),
        (
            "--dry-run",
            "print the sbatch commands, check them with sbatch --test-only, submit nothing",
        ),
        ("--watch", "after submitting, follow the run until the GIF is made"),
        (
            "--cancel",
            "cancel the jobs of the run in output/run.json (one scancel); "
            "rendered frames are kept for --resume",
        ),
    ):
        how.add_argument(flag, action="store_true", help=text)
    return parser


def _split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Our options, and the extra sbatch options after ``--``."""
    argv = list(argv)
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def _check_combinations(args: argparse.Namespace, extra: list[str]) -> None:
    if args.cancel and any(
        getattr(args, name) for name in (*RUN_SHAPE_OPTIONS, "resume", "force", "dry_run", "watch")
    ):
        raise UsageError("--cancel takes no other options")
    if args.resume:
        given = [f"--{name.replace('_', '-')}" for name in RUN_SHAPE_OPTIONS
                 if getattr(args, name) is not None]  # fmt: skip
        if given:
            raise UsageError(
                f"--resume takes the run's {', '.join(given)} from output/run.json: "
                "leave them out (or start a new run without --resume)"
            )
        if args.force:
            raise UsageError("--resume renders only what is missing; --force starts over: "
                             "give one of them")  # fmt: skip
    if args.watch and args.local:
        raise UsageError("--watch follows Slurm jobs; a local run shows its progress itself")
    if any("\n" in option for option in extra):
        raise UsageError("sbatch options after -- must not contain line breaks")


def _parameters(args: argparse.Namespace) -> Parameters:
    return Parameters.of(
        args.frames or DEFAULT_FRAME_COUNT, args.size or DEFAULT_SIZE, args.gif_width,
        args.frames_per_task or 1, args.max_running,
    )  # fmt: skip


# ------------------------------------------------------------------------ plan
def plan_main(argv: Sequence[str]) -> int:
    """``python -m volcano_gif plan-submission PLAN_DIR [submit-gif-job options]``."""
    if not argv:
        print(f"{PROG}: error: plan-submission needs the plan folder", file=sys.stderr)
        return EXIT_USAGE
    plan_dir, own_and_extra = Path(argv[0]), argv[1:]
    own, extra = _split_extra(own_and_extra)
    args = build_parser().parse_args(own)
    _configure_logging()
    _check_combinations(args, extra)  # errors are reported by arguments.guarded, as everywhere
    return _plan(ProjectPaths(Path.cwd()), args, extra, plan_dir)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=f"{PROG}: %(message)s")
    # Our steps, not matplotlib's ("generated new fontManager" on a first run).
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def _plan(paths: ProjectPaths, args: argparse.Namespace, extra: list[str], plan_dir: Path) -> int:
    if args.cancel:
        return cancel_run(paths)
    if not args.dry_run:
        check_writable(paths.output)
    record = require_record(paths) if args.resume else read_record(paths)
    local = args.local or not slurm.available()
    if args.resume and record is not None and record.mode == Mode.LOCAL and not args.local:
        local = True  # finish a run the way it was started
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
        elif not args.local:
            logger.info(
                "run %s was a local run: resuming it on this machine", record and record.run_id
            )
        return _run_here(paths, args, record)
    config = slurm.read_config()  # also proves that the controller answers
    refuse_if_active(paths, record)
    with holding_folder(paths, "a submission"):
        return _plan_slurm(paths, args, extra, plan_dir=plan_dir, record=record, config=config)


def _run_here(paths: ProjectPaths, args: argparse.Namespace, record: RunRecord | None) -> int:
    from volcano_gif.local.runner import default_workers
    from volcano_gif.local.runner import run_local_command

    if args.resume and record is not None and run_is_complete(paths, record):
        return _say_complete(paths, record)
    parameters = record.parameters if args.resume and record else _parameters(args)
    if args.dry_run:
        workers = min(default_workers(), parameters.frame_count)
        gif = gif_size(parameters.size, parameters.gif_width)
        todo = (
            len(check_frames(paths.images, parameters.frame_count, parameters.size))
            if args.resume
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
    return run_local_command(
        paths, parameters.frame_count, None, parameters.gif_width, parameters.size,
        resume=args.resume, force=args.force,
    )  # fmt: skip


def _say_complete(paths: ProjectPaths, record: RunRecord) -> int:
    outputs = ", ".join(output.path for output in record.outputs.values())
    print(f"run {record.run_id} is complete: {outputs} verified against output/run.json; "
          "nothing to submit")  # fmt: skip
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
    array: ArrayPlan | None
    if args.resume and record is not None:
        if run_is_complete(paths, record):
            return _say_complete(paths, record)
        parameters = record.parameters
        if args.max_running is not None:
            parameters.max_running = args.max_running
        todo = sorted(check_frames(paths.images, parameters.frame_count, parameters.size))
        array = None
        if todo:
            array = plan_array(
                parameters.frame_count,
                parameters.frames_per_task,
                config.max_array_size,
                parameters.max_running,
                todo,
            )
        logger.info(
            "run %s: %s", record.run_id,
            f"{len(todo)} of {parameters.frame_count} frames to render again "
            f"({_frames_text(todo)}), as array tasks {array.spec}" if array
            else f"all {parameters.frame_count} frames are there: submitting the assembly only",
        )  # fmt: skip
    else:
        parameters = _parameters(args)
        if not args.force:
            refuse_frames_of_other_runs(paths, parameters)
        array = plan_array(parameters.frame_count, parameters.frames_per_task,
                           config.max_array_size, parameters.max_running)  # fmt: skip
        kept = len(frames_on_disk(paths.images))
        if kept and not args.force:
            logger.info("images/ holds %d frames of this run already: the tasks keep them", kept)
    if array is not None:
        array = _ready_array(paths, array, parameters, config)
    frames_per_task = array.frames_per_task if array else parameters.frames_per_task
    render = render_options(parameters, frames_per_task, args.force)
    assembly = assembly_options(parameters)
    if args.dry_run:  # the real commands are built once, by submit-gif-job itself
        commands = [array_command(array, extra, render)] if array else []
        commands.append(assembly_command(ARRAY_ID_PLACEHOLDER if array else None, extra, assembly))
        return _dry_run(paths, commands)

    submission = Submission(
        kind="resume" if args.resume else "start", time=now(),
        array=array.spec if array else None, frames_per_task=frames_per_task,
        commands=[],  # the script's, as run: see record_main
    )  # fmt: skip
    if args.resume and record is not None:
        run_id = record.run_id

        def resumed(current: RunRecord) -> None:
            current.submitter = {"host": short_hostname(), "pid": os.getppid()}
            current.submissions.append(submission)
            current.move_to(
                RunState.SUBMITTING, "resume planned", f"array {submission.array or '(none)'}"
            )

        update_record(paths, resumed, run_id)
    else:
        parameters.frames_per_task = frames_per_task
        new = new_record(Mode.SLURM, parameters, config.version)
        new.submissions.append(submission)
        write_record(paths, new)
        run_id = new.run_id
    paths.slurm_logs.mkdir(parents=True, exist_ok=True)  # Slurm 22.05 fails silently without
    _write_plan(
        plan_dir, run_id, array, render=render, assembly=assembly, extra=extra, watch=args.watch
    )
    return 0


def _preflight(paths: ProjectPaths) -> None:
    """Check the data, and build matplotlib's font cache once, before any task starts.

    (The run's 3D scene is cached too, once the plan knows its frame count and size.)
    """
    from volcano_gif.task.command import use_project_matplotlib_cache
    from volcano_gif.task.data import load_grid

    load_grid(paths.data_file)
    use_project_matplotlib_cache(paths)
    import matplotlib.font_manager  # noqa: F401  (builds the font cache)


def _frames_text(frames: list[int]) -> str:
    text = compress_ranges(frames)
    return text if len(text) <= 60 else text[:57] + "..."


def _ready_array(
    paths: ProjectPaths, array: ArrayPlan, parameters: Parameters, config: slurm.ClusterConfig
) -> ArrayPlan:
    """Fit the array to the user's submit limit, say what changed, cache the 3D scene."""
    if config.accounting:
        array = _fit_submit_limit(array, parameters, config.max_array_size)
    if array.note:
        logger.warning("%s", array.note)
    from volcano_gif.task.scene import load_scene  # the tasks load it, not work it out

    load_scene(paths, parameters.frame_count, parameters.size)
    return array


def _fit_submit_limit(array: ArrayPlan, parameters: Parameters, max_array_size: int) -> ArrayPlan:
    """Raise frames per task until the array and its assembly fit the user's submit limit.

    Sites cap the jobs a user may queue (a QOS or association ``MaxSubmitJobs``);
    each array task counts as one job, and the assembly as one more.
    """
    limit = slurm.submit_limit()
    if limit is None:
        return array
    room = limit.free - 1  # the assembly job
    if room < 1:
        raise UsageError(
            f"your submit limit ({limit.source}) is used up: you have {limit.queued} jobs "
            "queued, and this run needs an array task and its assembly; wait for them to end "
            "(squeue --me) or ask your site for a higher limit"
        )
    if len(array.tasks) <= room:
        return array
    frames = array.frames()
    per_task = array.frames_per_task
    fitted = array
    while len(fitted.tasks) > room:
        per_task = max(per_task + 1, -(-len(frames) // room))
        fitted = plan_array(parameters.frame_count, per_task, max_array_size,
                            parameters.max_running, frames)  # fmt: skip
    note = (array.note + "; then: " if array.note else "") + (
        f"{len(array.tasks)} array tasks would exceed your submit limit ({limit.source}, "
        f"{limit.queued} jobs queued already): rendering {fitted.frames_per_task} frames per "
        f"task instead, as {len(fitted.tasks)} tasks"
    )
    return ArrayPlan(fitted.frames_per_task, fitted.tasks, fitted.frame_count,
                     fitted.max_running, note)  # fmt: skip


def _write_plan(
    plan_dir: Path,
    run_id: str,
    array: ArrayPlan | None,
    *,
    render: list[str],
    assembly: list[str],
    extra: list[str],
    watch: bool,
) -> None:
    def lines(values: list[str]) -> str:
        return "".join(f"{value}\n" for value in values)

    plan_dir.mkdir(parents=True, exist_ok=True)
    if array is not None:
        (plan_dir / "array").write_text(array.spec + "\n")
    (plan_dir / "render-options").write_text(lines(render))
    (plan_dir / "sbatch-options").write_text(lines(extra))
    (plan_dir / "assembly-options").write_text(lines(assembly))
    if watch:
        (plan_dir / "watch").write_text("")
    (plan_dir / "submit").write_text(run_id + "\n")  # the signal: submit this run


def _dry_run(paths: ProjectPaths, commands: list[list[str]]) -> int:
    print(f"would submit, from {paths.root}:")
    for command in commands:
        print(f"  {show(command)}")
    print("sbatch --test-only checks each job without submitting it:")
    for command in commands:
        checked = [part for part in command if not part.startswith("--dependency=")]
        script = next(part for part in checked if part.endswith(".slurm"))
        note = " (without its dependency: the array does not exist yet)" if len(checked) < len(
            command) else ""  # fmt: skip
        answer = slurm.test_only(checked)
        print(f"  {script}{note}: {answer}")
    print("nothing was submitted")
    return 0


# ------------------------------------------------------------------- after sbatch
def record_main(argv: Sequence[str]) -> int:
    """``python -m volcano_gif record-submission PLAN_DIR ARRAY_ID GIF_ID``."""
    if len(argv) != 3:
        print(f"{PROG}: error: record-submission needs PLAN_DIR ARRAY_ID GIF_ID",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    _configure_logging()
    plan_dir, array_id, gif_id = Path(argv[0]), argv[1] or None, argv[2] or None
    paths = ProjectPaths(Path.cwd())
    run_id = (plan_dir / "submit").read_text().strip()
    array = (plan_dir / "array").read_text().strip() if (plan_dir / "array").exists() else None

    said = _sbatch_said(plan_dir)
    ran = [_argv(plan_dir / name) for name in ("array-job", "gif-job")
           if (plan_dir / name).exists() and (array_id or name == "gif-job")]  # fmt: skip
    if array_id is None and (array is not None or gif_id is None):
        return _record_refusal(paths, run_id, said)

    def submitted(record: RunRecord) -> None:
        latest = record.submissions[-1]
        latest.array_job_id, latest.gif_job_id = array_id, gif_id
        latest.commands = ran  # exactly as the script ran them
        record.submitted = record.submitted or latest.time
        record.submitter = None
        jobs = ", ".join(f"{kind} {job}" for kind, job in (("array", array_id), ("gif", gif_id))
                         if job)  # fmt: skip
        if gif_id is None:
            record.error = f"the assembly job was not submitted: {said}"
            record.move_to(RunState.FAILED, "submitted in part", jobs)
        elif record.state is RunState.SUBMITTING:
            record.move_to(RunState.SUBMITTED, "submitted", jobs)
        else:  # the assembly has started already (an assembly-only resume)
            record.note("submitted", jobs)

    update_record(paths, submitted, run_id)
    if array_id:
        print(f"frames job: {array_id} (array {array})")
    if gif_id is None:
        print(
            f"{PROG}: error: the frame array {array_id} was submitted, its assembly job was not "
            f"(see sbatch's message above). Once the array has ended, submit the assembly with: "
            f"{RESUME_COMMAND} (or cancel the array: bash {SUBMIT_SCRIPT} --cancel)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"gif job: {gif_id} " + (f"(afterany:{array_id})" if array_id
                                   else "(no dependency: every frame is rendered)"))  # fmt: skip
    jobs = ",".join(job for job in (array_id, gif_id) if job)
    if (plan_dir / "watch").exists():
        from volcano_gif.submit.watch import watch_run

        return watch_run(paths)
    logger.info("follow the run with: squeue --me -j %s  (or: volcano-gif watch)", jobs)
    logger.info("logs: %s/", paths.slurm_logs)
    return 0


def _argv(path: Path) -> list[str]:
    """A command the script ran, from its NUL-separated arguments."""
    return path.read_bytes().decode(errors="surrogateescape").split("\0")[:-1]


def _sbatch_said(plan_dir: Path) -> str:
    """sbatch's last message of this submission, on one line."""
    try:
        lines = (plan_dir / "sbatch-messages").read_text(errors="replace").splitlines()
    except OSError:
        return "sbatch said nothing"
    said = [line.strip() for line in lines if line.strip()]
    return " / ".join(said[-3:]) if said else "sbatch said nothing"


def _record_refusal(paths: ProjectPaths, run_id: str, said: str) -> int:
    """sbatch refused the first job: nothing is queued. Record it, say it, exit 1."""

    def refused(record: RunRecord) -> None:
        record.submissions.pop()  # it never happened
        record.error = f"sbatch refused the submission: {said}"
        record.submitter = None
        record.move_to(RunState.REFUSED, "refused", said)

    update_record(paths, refused, run_id)
    reason = next((word for word in slurm.SUBMIT_LIMIT_REASONS if word in said), None)
    if reason is not None:
        limit = slurm.submit_limit()
        allowed = f" allows {limit.limit} queued jobs ({limit.source}) and" if limit else ""
        print(
            f"{PROG}: error: sbatch refused the submission ({reason}): your site{allowed} "
            "counts each array task as a job; nothing was submitted. Wait for your other "
            f"jobs (squeue --me), or give fewer tasks with --frames-per-task",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(
        f"{PROG}: error: sbatch refused the submission (see its message above); "
        "nothing was submitted",
        file=sys.stderr,
    )
    return EXIT_FAILURE
