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
from dataclasses import dataclass
from pathlib import Path

from volcano_gif.commands import CommandError
from volcano_gif.commands import run_capturing
from volcano_gif.layout import DEFAULT_MAX_ARRAY_SIZE
from volcano_gif.layout import SUBMIT_SCRIPT

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
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT",
}  # fmt: skip


class SlurmError(RuntimeError):
    """A Slurm command failed."""


class ControllerUnreachableError(SlurmError):
    """No Slurm controller answers."""


def available() -> bool:
    """True if ``sbatch`` is on PATH."""
    return shutil.which("sbatch") is not None


#: Where Slurm's clients look for their configuration when SLURM_CONF is not set.
DEFAULT_CONFIGURATION = Path("/etc/slurm/slurm.conf")


def configuration_file() -> str | None:
    """The Slurm configuration this machine points at (SLURM_CONF, or a slurm.conf), if any.

    A login node whose Slurm module is not loaded has one, but no sbatch on PATH.
    """
    return os.environ.get("SLURM_CONF") or (
        str(DEFAULT_CONFIGURATION) if DEFAULT_CONFIGURATION.is_file() else None
    )


def _call(args: list[str]) -> str:
    return _call_capturing(args)[0]


def _call_about_jobs(args: list[str]) -> str:
    """Like :func:`_call`, but jobs Slurm does not know (any more) are simply not listed.

    squeue and scontrol fail with "Invalid job id specified" when none of the
    ids they were given is known: that means no lines, not an error.
    """
    try:
        return _call(args)
    except SlurmError as error:
        if "Invalid job id" in str(error):
            return ""
        raise


def _call_capturing(args: list[str]) -> tuple[str, str]:
    try:
        return run_capturing(args)
    except CommandError as error:
        if any(marker in error.stderr for marker in _UNREACHABLE):
            last = error.stderr.strip().splitlines()[-1]
            said = last if last.startswith(f"{args[0]}:") else f"{args[0]}: {last}"
            raise ControllerUnreachableError(
                f"cannot reach the Slurm controller ({said}); {UNREACHABLE_HINT}"
            ) from None
        said = " / ".join(line.strip() for line in error.stderr.splitlines() if line.strip())
        raise SlurmError(
            f"{shlex.join(args)} failed (exit code {error.returncode}): {said or 'no message'}"
        ) from None


@dataclass(frozen=True)
class ClusterConfig:
    max_array_size: int
    version: str | None
    accounting: bool


def read_config() -> ClusterConfig:
    """The settings we plan by, from one ``scontrol show config``.

    Without ``scontrol`` on PATH, Slurm's defaults, with a warning.
    """
    if shutil.which("scontrol") is None:
        logger.warning("scontrol not found: assuming MaxArraySize=%d", DEFAULT_MAX_ARRAY_SIZE)
        return ClusterConfig(DEFAULT_MAX_ARRAY_SIZE, None, accounting=False)
    text = _call(["scontrol", "show", "config"])
    settings = dict(re.findall(r"^(\w+)\s+=\s+(.*?)\s*$", text, flags=re.MULTILINE))

    def number(key: str) -> int | None:
        match = re.match(r"\d+", settings.get(key, ""))
        return int(match.group(0)) if match else None

    storage = settings.get("AccountingStorageType", "accounting_storage/none")
    return ClusterConfig(
        max_array_size=number("MaxArraySize") or DEFAULT_MAX_ARRAY_SIZE,
        version=settings.get("SLURM_VERSION"),
        accounting=not storage.endswith("/none"),
    )


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
    try:
        associations = _call(["sacctmgr", "-n", "-P", "show", "assoc", "where", f"user={user}",
                              "format=account,maxsubmit,qos,defaultqos"])  # fmt: skip
        qos_lines = _call(["sacctmgr", "-n", "-P", "show", "qos",
                           "format=name,maxsubmitjobsperuser,maxsubmitjobs"])  # fmt: skip
    except SlurmError:
        return None
    qos_limits = {}
    for line in qos_lines.splitlines():
        name, per_user, total = ([*line.split("|"), "", "", ""])[:3]
        numbers = [int(value) for value in (per_user, total) if value.isdigit()]
        if name and numbers:
            qos_limits[name] = min(numbers)
    limits: list[tuple[int, str]] = []
    for line in associations.splitlines():
        account, max_submit, qos_list, default_qos = ([*line.split("|"), "", "", "", ""])[:4]
        if max_submit.isdigit():
            limits.append((int(max_submit), f"account {account} MaxSubmitJobs={max_submit}"))
        for qos in [default_qos] if default_qos else [q for q in qos_list.split(",") if q]:
            if qos in qos_limits:
                limits.append((qos_limits[qos], f"QOS {qos} MaxSubmitJobsPerUser="
                                                f"{qos_limits[qos]}"))  # fmt: skip
    if not limits:
        return None
    limit, source = min(limits)
    queued = len(_call(["squeue", "--noheader", "--array", "--user", user, "--format",
                        "%i"]).split())  # fmt: skip
    return SubmitLimit(limit, source, queued)


#: sbatch's words for a refusal by a submit limit.
SUBMIT_LIMIT_REASONS = ("QOSMaxSubmitJobPerUserLimit", "AssocMaxSubmitJobLimit",
                        "QOSMaxSubmitJobLimit")  # fmt: skip


def queued_jobs(job_ids: list[str]) -> dict[str, str]:
    """``{job id: state}`` for those of ``job_ids`` still queued or running.

    One ``squeue`` call. Array tasks are reported under their array's job id.
    """
    if not job_ids:
        return {}
    output = _call_about_jobs(["squeue", "--noheader", "--jobs", ",".join(job_ids),
                               "--format", "%F|%T"])  # fmt: skip
    states: dict[str, str] = {}
    for line in output.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state not in ENDED_STATES:
            # An array has many lines: keep RUNNING over PENDING.
            states[job] = state if states.get(job) != "RUNNING" else "RUNNING"
    return states


@dataclass(frozen=True)
class JobLine:
    """One line of ``squeue``: a job, or one task of an array."""

    job_id: str  # the array's id for a task
    task: int | None
    state: str
    reason: str


def job_lines(job_ids: list[str]) -> list[JobLine]:
    """Every job and array task of ``job_ids`` that Slurm still knows, in one ``squeue``.

    ``--states=all`` keeps ended jobs until MinJobAge; ``--array`` gives each
    array task its own line.
    """
    output = _call_about_jobs(["squeue", "--noheader", "--array", "--states=all",
                               "--jobs", ",".join(job_ids), "--format", "%F|%K|%T|%r"])  # fmt: skip
    lines = []
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        job, task, state, reason = parts
        lines.append(JobLine(job, int(task) if task.isdigit() else None, state, reason))
    return lines


def scontrol_states(job_id: str) -> list[JobLine]:
    """The job (or every task of an array) as ``scontrol show job`` still knows it."""
    output = _call_about_jobs(["scontrol", "--oneliner", "show", "job", job_id])
    lines = []
    for line in output.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobState" in fields:
            task = fields.get("ArrayTaskId", "")
            lines.append(JobLine(
                fields.get("ArrayJobId") or fields.get("JobId") or job_id,
                int(task) if task.isdigit() else None,
                fields["JobState"], fields.get("Reason", "None"),
            ))  # fmt: skip
    return lines


def sacct_states(job_ids: list[str]) -> list[JobLine]:
    """Job and array task states from accounting (one ``sacct`` call)."""
    output = _call(["sacct", "--noheader", "--parsable2", "--allocations",
                    "--jobs", ",".join(job_ids), "--format", "JobID,State"])  # fmt: skip
    lines = []
    for line in output.splitlines():
        job, _, state = line.partition("|")
        base, task = _job_and_task(job)
        lines.append(JobLine(base, task, state.split()[0] if state else "", "None"))
    return lines


def _job_and_task(sacct_job_id: str) -> tuple[str, int | None]:
    """``12_3`` is task 3 of array 12; ``12`` and ``12_[4-9]`` (not started) have no task."""
    base, _, task = sacct_job_id.partition("_")
    return base, int(task) if task.isdigit() else None


#: What the report asks ``sacct`` for: what ``seff`` reads, and the node.
SACCT_USAGE_FIELDS = "JobID,State,ExitCode,ElapsedRaw,TotalCPU,AllocCPUS,MaxRSS,ReqMem,NodeList"
_MEMORY_UNITS = {"": 1 / 1024**2, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def memory_mib(text: str) -> float | None:
    """sacct's memory figure (``69632K``, ``256M``, ``1G``; ``256Mn``/``256Mc`` before
    Slurm 21.08) in MiB; None for an empty one or 0 (no sample was taken)."""
    match = re.fullmatch(r"([\d.]+)([KMGT]?)[nc]?", text.strip())
    if not match or not float(match.group(1)):
        return None
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2)]


def cpu_seconds(text: str) -> float:
    """sacct's CPU time (``[D-][HH:]MM:SS[.mmm]``) in seconds."""
    days, _, clock = text.strip().rpartition("-")
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part or 0)
    return seconds + (int(days) * 86400 if days else 0)


@dataclass(frozen=True)
class Usage:
    """What accounting recorded of one job or array task: what ``seff`` reports."""

    job_id: str  # the array's id for a task
    task: int | None
    state: str
    exit_code: str
    elapsed_s: float
    cpu_s: float  # TotalCPU: user and system time of all its steps
    cpus: int  # AllocCPUS
    max_rss_mib: float | None  # the largest MaxRSS of its steps; None if none was sampled
    requested_mib: float | None  # ReqMem
    node: str


def sacct_usage(job_ids: list[str], since: str | None = None) -> list[Usage]:
    """Each job and array task of ``job_ids`` as accounting recorded it, in one ``sacct``.

    ``since`` (``YYYY-MM-DDTHH:MM:SS``) leaves out older jobs that had the same
    ids (a cluster whose job ids started again). Tasks still pending are left
    out. Raises :class:`SlurmError` where there is no sacct or no accounting.
    """
    if shutil.which("sacct") is None:
        raise SlurmError("sacct not found on PATH")
    window = ["--starttime", since] if since else []
    try:
        output = run_capturing(["sacct", "--noheader", "--parsable2", *window, "--jobs",
                                ",".join(job_ids), "--format", SACCT_USAGE_FIELDS])[0]  # fmt: skip
    except CommandError as error:  # the last line says why: no database, accounting off...
        lines = [line.strip() for line in error.stderr.splitlines() if line.strip()]
        said = lines[-1] if lines else f"exit code {error.returncode}, no message"
        raise SlurmError(said if said.startswith("sacct") else f"sacct: {said}") from None
    allocations: dict[str, list[str]] = {}
    step_peaks: dict[str, float] = {}
    for line in output.splitlines():
        fields = line.split("|")
        if len(fields) != 9:
            continue
        allocation, _, step = fields[0].partition(".")
        if step:  # "12_3.batch": MaxRSS is measured per step; the extern step only waits
            rss = memory_mib(fields[6]) if step != "extern" else None
            if rss is not None:
                step_peaks[allocation] = max(step_peaks.get(allocation, 0.0), rss)
        else:
            allocations[allocation] = fields
    usages = []
    for job, fields in allocations.items():
        base, task = _job_and_task(job)
        if task is None and "_" in job:  # "12_[3-10]": tasks not started yet
            continue
        cpus = int(fields[5]) if fields[5].isdigit() else 1
        requested = memory_mib(fields[7])
        if requested is not None and fields[7].endswith("c"):  # per CPU, before 21.08
            requested *= cpus
        usages.append(Usage(
            base, task, (fields[1].split() or [""])[0], fields[2],
            float(fields[3]) if fields[3].isdigit() else 0.0, cpu_seconds(fields[4] or "0"),
            cpus, step_peaks.get(job) or memory_mib(fields[6]), requested, fields[8],
        ))  # fmt: skip
    return usages


def cancel(job_ids: list[str]) -> None:
    """Cancel ``job_ids`` (whole arrays included) with one ``scancel``."""
    _call(["scancel", *job_ids])


def test_only(command: list[str]) -> str:
    """Run ``command`` (an sbatch command) with ``--test-only``; return sbatch's answer.

    sbatch checks the script and options and says when and where the job would
    start, without submitting it. A refusal raises :class:`SlurmError`.
    """
    if command[0] != "sbatch":
        raise ValueError(f"not an sbatch command: {command}")
    stdout, stderr = _call_capturing(["sbatch", "--test-only", *command[1:]])
    return (stderr + stdout).strip()
