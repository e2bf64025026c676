"""The one job of ``volcano-gif check``: does a task really run here and write its files?

A one-task array of ``generate_frames.slurm`` (``--array=1``, a short ``--time``,
job name :data:`JOB_NAME`) renders the one frame of a 1-frame turn into a
scratch folder of the check's own under the project (``--root``), on the
filesystem the lesson's jobs use, with its logs there too. The job runs from
the project folder, as the lesson's jobs do, and inherits the environment (no
``--export``): a site's ``SBATCH_EXPORT=NONE`` or a venv that the nodes cannot
see shows up here as it would in the lesson. The folder is removed afterwards;
the project's ``images/`` and ``output/`` are never touched.

The wait polls one ``squeue`` per look, backing off from :data:`FIRST_POLL` to
:data:`LAST_POLL` seconds, for at most the check's ``--timeout``; a job still
queued then is cancelled.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from volcano_gif import slurm
from volcano_gif.commands import last_line
from volcano_gif.errors import UsageError
from volcano_gif.layout import (
    ARRAY_SCRIPT,
    DEFAULT_SIZE,
    LATENCY_WAIT,
    RENDER_TASK_MEMORY,
    SLURM_ARRAY_LOG_ERR,
    SLURM_ARRAY_LOG_OUT,
)
from volcano_gif.paths import ProjectPaths
from volcano_gif.submit.plan import log_options, sbatch_command
from volcano_gif.submit.polling import poll_until
from volcano_gif.task.frames import inspect_frame

logger = logging.getLogger(__name__)

#: The check's job: its name in squeue and sacct, and its time limit.
JOB_NAME = "volcano-check"
JOB_TIME = "00:02:00"
#: How long the check waits for its job to start and end, by default (--timeout).
JOB_TIMEOUT = 300.0
#: Seconds between squeue looks: the first, and the longest.
FIRST_POLL, LAST_POLL = 2.0, 30.0
#: The scratch folders' names: ``volcano-check-XXXXXXXX`` in the project folder.
SCRATCH_PREFIX = "volcano-check-"

#: What to do when the job ended in one of these states.
_STATE_HINTS = {
    "OUT_OF_MEMORY": f"the script's --mem={RENDER_TASK_MEMORY} was not enough here: tell your "
    "instructor",
    "TIMEOUT": f"one frame takes seconds, yet it ran past --time={JOB_TIME}: the node or the "
    "filesystem is very slow; tell your instructor",
    "CANCELLED": "it was cancelled (scancel, or by the site): run the check again",
    "NODE_FAIL": "its node failed: run the check again, and tell your site if it fails again",
}
_FAILED_HINT = (
    "the job runs {python} on a compute node, from this folder: if a package is missing there, "
    "activate the venv (source .venv/bin/activate) before you run the check and sbatch"
)
#: What to do about a refusal by sbatch, by the first words of it found in sbatch's message.
_REFUSAL_HINTS = {
    "violates accounting/qos policy": "a limit of your account or QOS refuses it (time, size "
    "or jobs queued): ask your site which one",
    "invalid account": "set SBATCH_ACCOUNT to your project's account (export SBATCH_ACCOUNT="
    "<name>; `sacctmgr show assoc user=$USER format=account` lists yours)",
    "partition": "set SBATCH_PARTITION to a partition that `sinfo` lists (export "
    "SBATCH_PARTITION=<name>)",
    "qos": "set SBATCH_QOS to a QOS your account may use (`sacctmgr show assoc user=$USER "
    "format=qos` lists them)",
    "reservation": "check SBATCH_RESERVATION against `scontrol show reservation`",
    "time limit": "the partition allows less time than the script asks for (--time): choose "
    "another partition (SBATCH_PARTITION) or ask your site",
}
_REFUSAL_HINT = (
    "fix what sbatch says; site settings go in SBATCH_ACCOUNT, SBATCH_PARTITION, SBATCH_QOS "
    "(episode 6 of the lesson)"
)


def refusal_hint(said: str) -> str:
    """What to do about sbatch's refusal ``said``, as a sentence."""
    lowered = said.lower()
    hint = next((text for words, text in _REFUSAL_HINTS.items() if words in lowered), _REFUSAL_HINT)
    return hint[0].upper() + hint[1:]


@dataclass(frozen=True)
class JobOutcome:
    """What became of the check's job: passed or not, one line saying so, and its id."""

    passed: bool
    text: str
    job_id: str | None  # None: never submitted
    since: str  # a moment before it was submitted, for sacct --starttime
    ended: bool = True  # False: still queued or running at the timeout, and cancelled


@contextlib.contextmanager
def scratch_folder(paths: ProjectPaths) -> Iterator[ProjectPaths]:
    """A project folder of the check's own inside ``paths.root``, removed afterwards.

    It holds a copy of the data; matplotlib's font cache goes there too (unless
    MPLCONFIGDIR is set), for the check's imports and its job alike, so that the
    check leaves nothing behind in the project.
    """
    try:
        scratch = ProjectPaths(Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=paths.root)))
    except OSError as error:
        raise UsageError(
            f"cannot make the check's scratch folder in {paths.root} ({error.strerror}): "
            "run the check in your own clone of the project"
        ) from None
    saved = dict(os.environ)
    try:
        scratch.data_file.parent.mkdir()
        shutil.copyfile(paths.data_file, scratch.data_file)
        scratch.slurm_logs.mkdir(parents=True)  # Slurm 22.05 fails silently without
        os.environ.setdefault("MPLCONFIGDIR", str(scratch.mpl_cache))
        # The job runs what submit-gif-job's jobs run: $VOLCANO_PYTHON, else this Python.
        os.environ.setdefault("VOLCANO_PYTHON", sys.executable)
        yield scratch
    finally:
        os.environ.clear()  # as it was
        os.environ.update(saved)
        shutil.rmtree(scratch.root, ignore_errors=True)


def job_command(paths: ProjectPaths, scratch: ProjectPaths) -> list[str]:
    """``sbatch --parsable --array=1 ... generate_frames.slurm --frames 1 --root SCRATCH``."""
    options = ["--array=1", f"--time={JOB_TIME}", f"--job-name={JOB_NAME}", f"--chdir={paths.root}"]
    script, args = str(paths.root / ARRAY_SCRIPT), ["--frames", "1", "--root", str(scratch.root)]
    return sbatch_command(script, args, [*options, *log_options(scratch.root, array=True)])


def run_job(paths: ProjectPaths, scratch: ProjectPaths, timeout: float) -> JobOutcome:
    """Submit the check's job, wait for it (cancelled if it is still queued at
    ``timeout``), and judge it by its state, its frame and its logs."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    try:
        job = slurm.submit(job_command(paths, scratch))
    except slurm.SlurmError as error:
        text = f"sbatch refuses the job: {error.said}. {refusal_hint(error.said)}"
        return JobOutcome(False, text, None, since)
    ended = False
    try:
        logger.info(
            "submitted job %s (one frame); waiting up to %.0f s for it to end", job, timeout
        )
        look = functools.partial(slurm.job_lines, [job])  # one squeue per look
        lines = poll_until(
            look, _all_ended, time.sleep, FIRST_POLL, LAST_POLL, give_up_after=timeout
        )
        ended = _all_ended(lines)
    finally:
        if not ended:  # timed out, or interrupted (Ctrl-C): leave nothing queued
            with contextlib.suppress(slurm.SlurmError):
                slurm.cancel([job])
    if not ended:
        where = f"{lines[-1].state} ({lines[-1].reason})" if lines else "queued"
        text = (
            f"job {job} was still {where} after {timeout:.0f} s, and is cancelled: the queue "
            "may be busy (run the check again later, or with a longer --timeout), or the job "
            "cannot start here: ask your site"
        )
        return JobOutcome(False, text, job, since, ended=False)
    return JobOutcome(*_judge(job, lines, scratch), job, since)


def _all_ended(lines: list[slurm.JobLine]) -> bool:
    return all(line.state in slurm.ENDED_STATES for line in lines)  # none: forgotten, ended


def _judge(job: str, lines: list[slurm.JobLine], scratch: ProjectPaths) -> tuple[bool, str]:
    out, err = (  # its logs: the patterns with its name, job id and task
        scratch.root / log.replace("%x", JOB_NAME).replace("%A", job).replace("%a", "1")
        for log in (SLURM_ARRAY_LOG_OUT, SLURM_ARRAY_LOG_ERR)
    )
    state = next((line.state for line in lines if line.task == 1), lines[0].state if lines else "")
    if state and state != "COMPLETED":
        said = _last_line(err) or _last_line(out) or "its log says nothing"
        hint = _STATE_HINTS.get(state) or _FAILED_HINT.format(python=os.environ["VOLCANO_PYTHON"])
        return False, f"job {job} ended {state}; its log's last line: {said}; {hint}"
    missing = _missing_files(scratch, out, err)
    if missing:
        return False, (
            f"job {job} ended {state or 'and left the queue'}, but {missing}: "
            "the compute node may not see this folder; run the lesson on a filesystem the "
            "nodes share (your home or project space), or ask your site"
        )
    return True, f"job {job}: its one task COMPLETED, and wrote its frame and its log"


def _missing_files(scratch: ProjectPaths, *logs: Path) -> str | None:
    """The first of the job's frame and logs that is missing, after the latency window.

    On a shared filesystem a file written on a node can show on the login node
    a few seconds late: look again, once a second, for up to LATENCY_WAIT seconds.
    """

    def look() -> list[str]:
        missing = [f"its log {path.name} is missing" for path in logs if not path.is_file()]
        problem = inspect_frame(scratch.frame(1), 1, 1, DEFAULT_SIZE)
        if problem is not None:
            missing.append(
                f"its frame {scratch.relative(scratch.frame(1))} is {problem.verdict.value}"
            )
        return missing

    missing = poll_until(look, operator.not_, time.sleep, 1.0, 1.0, give_up_after=LATENCY_WAIT)
    return missing[0] if missing else None


def _last_line(path: Path) -> str:
    try:
        return last_line(path.read_text(errors="replace"))
    except OSError:
        return ""
