"""A reproduction on Slurm: its render array, and the comparison job that depends on it.

The frames are rendered as an array, exactly as a run's are
(``generate_frames.slurm`` with ``--root``), and compared by a job that depends
on it (``compare_frames.slurm``, ``afterany``), both logging into the
reproduction's folder. The record says what was submitted, refused, or
submitted in part.
"""

from __future__ import annotations

import os
import sys

from volcano_gif import slurm
from volcano_gif.layout import (
    ARRAY_SCRIPT,
    COMPARE_SCRIPT,
    job_comment,
)
from volcano_gif.paths import ProjectPaths
from volcano_gif.run import lifecycle
from volcano_gif.run.record import Kind, RunRecord, Submission, now
from volcano_gif.submit.plan import (
    ArrayPlan,
    log_options,
    plan_array,
    render_options,
    sbatch_command,
)
from volcano_gif.submit.submission import ready_array


def submit_jobs(
    paths: ProjectPaths,
    scratch: ProjectPaths,
    record: RunRecord,
    todo: list[int] | None,
    *,
    config: slurm.ClusterConfig,
    sbatch_options: list[str],
    force: bool,
    resumed: bool,
) -> None:
    """Submit the render array (if frames are missing) and the comparison after it.

    ``todo`` is the frames to render (None: every frame); ``sbatch_options`` go
    to both jobs, after those of the reproduction's earlier submissions.
    """
    array = _ready_array(scratch, record, todo, config)
    # A resume keeps the options of the reproduction's earlier submissions (yours win);
    # the comment names the run reproduced, so that the queue says whose the jobs are.
    comment = f"--comment={job_comment(Kind.REPRODUCE.value, scratch.root.name)}"
    extra = [comment, *(record.sbatch_options() if resumed else ()), *sbatch_options]
    scratch.slurm_logs.mkdir(parents=True, exist_ok=True)  # Slurm 22.05 fails silently without
    per_task = array.frames_per_task if array else record.parameters.frames_per_task
    kind, spec = "resume" if resumed else "start", array.spec if array else None
    submission = Submission(kind, now(), spec, per_task, [], sbatch_options=list(sbatch_options))
    lifecycle.planned(scratch, record.run_id, submission)  # in the record; its job ids follow
    os.environ.setdefault("VOLCANO_PYTHON", sys.executable)  # what the job scripts run
    ran: list[list[str]] = []
    array_id = None
    if array is not None:
        task = render_options(record.parameters, per_task, record.run_id, force)
        render = ["--root", str(scratch.root), *task]
        options = [*log_options(scratch.root, True), *extra]
        command = sbatch_command(ARRAY_SCRIPT, render, options, array=array)
        try:
            array_id = slurm.submit(command, paths.root)
        except slurm.SlurmError as error:
            lifecycle.refused(scratch, record.run_id, str(error))
            raise
        ran.append(command)
    compare_id = _submit_comparison(
        paths, scratch, record.run_id, ran, array_id=array_id, extra=extra
    )
    if array_id:
        print(f"frames job: {array_id} (array {submission.array})")
    print(
        f"compare job: {compare_id} "
        + (f"(afterany:{array_id})" if array_id else "(no dependency: every frame is rendered)")
    )


def _ready_array(
    scratch: ProjectPaths, record: RunRecord, todo: list[int] | None, config: slurm.ClusterConfig
) -> ArrayPlan | None:
    """The render array for the frames ``todo``; None if every frame is rendered already."""
    parameters = record.parameters
    array: ArrayPlan | None = None
    if todo is None or todo:
        array = plan_array(
            parameters.frame_count, parameters.frames_per_task, config.max_array_size, None, todo
        )
        array = ready_array(scratch, array, parameters, config)
    import matplotlib.font_manager  # noqa: F401  (builds the font cache before the tasks start)

    return array


def _submit_comparison(
    paths: ProjectPaths,
    scratch: ProjectPaths,
    run_id: str,
    ran: list[list[str]],
    *,
    array_id: str | None,
    extra: list[str],
) -> str:
    """Submit the comparison job after the array ``array_id`` (if any); its job id."""
    root = ["--root", str(scratch.root)]
    command = sbatch_command(
        COMPARE_SCRIPT, root, [*log_options(scratch.root, False), *extra], after=array_id
    )
    try:
        compare_id = slurm.submit(command, paths.root)
    except slurm.SlurmError as error:
        lifecycle.submitted(scratch, run_id, (array_id, None), ran, str(error))
        raise slurm.SlurmError(
            f"the frame array {array_id} was submitted, its comparison job was not ({error}); "
            f"once the array has ended, run this command again, or cancel the array with: "
            f"volcano-gif cancel --root {scratch.root}"
        ) from None
    lifecycle.submitted(scratch, run_id, (array_id, compare_id), [*ran, command], "")
    return compare_id
