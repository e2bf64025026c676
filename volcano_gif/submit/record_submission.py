"""``record-submission``: what ``submit-gif-job`` runs after its sbatch calls.

It records in ``output/run.json`` the commands exactly as the script ran them
and the job ids, or sbatch's refusal; prints the ids; and with ``--watch``
follows the run to its end. The plan folder it reads is
:mod:`volcano_gif.submit.plan_files`' own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from volcano_gif import slurm
from volcano_gif.arguments import EXIT_FAILURE, EXIT_USAGE
from volcano_gif.layout import RESUME_COMMAND, SUBMIT_SCRIPT
from volcano_gif.paths import ProjectPaths
from volcano_gif.run import lifecycle
from volcano_gif.submit.options import PROG, configure_logging
from volcano_gif.submit.plan_files import read_plan

logger = logging.getLogger(__name__)


def record_main(argv: Sequence[str]) -> int:
    """``python -m volcano_gif record-submission PLAN_DIR ARRAY_ID GIF_ID``."""
    if len(argv) != 3:
        print(f"{PROG}: error: record-submission needs PLAN_DIR ARRAY_ID GIF_ID", file=sys.stderr)
        return EXIT_USAGE
    configure_logging()
    plan_dir, array_id, gif_id = Path(argv[0]), argv[1] or None, argv[2] or None
    paths = ProjectPaths(Path.cwd())
    plan = read_plan(plan_dir)
    run_id, array, said = plan.run_id, plan.array, plan.sbatch_said
    ran = plan.commands_run(array_submitted=array_id is not None)
    if array_id is None and (array is not None or gif_id is None):
        return _record_refusal(paths, run_id, said)
    lifecycle.submitted(paths, run_id, (array_id, gif_id), ran, said)
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
    print(
        f"gif job: {gif_id} "
        + (f"(afterany:{array_id})" if array_id else "(no dependency: every frame is rendered)")
    )
    jobs = ",".join(job for job in (array_id, gif_id) if job)
    if plan.watch:
        from volcano_gif.submit.watch import watch_run

        return watch_run(paths)
    logger.info("follow the run with: squeue --me -j %s  (or: volcano-gif watch)", jobs)
    logger.info("logs: %s/", paths.slurm_logs)
    return 0


def _record_refusal(paths: ProjectPaths, run_id: str, said: str) -> int:
    """sbatch refused the first job: nothing is queued. Record it, say it, exit 1."""
    lifecycle.refused(paths, run_id, said)
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
