"""What happens when a job or task fails, and the one command that finishes the run.

A run fails in one of a few ways, and every part of the pipeline names them
the same way, from here:

* **frames missing or broken**: a task failed (its frame did not rename into
  place, Python raised), was cancelled, or lost its node. The assembly (with
  ``afterany``) finds the gap, deletes nothing, and says so; ``bash
  submit-gif-job --resume`` renders only those frames. (assembly/assembler.py)
* **killed for memory**: the kernel's OOM killer, in the job's cgroup, killed
  a process that went over the job's ``--mem``. Slurm then ends the job
  ``OUT_OF_MEMORY``. A render task's frames are then missing; the assembly's
  ffmpeg, or the assembly itself, is killed. :func:`memory_kill_in_this_job`
  sees it from inside the job, :func:`kills` from the job states.
* **killed for time**: the job ran past its ``--time`` and Slurm ended it
  ``TIMEOUT``.

For memory and time the fix is more of it: :class:`Kill` names what was asked
for and the sbatch option that asks for more (at least the script's own
default, which is measured with a margin, and at least twice what was asked),
so that the one command becomes ``bash submit-gif-job --resume -- --mem=1024M``.
The watch (submit/watch.py) and the run report (run/report.py) say it too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from volcano_gif import slurm
from volcano_gif.layout import ASSEMBLY_MEMORY, ASSEMBLY_TIME, RENDER_TASK_MEMORY, RENDER_TASK_TIME
from volcano_gif.numbering import compress_ranges
from volcano_gif.sacct import seconds

#: The job states that mean "killed for want of a resource", and the resource.
KILLED_FOR = {"OUT_OF_MEMORY": "memory", "TIMEOUT": "time"}
#: Memory suggestions are rounded up to this many MiB.
MEMORY_STEP_MIB = 256


@dataclass(frozen=True)
class Kill:
    """Jobs or array tasks that Slurm ended for want of memory or time."""

    job: str  # the array's job id, or the assembly's
    tasks: tuple[int, ...]  # the array tasks; () for the assembly job
    cause: str  # "memory" or "time"
    asked: str  # as Slurm wrote it ("60M", "5:00"), or "" if not known
    fix: str  # the sbatch option that asks for enough: "--mem=1024M", "--time=00:10:00"

    def line(self) -> str:
        """One line: what was killed, for what, what it asked for, what to ask for."""
        if self.tasks:
            listed = compress_ranges(self.tasks)
            who = f"array task{'s' if len(self.tasks) > 1 else ''} {listed} of job {self.job}"
        else:
            who = f"the assembly job {self.job}"
        state = "OUT_OF_MEMORY" if self.cause == "memory" else "TIMEOUT"
        option = "--mem" if self.cause == "memory" else "--time"
        subject = "each" if len(self.tasks) > 1 else "it"
        shown = _shown(self.asked, self.cause)
        asked = f"{subject} asked for {shown} ({option})" if self.asked else ""
        return (
            f"{who} ran out of {self.cause} ({state}): "
            + (f"{asked}; " if asked else "")
            + f"ask for more with {self.fix}"
        )


def kills(lines: Iterable[slurm.JobLine]) -> list[Kill]:
    """The kills among a run's job lines (squeue, scontrol or sacct): one per job and cause.

    A line of an array task has a task index; the assembly job's has none.
    """
    found: dict[tuple[str, str], list[slurm.JobLine]] = {}
    for line in lines:
        cause = KILLED_FOR.get(line.state)
        if cause is not None:
            found.setdefault((line.job_id, cause), []).append(line)
    result = []
    for (job, cause), killed in sorted(found.items()):
        is_array = any(line.task is not None for line in killed)
        asked = killed[0].memory if cause == "memory" else killed[0].time_limit
        tasks = tuple(sorted(line.task for line in killed if line.task is not None))
        result.append(
            Kill(job, tasks if is_array else (), cause, asked, _fix(cause, asked, is_array))
        )
    return result


def assembly_killed_for_memory(job: str, asked_mib: float | None) -> Kill:
    """The assembly job's own kill for memory, as it sees it from inside."""
    asked = f"{asked_mib:.0f}M" if asked_mib else ""
    return Kill(job, (), "memory", asked, _fix("memory", asked, is_array=False))


def over_asked_line(peaks_mib: Iterable[float], asked_mib: float | None) -> str | None:
    """A warning when render tasks peaked above the memory they asked for, else None.

    Where cgroups enforce ``--mem`` such a task is killed as soon as its pages
    are needed; where they do not, it may crowd its node.
    """
    over = [peak for peak in peaks_mib if asked_mib and peak > asked_mib]
    if not over or not asked_mib:
        return None
    fix = _fix("memory", f"{asked_mib:.0f}M", is_array=True)
    return (
        f"warning: {len(over)} render task{'s' if len(over) > 1 else ''} peaked above the "
        f"{asked_mib:.0f} MiB asked for (at most {max(over):.0f} MiB): where cgroups enforce "
        f"--mem such a task is killed; ask for more with {fix}"
    )


def fix_options(found: Iterable[Kill], given: Iterable[str] = ()) -> list[str]:
    """The sbatch options that fix every kill: the largest --mem and --time asked for.

    ``given`` are options a record holds already (the assembly's own finding):
    each option keeps the larger of the two.
    """
    best: dict[str, str] = {}
    for option in [*given, *(kill.fix for kill in found)]:
        name, _, value = option.partition("=")
        if name not in best or _size(name, value) > _size(name, best[name]):
            best[name] = value
    return [f"{name}={value}" for name, value in sorted(best.items())]


def _fix(cause: str, asked: str, is_array: bool) -> str:
    if cause == "memory":
        default = slurm.memory_mib(RENDER_TASK_MEMORY if is_array else ASSEMBLY_MEMORY) or 0.0
        had = slurm.memory_mib(asked) if asked else None
        wanted = max(default, 2 * had if had else 0.0)
        return f"--mem={math.ceil(wanted / MEMORY_STEP_MIB) * MEMORY_STEP_MIB}M"
    default = seconds(RENDER_TASK_TIME if is_array else ASSEMBLY_TIME)
    had = seconds(asked) if asked and asked != "UNLIMITED" else 0.0
    return f"--time={_clock(max(default, 2 * had))}"


def _size(name: str, value: str) -> float:
    if name == "--mem":
        return slurm.memory_mib(value) or 0.0
    return seconds(value) if name == "--time" else 0.0


def _clock(total: float) -> str:
    whole = math.ceil(total)
    days, rest = divmod(whole, 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{clock}" if days else clock


def _shown(asked: str, cause: str) -> str:
    if cause == "memory":
        mib = slurm.memory_mib(asked)
        return f"{mib:.0f} MiB" if mib else asked
    return asked


# ---------------------------------------------------------- inside the job
def _memory_cgroup() -> Path | None:
    """This process's memory cgroup folder (cgroup v1 or v2), or None if it has none."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    for line in lines:
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    return None


def oom_kills() -> int | None:
    """How many processes the OOM killer has killed in this process's cgroup so far."""
    folder = _memory_cgroup()
    if folder is None:
        return None
    for name in ("memory.oom_control", "memory.events"):  # v1, v2
        try:
            text = (folder / name).read_text()
        except OSError:
            continue
        match = re.search(r"^oom_kill (\d+)$", text, flags=re.MULTILINE)
        if match:
            return int(match.group(1))
    return None


def job_memory_peak_mib() -> float | None:
    """The highest memory use of this job's cgroup so far (v1 or v2), in MiB, if known."""
    folder = _memory_cgroup()
    while folder is not None and folder.name and not folder.name.startswith("job_"):
        folder = folder.parent if folder != folder.parent else None
    if folder is None or not folder.name:
        return None
    for name in ("memory.max_usage_in_bytes", "memory.peak"):  # v1, v2
        try:
            return int((folder / name).read_text()) / 2**20
        except (OSError, ValueError):
            continue
    return None


def memory_kill_in_this_job(returncode: int, kills_before: int | None) -> bool:
    """True if a child that ended with ``returncode`` was killed by the cgroup's OOM killer."""
    if returncode not in (-9, 137):  # SIGKILL, as Python or a shell reports it
        return False
    after = oom_kills()
    return after is not None and after > (kills_before or 0)
