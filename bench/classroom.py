"""A class at once: N learners submit and watch a run each, on one controller.

    python -m bench.run --class 10 30                     # 72 frames per learner
    python -m bench.run --class 10 --class-frames 360

For each class size N, a localhost cluster of several emulated nodes,
configured as a site configures Slurm (tools/local_slurm.py's ``site``
profile, with accounting when MariaDB and slurmdbd are installed), takes N
unprivileged learners (Unix users ``volcano-class01`` ..., made if missing,
sharing the Python of tools/learners.py's learner), each in a copy of the
project of their own, each running what a learner types: ``bash
submit-gif-job`` then ``volcano-gif watch``, all N at once. It runs twice:
with the default one frame per task, and with the frames per task that the
first run's report recommends. For each it reports the time from the first
submission to the last GIF, the jobs the class queued, and the controller's
remote procedure calls (RPCs) by type, from ``sdiag`` (reset with ``sdiag
-r`` before each), per learner. That is the load a class puts on a site's
controller, and what the instructor notes quote.

The emulated nodes share this machine's cores: the times say how the
scheduler copes, not how fast a real partition of that many nodes would be.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.markdown import number_table
from tools.learners import LEARNER, Learner
from tools.workspace import copy_project
from volcano_gif.commands import run

DEFAULT_CLASS_SIZES = (10, 30)
DEFAULT_FRAMES = 72
NODES = 4
#: Enough room for 30 learners' one-frame arrays of 360 (Slurm's default is 10000).
MAX_JOB_COUNT = 50_000
#: The RPC types the table shows, when they were called at all.
SHOWN_RPCS = (
    "REQUEST_SUBMIT_BATCH_JOB",
    "REQUEST_JOB_INFO",
    "REQUEST_JOB_INFO_SINGLE",
    "REQUEST_BUILD_INFO",
    "REQUEST_COMPLETE_BATCH_SCRIPT",
    "MESSAGE_EPILOG_COMPLETE",
    "REQUEST_STEP_COMPLETE",
    "REQUEST_JOB_STEP_CREATE",
    "REQUEST_FED_INFO",
)


@dataclass
class Seat:
    """One learner of the class, at work in a project folder of their own."""

    learner: Learner
    folder: Path
    finished: float | None = None  # seconds after the class started, when the watch ended
    gif: bool = False
    error: str = ""


@dataclass(frozen=True)
class ClassRun:
    learners: int
    frames: int
    frames_per_task: int
    seconds_to_last_gif: float
    gifs: int
    jobs: int  # array tasks and assembly jobs the class queued
    rpcs: dict[str, int] = field(default_factory=dict)  # by type, for the whole class

    def per_learner(self, rpc: str) -> float:
        return self.rpcs.get(rpc, 0) / self.learners


def sdiag_rpcs(env: dict[str, str]) -> dict[str, int]:
    """The controller's RPC counts by message type, from ``sdiag``."""
    text = run(["sdiag"], env=env)
    section = text.split("by message type", 1)[-1].split("by user", 1)[0]
    return {
        name: int(count)
        for name, count in re.findall(
            r"^\s*(\w+)\s+\(\s*\d+\)\s+count:(\d+)", section, re.MULTILINE
        )
    }


def class_learners(size: int) -> list[Learner]:
    """The class's Unix users, ``volcano-class01`` ... (made if missing; root only)."""
    return [Learner.named(f"volcano-class{k:02d}") for k in range(1, size + 1)]


def class_env(slurm_conf: Path) -> dict[str, str]:
    """What every learner's shell has: the cluster, and a Python all of them can run."""
    owner = Learner.named(LEARNER)
    owner.home.chmod(owner.home.stat().st_mode | 0o055)  # the class may use what is in it
    python = owner.python()
    return {**os.environ, "SLURM_CONF": str(slurm_conf), "VOLCANO_PYTHON": str(python)}


def _at_work(seat: Seat, frames: int, per_task: int, env: dict[str, str], began: float) -> None:
    """What one learner types: submit-gif-job, then volcano-gif watch, as themselves."""
    submit = ["bash", "submit-gif-job", "--frames", str(frames), "--frames-per-task", str(per_task)]
    submitted = seat.learner.run(submit, cwd=seat.folder, env=env, timeout=3600)
    if submitted.returncode == 0:
        watch = [env["VOLCANO_PYTHON"], "-m", "volcano_gif", "watch", "-q"]
        watched = seat.learner.run(watch, cwd=seat.folder, env=env, timeout=3600)
        seat.gif = watched.returncode == 0 and watched.stdout.strip().endswith(".gif")
        failed = watched
    else:
        failed = submitted
    if not seat.gif:
        said = failed.stderr.strip().splitlines()
        seat.error = said[-1] if said else f"exit code {failed.returncode}"
    seat.finished = time.monotonic() - began


def recommended_frames_per_task(folder: Path, default: int) -> int:
    """The ``--frames-per-task`` the run's report recommends, else ``default``."""
    summary = folder / "output/report/summary.txt"
    text = summary.read_text() if summary.is_file() else ""
    match = re.search(r"use --frames-per-task (\d+) or more", text)
    return int(match.group(1)) if match else default


def run_class(
    learners: Sequence[Learner], frames: int, per_task: int, env: dict[str, str], parent: Path
) -> tuple[ClassRun, list[Seat]]:
    """N learners at once: each submits a run and watches it to its GIF."""
    parent.mkdir(parents=True, exist_ok=True)
    parent.chmod(0o755)
    seats = []
    for learner in learners:
        folder = copy_project(parent / learner.name)
        seats.append(Seat(learner, learner.own(folder)))
    size = len(seats)
    run(["sdiag", "-r"], env=env)
    began = time.monotonic()
    threads = [
        threading.Thread(target=_at_work, args=(seat, frames, per_task, env, began))
        for seat in seats
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rpcs = sdiag_rpcs(env)
    last = max(seat.finished or 0.0 for seat in seats)
    tasks = -(-frames // per_task)
    result = ClassRun(
        size, frames, per_task, last, sum(seat.gif for seat in seats), size * (tasks + 1), rpcs
    )
    return result, seats


def table(runs: Sequence[ClassRun]) -> str:
    """A markdown table: one row per class size and setting, RPCs per learner by type."""
    totals: Counter[str] = Counter()
    for class_run in runs:
        totals.update(class_run.rpcs)
    shown = [rpc for rpc in SHOWN_RPCS if totals[rpc]]
    shown += [rpc for rpc, _ in totals.most_common() if rpc not in shown][: max(0, 10 - len(shown))]
    header = [
        "learners",
        "frames/task",
        "jobs queued",
        "time to last GIF (s)",
        "GIFs",
        "RPCs per learner",
        *shown,
    ]
    rows = [
        [
            str(class_run.learners),
            str(class_run.frames_per_task),
            str(class_run.jobs),
            f"{class_run.seconds_to_last_gif:.0f}",
            f"{class_run.gifs}/{class_run.learners}",
            f"{sum(class_run.rpcs.values()) / class_run.learners:.0f}",
            *(f"{class_run.per_learner(rpc):.1f}" for rpc in shown),
        ]
        for class_run in runs
    ]
    return number_table(header, rows)


def main(sizes: Sequence[int], frames: int, output: Path) -> int:
    from tools import local_slurm

    if local_slurm.missing_programs():
        print(
            f"the class benchmark needs Slurm: missing {local_slurm.missing_programs()}",
            file=sys.stderr,
        )
        return 1
    accounting = not local_slurm.missing_programs(accounting=True)
    learners = class_learners(max(sizes))
    cluster = local_slurm.Cluster(
        Path(tempfile.mkdtemp(prefix="volcano-slurm-class-")),
        nodes=NODES,
        accounting=accounting,
        settings=(("MaxJobCount", str(MAX_JOB_COUNT)),),
        learners=tuple(learner.name for learner in learners),
    )
    local_slurm.start(cluster)
    env = class_env(cluster.conf)
    runs: list[ClassRun] = []
    print(
        f"# class benchmark: {frames} frames per learner, {NODES} emulated nodes, "
        f"accounting {'on' if accounting else 'off'}",
        file=sys.stderr,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="volcano-class-") as scratch:
            Path(scratch).chmod(0o755)  # the learners work below it
            for size in sizes:
                recommended = 1
                for label, per_task in (("1 frame per task", 1), ("recommended", None)):
                    parent = Path(scratch) / f"{size}-{label.split()[0]}"
                    count = per_task if per_task is not None else recommended
                    class_run, seats = run_class(learners[:size], frames, count, env, parent)
                    runs.append(class_run)
                    failed = [seat for seat in seats if not seat.gif]
                    print(
                        f"# {size} learners, {count} frames/task: last GIF after "
                        f"{class_run.seconds_to_last_gif:.0f} s, {class_run.gifs} GIFs"
                        + (f"; first failure: {failed[0].error}" if failed else ""),
                        file=sys.stderr,
                    )
                    if per_task == 1:
                        recommended = recommended_frames_per_task(seats[0].folder, frames)
                    shutil.rmtree(parent)
    finally:
        local_slurm.stop(cluster)
        shutil.rmtree(cluster.folder, ignore_errors=True)
    report = table(runs)
    print(
        f"\nA class at once: {frames} frames per learner, {NODES} emulated nodes on this "
        f"machine's cores, accounting {'on' if accounting else 'off'}; RPC counts from "
        "sdiag, per learner.\n"
    )
    print(report)
    output.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (output / f"class-{stamp}.md").write_text(report + "\n")
    return 0 if all(class_run.gifs == class_run.learners for class_run in runs) else 1
