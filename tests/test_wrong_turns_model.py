"""The run's lifecycle as a model: random sequences of commands and wrong turns.

hypothesis drives what a user (and a cluster) may do to a project folder, in any
order: submit a run (on the fake cluster of tests/fake_cluster.py, or here), resume,
cancel, watch, assemble or render a frame by hand, let the cluster run a job (or stop
one with SIGTERM, as a time limit does), stop a local run with SIGTERM, delete, cut
short or empty the run record, take the data away. After every step it checks:

* no frame is ever deleted unless an archive in output/archives holds its bytes;
* at most one run's jobs are live in the folder;
* a refused command (bad input) leaves the folder as it was;
* once a watch has looked, the record agrees with the queue;

and at the end, that the way out the last command printed, followed (at most twice),
ends in an assembled run with every frame. Runs are small (4 or 6 frames of 64x48)
so that a sequence takes seconds. What it found is kept in tests/test_wrong_turns.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.fake_cluster import install, live_runs, run_next
from tests.helpers import command_line, copy_project, descendants, project_env
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import read_record, run_is_complete
from volcano_gif.run.record import UNDER_WAY, RecordError

SIZE = "64x48"


def shape(frames: int) -> list[str]:
    return ["--frames", str(frames), "--size", SIZE]


class WrongTurns(RuleBasedStateMachine):
    """One project folder, one fake cluster, and whatever a user may do to them."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="wrong-turns-"))
        self.project = copy_project(self.tmp / "project")
        self.paths = ProjectPaths(self.project)
        self.queue = self.tmp / "queue.json"
        self.env = project_env(install(self.tmp / "bin", self.queue))
        self.seen: set[tuple[str, str]] = set()  # (frame name, SHA-256) ever on disk
        self.last = ""  # what the last command printed
        self.frames = 4  # the shape of the last run submitted
        self.looked = False  # a watch has looked since the last change

    # ------------------------------------------------------------- helpers
    def command(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args),
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.last = result.stdout + result.stderr
        assert "Traceback" not in self.last, self.last
        return result

    def volcano_gif(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.command(sys.executable, "-m", "volcano_gif", *args)

    def frames_on_disk(self) -> dict[str, str]:
        return {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.paths.images.glob("image*.png"))
        }

    def archived(self) -> set[tuple[str, str]]:
        held = set()
        for archive in self.paths.archives.glob("*.tar.gz"):
            with tarfile.open(archive) as opened:
                for member in opened:
                    handle = opened.extractfile(member)
                    if handle is not None and member.name.startswith("images/"):
                        digest = hashlib.sha256(handle.read()).hexdigest()
                        held.add((member.name.removeprefix("images/"), digest))
        return held

    def drain(self) -> None:
        while run_next(self.queue, self.env):
            pass

    def snapshot(self) -> tuple[bytes | None, dict[str, str]]:
        record = self.paths.run_record
        return (record.read_bytes() if record.exists() else None, self.frames_on_disk())

    # --------------------------------------------------------------- rules
    @initialize(local=st.booleans())
    def a_run_is_under_way(self, local: bool) -> None:
        self.submit(4, local)

    @rule(frames=st.sampled_from([4, 6]), local=st.booleans())
    def submit(self, frames: int, local: bool) -> None:
        self.frames = frames
        where = ["--local"] if local else ["--frames-per-task", "2"]
        self.command("bash", "submit-gif-job", *where, *shape(frames))

    @rule()
    def resume(self) -> None:
        self.command("bash", "submit-gif-job", "--resume")

    @rule()
    def cancel(self) -> None:
        self.command("bash", "submit-gif-job", "--cancel")

    @rule()
    def cluster_runs_a_job(self) -> None:
        run_next(self.queue, self.env)

    @rule(after=st.sampled_from([0.3, 0.8, 1.5]))
    def cluster_stops_a_job_with_sigterm(self, after: float) -> None:
        run_next(self.queue, self.env, sigterm_after=after)

    @rule(after=st.sampled_from([0.5, 1.2, 2.5]))
    def local_run_stopped_by_sigterm(self, after: float) -> None:
        script = ["bash", "submit-gif-job", "--local", *shape(self.frames)]
        process = subprocess.Popen(
            script, cwd=self.project, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        time.sleep(after)
        for pid in descendants(process.pid):
            if b"plan-submission" in command_line(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)  # what --cancel sends a local run
                break
        output, _ = process.communicate(timeout=120)
        self.last = output.decode()
        assert "Traceback" not in self.last, self.last

    @rule()
    def watch(self) -> None:
        self.drain()
        self.volcano_gif("watch", "--interval", "0.1", "--max-interval", "0.1")
        try:
            record = read_record(self.paths)
        except RecordError:
            return
        if record is not None and not live_runs(self.queue).get(str(self.project)):
            assert record.state not in UNDER_WAY, (record.state, self.last)

    @rule()
    def assemble_by_hand(self) -> None:
        self.volcano_gif("assemble", *shape(self.frames), "--latency-wait", "0")

    @rule(frame=st.integers(1, 4))
    def render_by_hand(self, frame: int) -> None:
        self.command(sys.executable, "volcano.py", str(frame), *shape(self.frames))

    @rule(how=st.sampled_from(["delete", "truncate", "empty"]))
    def damage_the_record(self, how: str) -> None:
        record = self.paths.run_record
        if not record.exists():
            return
        if how == "delete":
            record.unlink()
        else:
            record.write_text(record.read_text()[:200] if how == "truncate" else "{}")

    @rule(local=st.booleans())
    def bad_input(self, local: bool) -> None:
        data = self.project / "data" / "volcano.csv"
        data.rename(data.with_suffix(".away"))
        before = self.snapshot()
        try:
            where = ["--local"] if local else []
            result = self.command("bash", "submit-gif-job", *where, *shape(self.frames))
        finally:
            data.with_suffix(".away").rename(data)
        if result.returncode == 2:  # refused for the data (not for a busy folder)
            assert self.snapshot() == before, self.last
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    # ----------------------------------------------------------- invariants
    @invariant()
    def no_frame_is_lost(self) -> None:
        now = set(self.frames_on_disk().items())
        gone = self.seen - now
        if gone:
            unarchived = gone - self.archived()
            assert not unarchived, f"frames lost: {sorted(unarchived)}\n{self.last}"
        self.seen |= now

    @invariant()
    def one_run_per_folder(self) -> None:
        runs = live_runs(self.queue).get(str(self.project), set())
        assert len(runs) <= 1, (runs, self.last)

    def teardown(self) -> None:
        try:
            self.way_out_finishes_the_run()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def way_out_finishes_the_run(self) -> None:
        """Follow what the last command said to do (or --resume) until the run is done."""
        for _ in range(3):
            self.drain()
            try:
                record = read_record(self.paths)
            except RecordError:
                record = None
            if record is not None and run_is_complete(self.paths, record):
                return
            damaged = re.search(r"\(mv (\S+) (\S+)\) and start the run again", self.last)
            resume = re.search(r"(bash submit-gif-job --resume(?: -- \S+)*)", self.last)
            if damaged:
                (self.project / damaged.group(1)).rename(self.project / damaged.group(2))
                self.command("bash", "submit-gif-job", *shape(self.frames))
            elif resume:
                self.command(*resume.group(1).split())
            elif record is None:
                self.command("bash", "submit-gif-job", *shape(self.frames))
            else:
                self.command("bash", "submit-gif-job", "--resume")
        self.drain()
        record = read_record(self.paths)
        assert record is not None, self.last
        assert run_is_complete(self.paths, record), self.last


#: Sequences tried in the suite: a minute's worth. VOLCANO_MODEL_EXAMPLES=200 explores longer.
EXAMPLES = int(os.environ.get("VOLCANO_MODEL_EXAMPLES", "6"))

TestWrongTurns = WrongTurns.TestCase
TestWrongTurns.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
