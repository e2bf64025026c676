"""Cancel a run: its queued Slurm jobs with one ``scancel``, or its local runner.

Beside the run's lifecycle (:mod:`volcano_gif.run.record`) and the folder's
guard (:mod:`volcano_gif.run.guard`): whoever cancels moves the run to
``cancelled`` and keeps every frame rendered so far.
"""

from __future__ import annotations

import os
import signal

from volcano_gif import slurm
from volcano_gif.layout import RESUME_COMMAND
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.guard import folder_holder
from volcano_gif.run.record import Mode, RunRecord, RunState
from volcano_gif.run.record_store import require_record, update_record


def cancel_run(paths: ProjectPaths) -> int:
    """Cancel the run in output/run.json: its queued jobs with one scancel, or a local run."""
    record = require_record(paths)
    if record.mode == Mode.LOCAL:
        holder = folder_holder(paths)
        if holder is None:
            print(f"nothing to cancel: no local run is under way in {paths.root}")
            return 0
        pid = int(holder.split()[0])
        os.kill(pid, signal.SIGTERM)
        print(
            f"stopping the local run (pid {pid}); its rendered frames are kept: finish it "
            f"later with: {RESUME_COMMAND}"
        )
        return 0
    if not record.job_ids():
        print(f"nothing to cancel: run {record.run_id} has no submitted jobs")
        return 0
    queued = slurm.queued_jobs(record.job_ids())
    if not queued:
        print(
            f"nothing to cancel: the jobs of run {record.run_id} "
            f"({', '.join(record.job_ids())}) have all ended"
        )
        return 0
    gif_jobs = {s.gif_job_id for s in record.submissions}
    # The assembly first: once its array is gone, its dependency would let it start.
    ordered = sorted(queued, key=lambda job: job not in gif_jobs)
    slurm.cancel(ordered)

    def cancelled(current: RunRecord) -> None:
        current.move_to(RunState.CANCELLED, "cancelled", f"jobs {', '.join(ordered)} (scancel)")

    update_record(paths, cancelled, record.run_id)
    described = ", ".join(
        f"{job} ({'gif' if job in gif_jobs else 'frames'}, was {queued[job]})" for job in ordered
    )
    print(
        f"cancelled run {record.run_id}: {described}. Every frame rendered so far is kept in "
        f"images/: finish the run later with: {RESUME_COMMAND}"
    )
    return 0
