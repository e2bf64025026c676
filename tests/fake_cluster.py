"""A small Slurm of our own for the stateful test: fake sbatch, squeue, scontrol and scancel
that share one queue (a JSON file), and a scheduler the test calls to run its jobs.

Not a proof of anything Slurm does: tests/test_slurm.py and tests/test_faults.py run the
real one. This exists so that hypothesis can drive hundreds of command sequences in a
minute: jobs run only when the test says so, one job (all tasks of an array) at a time,
as ``bash SCRIPT ARGS`` in the folder it was submitted from, with Slurm's variables and
its per-task logs. What the tool asks of the queue is answered as Slurm answers it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import REPO

PROGRAMS = ("sbatch", "squeue", "scontrol", "scancel", "sacct", "sacctmgr")
LIVE = ("PENDING", "RUNNING")
_UNREACHABLE = "Unable to contact slurm controller (connect failure)"


def install(bin_dir: Path, queue: Path) -> dict[str, str]:
    """Write the programs into ``bin_dir``; the environment that puts them first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in PROGRAMS:
        program = bin_dir / name
        program.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
            f"from tests.fake_cluster import main\nsys.exit(main({name!r}, sys.argv[1:]))\n"
        )
        program.chmod(0o755)
    queue.write_text(json.dumps({"next": 1001, "jobs": [], "down": False}))
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_CLUSTER": str(queue)}


@contextmanager
def _queue(path: Path) -> Iterator[dict[str, Any]]:
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text())
        yield state
        path.write_text(json.dumps(state))


def main(name: str, args: list[str]) -> int:
    path = Path(os.environ["FAKE_CLUSTER"])
    if name == "sbatch":  # a slow controller: each submission takes this long
        time.sleep(float(os.environ.get("FAKE_SBATCH_SLEEP", "0")))
    with _queue(path) as state:
        if state["down"] and name in {"sbatch", "squeue", "scontrol", "scancel"}:
            print(f"{name}: error: {_UNREACHABLE}", file=sys.stderr)
            return 1
        if name == "sbatch":
            return _sbatch(state, args)
        if name == "squeue":
            return _squeue(state, args)
        if name == "scontrol":
            return _scontrol(state, args)
        if name == "scancel":
            for job in state["jobs"]:
                if job["id"] in args and job["state"] in LIVE:
                    job["state"] = "CANCELLED"
            return 0
    print("Slurm accounting storage is disabled", file=sys.stderr)
    return 1


def _sbatch(state: dict[str, Any], args: list[str]) -> int:
    options = [arg for arg in args[: _script_index(args)]]
    script, script_args = args[_script_index(args)], args[_script_index(args) + 1 :]
    given = dict(option.partition("=")[::2] for option in options)
    if "--test-only" in given:
        print("sbatch: Job 999 to start at 2026-12-06T10:00:00 using 1 processors", file=sys.stderr)
        return 0
    text = (Path.cwd() / script).read_text()
    name = re.search(r"^#SBATCH --job-name=(\S+)", text, flags=re.MULTILINE)
    array = given.get("--array")
    tasks = _indices(array) if array else None
    after = given.get("--dependency", "").removeprefix("afterany:") or None
    job = {
        "id": str(state["next"]),
        "name": name.group(1) if name else script,
        "script": script,
        "args": script_args,
        "cwd": str(Path.cwd()),
        "comment": given.get("--comment", ""),
        "tasks": tasks,
        "after": after,
        "held": "--hold" in given or "-H" in given,
        "state": "PENDING",
        "python": os.environ.get("VOLCANO_PYTHON", sys.executable),
    }
    state["next"] += 1
    state["jobs"].append(job)
    print(job["id"])
    return 0


def _script_index(args: list[str]) -> int:
    return next(index for index, arg in enumerate(args) if not arg.startswith("-"))


def _indices(spec: str) -> list[int]:
    indices: list[int] = []
    for part in spec.split("%", 1)[0].split(","):
        first, _, last = part.partition("-")
        indices.extend(range(int(first), int(last or first) + 1))
    return indices


def _squeue(state: dict[str, Any], args: list[str]) -> int:
    fmt = args[args.index("--format") + 1]
    wanted = set()
    if "--jobs" in args:
        wanted = set(args[args.index("--jobs") + 1].split(","))
    every = "--states=all" in args
    for job in state["jobs"]:
        if (wanted and job["id"] not in wanted) or (not every and job["state"] not in LIVE):
            continue
        tasks = job["tasks"] if job["tasks"] and "--array" in args else [None]
        for task in tasks:
            print(_line(fmt, job, task))
    return 0


def _line(fmt: str, job: dict[str, Any], task: int | None) -> str:
    values = {
        "F": job["id"],
        "i": job["id"] if task is None else f"{job['id']}_{task}",
        "K": "N/A" if task is None else str(task),
        "T": job["state"],
        "j": job["name"],
        "k": job["comment"] or "(null)",
        "Z": job["cwd"],
        "r": "JobHeldUser" if job["held"] else ("Dependency" if job["after"] else "None"),
        "m": "256M",
        "l": "5:00",
    }
    return re.sub(r"%(\w)", lambda match: values.get(match.group(1), ""), fmt)


def _scontrol(state: dict[str, Any], args: list[str]) -> int:
    if args[:2] == ["show", "config"]:
        print("MaxArraySize            = 1001\nMinJobAge               = 300 sec")
        print(
            "SLURM_VERSION           = 22.05.8\nAccountingStorageType   = accounting_storage/none"
        )
        return 0
    if "release" in args:
        for job in state["jobs"]:
            if job["id"] in args[-1].split(","):
                job["held"] = False
        return 0
    wanted = args[-1]
    found = [job for job in state["jobs"] if job["id"] == wanted]
    if not found:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    job = found[0]
    print(f"JobId={job['id']} JobName={job['name']} JobState={job['state']} Reason=None")
    return 0


# --------------------------------------------------------------- the scheduler
def live_runs(queue: Path) -> dict[str, set[str]]:
    """``{folder: {run ids of its live jobs}}``."""
    runs: dict[str, set[str]] = {}
    for job in json.loads(queue.read_text())["jobs"]:
        if job["state"] in LIVE:
            runs.setdefault(job["cwd"], set()).add(job["comment"])
    return runs


def set_down(queue: Path, down: bool) -> None:
    with _queue(queue) as state:
        state["down"] = down


def run_next(queue: Path, env: dict[str, str], *, sigterm_after: float | None = None) -> bool:
    """Run the first job that may start (its dependency ended, not held); False if none may.

    ``sigterm_after`` sends the job SIGTERM that many seconds in (a time limit, say).
    """
    with _queue(queue) as state:
        ended = {job["id"] for job in state["jobs"] if job["state"] not in LIVE}
        ready = [
            job
            for job in state["jobs"]
            if job["state"] == "PENDING"
            and not job["held"]
            and (job["after"] is None or job["after"] in ended)
        ]
        if not ready:
            return False
        job = ready[0]
        job["state"] = "RUNNING"
    codes = [
        _run_task(job, task, env, sigterm_after)
        for task in (job["tasks"] if job["tasks"] else [None])
    ]
    with _queue(queue) as state:
        for known in state["jobs"]:
            if known["id"] == job["id"] and known["state"] == "RUNNING":
                known["state"] = "COMPLETED" if not any(codes) else "FAILED"
    return True


def _run_task(
    job: dict[str, Any], task: int | None, env: dict[str, str], sigterm_after: float | None
) -> int:
    names = {"SLURM_JOB_ID": job["id"], "VOLCANO_PYTHON": job["python"]}
    if task is not None:
        names |= {"SLURM_ARRAY_JOB_ID": job["id"], "SLURM_ARRAY_TASK_ID": str(task)}
    logs = Path(job["cwd"]) / "output" / "slurm_files"
    logs.mkdir(parents=True, exist_ok=True)
    stem = f"{job['name']}-{job['id']}" + (f"_{task}" if task is not None else "")
    with open(logs / f"{stem}.out", "w") as out, open(logs / f"{stem}.err", "w") as err:
        process = subprocess.Popen(
            ["bash", job["script"], *job["args"]],
            cwd=job["cwd"],
            env={**env, **names},
            stdout=out,
            stderr=err,
        )
        try:
            return process.wait(timeout=sigterm_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            return process.wait(timeout=60)
