"""Each render task's own timing, for the run report.

A render task (one Slurm array task, or one local worker process) keeps a
:class:`TaskTiming` and writes it, atomically, as one small JSON file in
``output/timing/``: where it ran, when its process started, when its imports
were done and its figure was ready, when each frame started and finished, and
when it ended. Only the standard library is used here: render tasks start
fast, and the report (pandas, seaborn) reads these files later.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volcano_gif.files import short_hostname, write_json_atomically
from volcano_gif.stage_times import peak_memory_mib


def process_start_time() -> float:
    """When this process started, in seconds since the epoch.

    Linux keeps it in ``/proc/self/stat`` (field 22, clock ticks since boot),
    so it includes the interpreter's own start-up. Elsewhere: now.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


def requested_memory_mib() -> float | None:
    """The memory this Slurm job asked for, in MiB, or None (no --mem, or not on Slurm).

    Slurm sets ``SLURM_MEM_PER_NODE`` for ``--mem`` and ``SLURM_MEM_PER_CPU`` for
    ``--mem-per-cpu`` (in MB, which Slurm means as MiB).
    """
    try:
        per_node = os.environ.get("SLURM_MEM_PER_NODE")
        if per_node:
            return float(per_node)
        per_cpu = os.environ.get("SLURM_MEM_PER_CPU")
        if per_cpu:
            return float(per_cpu) * int(os.environ.get("SLURM_CPUS_ON_NODE", "1"))
    except ValueError:
        return None
    return None


def node_name() -> str:
    """The Slurm node this runs on, else the short host name."""
    return os.environ.get("SLURMD_NODENAME") or short_hostname()


@dataclass
class TaskTiming:
    """The timeline of one render task; times are seconds since the epoch."""

    task: str  # "slurm-<job>_<task>" or "local-<run>-<pid>": also the file name
    kind: str  # "slurm" or "local"
    node: str = field(default_factory=node_name)
    pid: int = field(default_factory=os.getpid)
    process_start: float = field(default_factory=process_start_time)
    job_id: str | None = None  # the array job, on Slurm
    array_task: int | None = None
    run_id: str | None = None  # the run it belongs to (given to a Slurm task by the submission)
    imports_done: float | None = None
    ready: float | None = None  # the figure is built: the next thing is frame one
    frames: list[list[float]] = field(default_factory=list)  # [frame, started, finished]
    skipped: list[int] = field(default_factory=list)  # existed and were usable
    end: float | None = None
    peak_rss_mib: float | None = None  # the process's peak resident memory, at its end
    mem_requested_mib: float | None = None  # the job's --mem, on Slurm
    cpu_s: float | None = None  # the process's user and system CPU time, at its end
    cpus: int = 1  # the CPUs it was given: its Slurm allocation on the node, else one

    @classmethod
    def for_slurm_task(cls, job_id: str, array_task: int, run_id: str | None) -> TaskTiming:
        """The timing of this process, array task ``array_task`` of job ``job_id``."""
        task = f"slurm-{job_id}_{array_task}"
        return cls(task, "slurm", job_id=job_id, array_task=array_task, run_id=run_id)

    @classmethod
    def for_local_worker(cls, run_id: str) -> TaskTiming:
        """The timing of this process, a local worker of run ``run_id``."""
        return cls(f"local-{run_id}-{os.getpid()}", "local", run_id=run_id)

    def frame_done(self, frame: int, started: float) -> None:
        self.frames.append([frame, started, time.time()])

    def save(self, folder: Path) -> Path:
        """Write this timing (with peak memory and CPU time so far) to ``folder/<task>.json``."""
        self.peak_rss_mib = round(peak_memory_mib(), 1)
        self.mem_requested_mib = requested_memory_mib()
        used = os.times()
        self.cpu_s = round(used.user + used.system, 3)
        self.cpus = int(os.environ.get("SLURM_CPUS_ON_NODE") or 1)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{self.task}.json"
        write_json_atomically(target, asdict(self))
        return target


def load_run_timings(
    folder: Path, array_job_ids: list[str], run_id: str
) -> tuple[list[dict[str, object]], list[str]]:
    """The timing records of one run, and a warning for each file that is broken.

    A Slurm task's file belongs to the run if its array job is one of the run's
    and it names the run (job ids repeat where a cluster starts again from 1); a
    local worker's, if it names the run.
    """
    records: list[dict[str, object]] = []
    problems: list[str] = []
    wanted = (*(f"slurm-{job}_" for job in array_job_ids), f"local-{run_id}-")
    for path in _timing_files(folder, wanted):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("process_start"), float):
                raise ValueError("no process_start")
            if data.get("run_id") not in (None, run_id):
                continue  # another run's task that had the same array job id
            records.append(data)
        except (OSError, ValueError) as error:
            problems.append(f"{path}: not a task timing record ({error}); left out")
    return records, problems


def remove_other_runs_timings(folder: Path, run_id: str) -> list[Path]:
    """Remove every timing file that is not of run ``run_id``: a new run starts with none.

    Only our own files (``slurm-*.json``, ``local-*.json``) are touched.
    """
    removed = []
    for path in _timing_files(folder, ("slurm-", "local-")):
        try:
            owner = json.loads(path.read_text(encoding="utf-8")).get("run_id")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner != run_id:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _timing_files(folder: Path, prefixes: tuple[str, ...]) -> list[Path]:
    """The ``.json`` files in ``folder`` whose names start with one of ``prefixes``, sorted."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    return [folder / name for name in names if name.endswith(".json") and name.startswith(prefixes)]
