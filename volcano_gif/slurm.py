"""The pipeline's Slurm client calls: each is one command, one scheduler RPC.

Everything goes through :mod:`volcano_gif.commands` (argument lists, never a
shell). Job states come from one ``squeue`` call for all of a run's jobs, never
one call per job or per task.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from volcano_gif.commands import CommandError, last_line, on_one_line, run_capturing
from volcano_gif.layout import DEFAULT_MAX_ARRAY_SIZE, SUBMIT_SCRIPT

logger = logging.getLogger(__name__)

#: What Slurm's clients say when there is no controller to talk to.
_UNREACHABLE = (
    "Unable to contact slurm controller",
    "Could not establish a configuration source",  # slurm-client with no slurm.conf
    "Unable to process configuration file",
    "Unable to establish controller machine",
)
UNREACHABLE_HINT = (
    f"check the cluster with `sinfo`, or run on this machine with: bash {SUBMIT_SCRIPT} --local"
)
#: The states of a job that has ended: it will not run again unless requeued.
ENDED_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
    "TIMEOUT",
}


class SlurmError(RuntimeError):
    """A Slurm command failed; ``said`` is what the command itself said, on one line."""

    def __init__(self, message: str, said: str = "") -> None:
        super().__init__(message)
        self.said = said or message


class ControllerUnreachableError(SlurmError):
    """No Slurm controller answers."""


def available() -> bool:
    """True if ``sbatch`` is on PATH."""
    return shutil.which("sbatch") is not None


#: The Slurm clients a learner types in the lesson (sacct is checked on its own).
LESSON_CLIENTS = ("sbatch", "squeue", "scontrol", "scancel")


def missing_clients(names: Sequence[str] = LESSON_CLIENTS) -> list[str]:
    """Those of ``names`` that are not on PATH."""
    return [name for name in names if shutil.which(name) is None]


#: Where Slurm's clients look for their configuration when SLURM_CONF is not set.
DEFAULT_CONFIGURATION = Path("/etc/slurm/slurm.conf")


def configuration_file() -> str | None:
    """The Slurm configuration this machine points at (SLURM_CONF, or a slurm.conf), if any.

    A login node whose Slurm module is not loaded has one, but no sbatch on PATH.
    """
    return os.environ.get("SLURM_CONF") or (
        str(DEFAULT_CONFIGURATION) if DEFAULT_CONFIGURATION.is_file() else None
    )


def call(args: list[str], timeout: float | None = None) -> str:
    """Run a Slurm client; its standard output, or :class:`SlurmError` with what it said."""
    return _call_capturing(args, timeout=timeout)[0]


def _call_about_jobs(args: list[str]) -> str:
    """Like :func:`call`, but jobs Slurm does not know (any more) are simply not listed.

    squeue and scontrol fail with "Invalid job id specified" when none of the
    ids they were given is known: that means no lines, not an error.
    """
    try:
        return call(args)
    except SlurmError as error:
        if "Invalid job id" in str(error):
            return ""
        raise


def _call_capturing(
    args: list[str], cwd: Path | None = None, timeout: float | None = None
) -> tuple[str, str]:
    try:
        return run_capturing(args, cwd, timeout)
    except CommandError as error:
        if error.returncode == 124 or any(marker in error.stderr for marker in _UNREACHABLE):
            last = last_line(error.stderr)
            said = last if last.startswith(f"{args[0]}:") else f"{args[0]}: {last}"
            raise ControllerUnreachableError(
                f"cannot reach the Slurm controller ({said}); {UNREACHABLE_HINT}", said
            ) from None
        said = on_one_line(error.stderr)
        raise SlurmError(
            f"{shlex.join(args)} failed (exit code {error.returncode}): {said or 'no message'}",
            said or f"{args[0]}: exit code {error.returncode}, no message",
        ) from None


@dataclass(frozen=True)
class ClusterConfig:
    max_array_size: int
    version: str | None
    accounting: bool
    settings: Mapping[str, str] = field(default_factory=dict)  # every line, as scontrol says it


def read_config() -> ClusterConfig:
    """The settings we plan by, from one ``scontrol show config``: the controller answers.

    Without ``scontrol`` on PATH, Slurm's defaults, with a warning. With no slurm.conf, only
    a configless controller (DNS record ``_slurmctld._tcp``) could: 5 s, not scontrol's minute.
    """
    if shutil.which("scontrol") is None:
        logger.warning("scontrol not found: assuming MaxArraySize=%d", DEFAULT_MAX_ARRAY_SIZE)
        return ClusterConfig(DEFAULT_MAX_ARRAY_SIZE, None, accounting=False)
    text = call(["scontrol", "show", "config"], timeout=60 if configuration_file() else 5)
    settings = dict(re.findall(r"^(\w+)\s+=\s+(.*?)\s*$", text, flags=re.MULTILINE))

    def number(key: str) -> int | None:
        match = re.match(r"\d+", settings.get(key, ""))
        return int(match.group(0)) if match else None

    return ClusterConfig(
        max_array_size=number("MaxArraySize") or DEFAULT_MAX_ARRAY_SIZE,
        version=settings.get("SLURM_VERSION"),
        accounting=keeps_accounting(settings.get("AccountingStorageType", "")),
        settings=settings,
    )


def keeps_accounting(storage_type: str) -> bool:
    """True if ``AccountingStorageType`` names a storage plugin that keeps accounting.

    Slurm 22.05 says ``accounting_storage/none`` when there is none; 23.11 and
    later say ``(null)``; anything but a plugin other than ``none`` means none.
    """
    kind, _, plugin = storage_type.strip().partition("/")
    return kind == "accounting_storage" and plugin not in {"", "none"}


@dataclass(frozen=True)
class SubmitLimit:
    """How many jobs the user may have queued (each array task counts as one), and why."""

    limit: int
    source: str  # e.g. "QOS class50 MaxSubmitJobsPerUser=50"
    queued: int  # the user's jobs and array tasks in the queue now

    @property
    def free(self) -> int:
        return self.limit - self.queued


def submit_limit() -> SubmitLimit | None:
    """The user's effective submit limit, from accounting (``sacctmgr``), or None.

    The smallest of the ``MaxSubmitJobs`` of the user's associations and the
    ``MaxSubmitJobsPerUser`` and ``MaxSubmitJobs`` of their QOS (the default QOS,
    else every QOS they may use). None where no limit is set or sacctmgr fails.
    """
    import getpass

    user = getpass.getuser()
    assoc_fields = ("account", "maxsubmit", "qos", "defaultqos")
    qos_fields = ("name", "maxsubmitjobsperuser", "maxsubmitjobs")
    try:
        associations = call(
            [
                "sacctmgr",
                "-n",
                "-P",
                "show",
                "assoc",
                "where",
                f"user={user}",
                f"format={','.join(assoc_fields)}",
            ]
        )
        qos_lines = call(["sacctmgr", "-n", "-P", "show", "qos", f"format={','.join(qos_fields)}"])
    except SlurmError:
        return None
    qos_limits = {}
    for qos_row in parsable_rows(qos_lines, qos_fields):
        limits_set = (qos_row["maxsubmitjobsperuser"], qos_row["maxsubmitjobs"])
        numbers = [int(value) for value in limits_set if value.isdigit()]
        if qos_row["name"] and numbers:
            qos_limits[qos_row["name"]] = min(numbers)
    limits: list[tuple[int, str]] = []
    for row in parsable_rows(associations, assoc_fields):
        account, max_submit = row["account"], row["maxsubmit"]
        if max_submit.isdigit():
            limits.append((int(max_submit), f"account {account} MaxSubmitJobs={max_submit}"))
        usable = [row["defaultqos"]] if row["defaultqos"] else row["qos"].split(",")
        for qos in filter(None, usable):
            if qos in qos_limits:
                source = f"QOS {qos} MaxSubmitJobsPerUser={qos_limits[qos]}"
                limits.append((qos_limits[qos], source))
    if not limits:
        return None
    limit, source = min(limits)
    queued = len(
        call(["squeue", "--noheader", "--array", "--user", user, "--format", "%i"]).split()
    )
    return SubmitLimit(limit, source, queued)


#: sbatch's words for a refusal by a submit limit.
SUBMIT_LIMIT_REASONS = (
    "QOSMaxSubmitJobPerUserLimit",
    "AssocMaxSubmitJobLimit",
    "QOSMaxSubmitJobLimit",
)


@dataclass(frozen=True)
class FolderJob:
    """A live job (an array counts once) that a run of a folder submitted."""

    job_id: str  # the array's id for an array
    name: str
    state: str  # RUNNING if any task of an array runs
    comment: str  # what the run gave as --comment: volcano-gif:<kind>:<run id>

    @property
    def run_id(self) -> str:
        return self.comment.rsplit(":", 1)[-1]


def folder_jobs(root: Path, comment_prefix: str) -> list[FolderJob]:
    """The user's live jobs submitted from ``root`` with a comment that starts with
    ``comment_prefix``, in job id order: one ``squeue --me`` call.

    The queue, not the run record, says which runs are at work in a folder: a
    record can be deleted or damaged, a job's working folder and comment cannot.
    """
    output = call(["squeue", "--me", "--noheader", "--format", "%F|%T|%j|%k|%Z"])
    folder = os.path.realpath(root)
    jobs: dict[str, FolderJob] = {}
    for line in output.splitlines():  # the folder last: it may hold a "|" of its own
        job, state, name, comment, workdir = (line.strip().split("|", 4) + [""] * 5)[:5]
        if state in ENDED_STATES or not comment.startswith(comment_prefix):
            continue
        if os.path.realpath(workdir) == folder:
            running = state == "RUNNING" or (job in jobs and jobs[job].state == "RUNNING")
            jobs[job] = FolderJob(job, name, "RUNNING" if running else state, comment)
    return sorted(jobs.values(), key=lambda job: int(job.job_id))


@dataclass(frozen=True)
class JobLine:
    """One line of ``squeue``: a job, or one task of an array."""

    job_id: str  # the array's id for a task
    task: int | None
    state: str
    reason: str
    memory: str = ""  # what it asked for, as Slurm writes it: "256M", "1G"
    time_limit: str = ""  # likewise: "5:00", "00:15:00", "1-00:00:00", "UNLIMITED"


def job_lines(job_ids: list[str]) -> list[JobLine]:
    """Every job and array task of ``job_ids`` that Slurm still knows, in one ``squeue``.

    ``--states=all`` keeps ended jobs until MinJobAge; ``--array`` gives each
    array task its own line.
    """
    fields = ("job", "task", "state", "reason", "memory", "limit")
    output = _call_about_jobs(
        [
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            "--jobs",
            ",".join(job_ids),
            "--format",
            "%F|%K|%T|%r|%m|%l",  # the fields above, in this order
        ]
    )
    return [
        JobLine(
            row["job"],
            int(row["task"]) if row["task"].isdigit() else None,
            row["state"],
            row["reason"],
            row["memory"],
            row["limit"],
        )
        for row in parsable_rows(output, fields)
        if row["job"] and row["state"]
    ]


def scontrol_records(output: str) -> list[dict[str, str]]:
    """``scontrol --oneliner show job`` output by field name: a record per job or array task."""
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in output.splitlines() if line]


def scontrol_states(job_id: str) -> list[JobLine]:
    """The job (or every task of an array) as ``scontrol show job`` still knows it."""
    output = _call_about_jobs(["scontrol", "--oneliner", "show", "job", job_id])
    return [
        JobLine(
            fields.get("ArrayJobId") or fields.get("JobId") or job_id,
            int(task) if (task := fields.get("ArrayTaskId", "")).isdigit() else None,
            fields["JobState"],
            fields.get("Reason", "None"),
            fields.get("MinMemoryNode") or fields.get("MinMemoryCPU", ""),
            fields.get("TimeLimit", ""),
        )
        for fields in scontrol_records(output)
        if "JobState" in fields
    ]


_MEMORY_UNITS = {"": 1 / 1024**2, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def parsable_rows(output: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """``--parsable2`` output (sacct, sacctmgr, squeue with ``|``) as rows by field name.

    A line with fewer values than fields gets empty ones; a line with more is
    not such a row, and is left out.
    """
    rows = []
    for line in output.splitlines():
        values = line.strip().split("|")
        if line.strip() and len(values) <= len(fields):
            rows.append(
                dict(zip(fields, [*values, *[""] * (len(fields) - len(values))], strict=True))
            )
    return rows


def memory_mib(text: str) -> float | None:
    """sacct's memory figure (``69632K``, ``256M``, ``1G``; ``256Mn``/``256Mc`` before
    Slurm 21.08) in MiB; None for an empty one or 0 (no sample was taken)."""
    match = re.fullmatch(r"([\d.]+)([KMGT]?)[nc]?", text.strip())
    if not match or not float(match.group(1)):
        return None
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2)]


def cancel(job_ids: list[str]) -> None:
    """Cancel ``job_ids`` (whole arrays included) with one ``scancel``."""
    call(["scancel", *job_ids])


def submit(command: list[str], cwd: Path | None = None) -> str:
    """Run ``command`` (an ``sbatch --parsable`` command), in ``cwd``; return the job id.

    ``--parsable`` prints ``jobid`` or ``jobid;cluster``: the id is the part
    before any ``;``. A refusal raises :class:`SlurmError` with sbatch's message.
    """
    if command[:2] != ["sbatch", "--parsable"]:
        raise ValueError(f"not an sbatch --parsable command: {command}")
    answer = _call_capturing(command, cwd)[0].strip()
    job_id = answer.split(";", 1)[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed {answer!r}, not a job id", f"sbatch: printed {answer!r}")
    return job_id


def test_only(command: list[str]) -> str:
    """Run ``command`` (an sbatch command) with ``--test-only``; return sbatch's answer.

    sbatch checks the script and options, and says when and where the job would start
    (``would start at TIME using ...``, alike on every version). A refusal raises SlurmError.
    """
    if command[0] != "sbatch":
        raise ValueError(f"not an sbatch command: {command}")
    stdout, stderr = _call_capturing(["sbatch", "--test-only", *command[1:]])
    # From 25.05: "TIME[ on cluster C] a using" (a slip in src/api/allocate.c); no job N exists.
    will_run = r"^sbatch: Job \d+ to start at (\S+(?: on cluster \S+)?)(?: a)? using"
    return re.sub(will_run, r"would start at \1 using", (stderr + stdout).strip(), flags=re.M)
