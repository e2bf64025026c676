"""What to submit: the array's index list and the exact sbatch commands.

Pure functions, with no Slurm calls, so that every plan can be checked exactly
in tests: which tasks render which frames, how the array fits under the
cluster's MaxArraySize and the user's submit limit, and the two sbatch command lines that
``submit-gif-job`` runs (it builds the same lines from the plan files written
by :mod:`volcano_gif.submit.plan_files`; a test holds the two together).
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from volcano_gif.errors import UsageError
from volcano_gif.layout import (
    DEFAULT_SIZE,
    SLURM_ARRAY_LOG_ERR,
    SLURM_ARRAY_LOG_OUT,
    SLURM_JOB_LOG_ERR,
    SLURM_JOB_LOG_OUT,
)
from volcano_gif.numbering import (
    compress_ranges,
    default_gif_width,
    expected_frames,
    format_size,
    task_count,
    task_frames,
    task_of_frame,
)
from volcano_gif.run.record import Parameters

if TYPE_CHECKING:
    from volcano_gif.slurm import SubmitLimit


def fit_frames_per_task(frame_count: int, frames_per_task: int, max_array_size: int) -> int:
    """The smallest frames per task, at least ``frames_per_task``, whose task
    indices (1..tasks) stay below Slurm's ``max_array_size``."""
    largest_index = max_array_size - 1
    if largest_index < 1:
        raise UsageError(
            f"this cluster's MaxArraySize is {max_array_size}: it allows no array task 1, "
            "so job arrays cannot run here; ask your admins, or run with --local"
        )
    if task_count(frame_count, frames_per_task) <= largest_index:
        return frames_per_task
    return math.ceil(frame_count / largest_index)


#: Stands for the frame array's job id in a command shown before it exists.
ARRAY_ID_PLACEHOLDER = "<array job id>"
#: Stands for a new run's id in a dry run: none is made until a run is submitted.
RUN_ID_PLACEHOLDER = "<run id>"


@dataclass(frozen=True)
class ArrayPlan:
    """The array job of one submission."""

    frames_per_task: int
    tasks: list[int]  # array task indices, 1-based
    frame_count: int
    max_running: int | None = None
    #: Set when frames per task had to grow to fit MaxArraySize: says so in one line.
    note: str | None = None

    @property
    def spec(self) -> str:
        """The ``--array`` value: ``1-360``, ``3,17,200-215``, with ``%M`` if throttled."""
        indices = compress_ranges(self.tasks)
        return f"{indices}%{self.max_running}" if self.max_running else indices

    def frames(self) -> list[int]:
        """Every frame the array's tasks are responsible for, in order."""
        return [
            frame
            for task in self.tasks
            for frame in task_frames(task, self.frames_per_task, self.frame_count)
        ]


def plan_array(
    frame_count: int,
    frames_per_task: int,
    max_array_size: int,
    max_running: int | None = None,
    frames_to_render: Collection[int] | None = None,
) -> ArrayPlan:
    """The array that renders ``frames_to_render`` (default: every frame).

    Task k renders the k-th block of ``frames_per_task`` frames. If the last
    task's index would reach the cluster's MaxArraySize, frames per task grows
    to the smallest value that fits, and the plan's note says so. For a resume,
    only the tasks whose blocks hold a frame to render are listed.
    """
    fitted = fit_frames_per_task(frame_count, frames_per_task, max_array_size)
    note = None
    if fitted != frames_per_task:
        note = (
            f"{frame_count} frames at {frames_per_task} per task need array indices up to "
            f"{task_count(frame_count, frames_per_task)}, but this cluster's MaxArraySize is "
            f"{max_array_size} (indices up to {max_array_size - 1}): rendering {fitted} "
            f"frames per task instead, as {task_count(frame_count, fitted)} tasks"
        )
    wanted = expected_frames(frame_count) if frames_to_render is None else frames_to_render
    tasks = sorted({task_of_frame(frame, fitted) for frame in wanted})
    return ArrayPlan(fitted, tasks, frame_count, max_running, note)


def fit_submit_limit(
    array: ArrayPlan, parameters: Parameters, max_array_size: int, limit: SubmitLimit
) -> ArrayPlan:
    """Raise frames per task until the array and its assembly fit the user's submit limit.

    Sites cap the jobs a user may queue (a QOS or association ``MaxSubmitJobs``);
    each array task counts as one job, and the assembly as one more.
    """
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
        fitted = plan_array(
            parameters.frame_count, per_task, max_array_size, parameters.max_running, frames
        )
    note = (array.note + "; then: " if array.note else "") + (
        f"{len(array.tasks)} array tasks would exceed your submit limit ({limit.source}, "
        f"{limit.queued} jobs queued already): rendering {fitted.frames_per_task} frames per "
        f"task instead, as {len(fitted.tasks)} tasks"
    )
    return dataclasses.replace(fitted, note=note)


def render_options(
    parameters: Parameters, frames_per_task: int, run_id: str, force: bool = False
) -> list[str]:
    """The options each array task passes to ``volcano.py`` (after ``--array-task K``).

    ``--run-id`` goes into each task's timing file: the run report counts this run's
    tasks only, even where job ids repeat (a cluster whose ids started again).
    """
    options = ["--frames", str(parameters.frame_count), "--frames-per-task", str(frames_per_task)]
    options += ["--run-id", run_id]
    if parameters.size != DEFAULT_SIZE:
        options += ["--size", format_size(parameters.size)]
    if force:
        options.append("--force")
    return options


def assembly_options(parameters: Parameters) -> list[str]:
    """The options the assembly job passes to ``volcano-gif assemble``."""
    options = ["--frames", str(parameters.frame_count)]
    if parameters.size != DEFAULT_SIZE:
        options += ["--size", format_size(parameters.size)]
    if parameters.gif_width != default_gif_width(parameters.size):
        options += ["--gif-width", str(parameters.gif_width)]
    return options


def sbatch_command(
    script: str,
    args: Sequence[str],
    options: Sequence[str] = (),
    *,
    array: ArrayPlan | None = None,
    after: str | None = None,
) -> list[str]:
    """``sbatch --parsable [--array=...] [--dependency=afterany:ID] [options] SCRIPT [args]``.

    The one builder of sbatch commands in Python (submit-gif-job spells its own two,
    for the lesson). ``afterany``: the dependent job starts once every array task has
    ended, whatever its exit code, and itself checks that every frame is there.
    """
    spec = [f"--array={array.spec}"] if array else []
    dependency = [f"--dependency=afterany:{after}"] if after else []
    return ["sbatch", "--parsable", *spec, *dependency, *options, script, *args]


def log_options(root: Path, array: bool) -> list[str]:
    """sbatch's --output and --error into ``root``'s log folder: an array task's, or a job's."""
    out, err = (SLURM_ARRAY_LOG_OUT, SLURM_ARRAY_LOG_ERR)
    if not array:
        out, err = SLURM_JOB_LOG_OUT, SLURM_JOB_LOG_ERR
    return [f"--output={root / out}", f"--error={root / err}"]


def show(command: Sequence[str]) -> str:
    """``command`` as a shell line; the array job id placeholder is left readable."""
    placeholders = (ARRAY_ID_PLACEHOLDER, RUN_ID_PLACEHOLDER)
    return " ".join(
        part if any(shown in part for shown in placeholders) else shlex.quote(part)
        for part in command
    )
