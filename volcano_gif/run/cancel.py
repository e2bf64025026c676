"""Cancel a run: its local runner, or its jobs in the queue with one ``scancel``.

The queue says which jobs are the folder's (:func:`volcano_gif.run.guard.live_jobs`),
so a deleted or damaged run record keeps no job out of reach; a submission under
way is waited for, then what it queued is cancelled. The run becomes ``cancelled``
(:mod:`volcano_gif.run.lifecycle`) and keeps every frame rendered so far.
"""

from __future__ import annotations

import os
import signal
import time

from volcano_gif import slurm
from volcano_gif.layout import ARRAY_SCRIPT, REPRODUCE_DIR, RESUME_COMMAND, RUN_RECORD, job_comment
from volcano_gif.paths import ProjectPaths
from volcano_gif.run import lifecycle
from volcano_gif.run.guard import folder_holder, live_jobs
from volcano_gif.run.record import Kind, RecordError, RunRecord

#: How long --cancel waits for a submission under way to queue its jobs, in seconds.
SUBMISSION_WAIT = 120.0
#: What a frame array's jobs are called in the queue: its script's name.
_ARRAY_JOB_NAME = ARRAY_SCRIPT.removesuffix(".slurm")


def cancel_run(paths: ProjectPaths) -> int:
    """Cancel the run of this folder: a local run, or its live jobs (one scancel).

    A reproduction's folder (``output/reproduce/<run id>``) has its jobs submitted
    from the project, their comment naming the run reproduced.
    """
    comment_prefix, jobs_root = job_comment(Kind.RUN.value, ""), paths.root
    if paths.root.parent.match(str(REPRODUCE_DIR)):
        comment_prefix = job_comment(Kind.REPRODUCE.value, paths.root.name)
        jobs_root = paths.root.parents[len(REPRODUCE_DIR.parts)]
    record, damaged = _after_any_submission(paths)
    holder = folder_holder(paths)
    if holder is not None and (holder.endswith(" a local run") or " a reproduction" in holder):
        pid = int(holder.split()[0])
        os.kill(pid, signal.SIGTERM)
        print(
            f"stopping the local run (pid {pid}); its rendered frames are kept: finish it "
            f"later with: {RESUME_COMMAND}"
        )
        return 0
    jobs = live_jobs(paths, record, comment_prefix, jobs_root, must_know=True)
    if not jobs:
        ran = f"run {record.run_id}" if record is not None else f"a run in {paths.root}"
        print(f"nothing to cancel: no job of {ran} is queued or running, and no local run")
        return 0
    slurm.cancel([job.job_id for job in reversed(jobs)])  # in job id order: dependents first
    ids = ", ".join(job.job_id for job in jobs)
    if record is not None and record.run_id in {job.run_id for job in jobs}:
        lifecycle.cancelled(paths, record.run_id, f"jobs {ids} (scancel)")
    way = f": finish the run later with: {RESUME_COMMAND}"
    if record is None:
        why = f"{RUN_RECORD} is damaged" if damaged else f"there is no {RUN_RECORD}"
        way = f"; {why}: move it away (if any) and start the run again with the same options"
    described = ", ".join(
        f"{job.job_id} ({'frames' if job.name == _ARRAY_JOB_NAME else 'gif'}, was {job.state})"
        for job in reversed(jobs)
    )
    print(
        f"cancelled run {jobs[0].run_id}: {described}. Every frame rendered so far is "
        f"kept in images/{way}"
    )
    return 0


def _after_any_submission(paths: ProjectPaths) -> tuple[RunRecord | None, str]:
    """The record (or why it is damaged), once a submission under way has queued its jobs."""
    deadline = time.monotonic() + SUBMISSION_WAIT
    while (folder_holder(paths) or "").endswith(" a submission") and time.monotonic() < deadline:
        time.sleep(0.2)  # planning: its record comes next
    try:
        record = lifecycle.read_record(paths)
    except RecordError as error:
        return None, str(error)
    return (lifecycle.wait_while_submitting(paths, record) if record else None), ""
