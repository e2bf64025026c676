"""The run record, ``output/run.json``: what a run is, where it stands, what it made.

``submit-gif-job`` (on Slurm and locally) writes it when a run starts; the
assembler updates it with the outcome and the checksums; ``--resume``,
``--cancel`` and ``watch`` read it. It is rewritten atomically, under a short
lock, so it is valid JSON at every moment and no update is lost. Its fields are
defined once, here; ``volcano_gif/run/run.schema.json`` describes the file for
other tools, and a test holds the two together.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import secrets
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from volcano_gif.files import short_hostname
from volcano_gif.files import write_json_atomically
from volcano_gif.layout import DEFAULT_FRAME_COUNT
from volcano_gif.layout import DEFAULT_SIZE
from volcano_gif.layout import FPS
from volcano_gif.layout import RUN_RECORD
from volcano_gif.layout import ProjectPaths
from volcano_gif.layout import UsageError
from volcano_gif.layout import check_frame_count
from volcano_gif.layout import format_size
from volcano_gif.layout import gif_width_for

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("run.schema.json")


class RunState(StrEnum):
    SUBMITTING = "submitting"  # planned; sbatch is being called
    SUBMITTED = "submitted"  # the jobs are queued (Slurm)
    RENDERING = "rendering"  # a local run renders
    ASSEMBLING = "assembling"
    ASSEMBLED = "assembled"  # outputs made and verified, frames archived
    FAILED = "failed"  # see error and missing_frames
    CANCELLED = "cancelled"
    REFUSED = "refused"  # sbatch refused the submission (see error): nothing was queued


#: The states a run may move to each state from: the run's lifecycle in one place.
#: (A run is created SUBMITTING, or RENDERING when local.) What is missing here
#: cannot happen, and :meth:`RunRecord.move_to` refuses it: a run is SUBMITTED
#: or REFUSED only out of its submission, ASSEMBLED only out of an assembly, and
#: an ASSEMBLED or REFUSED run has nothing left to cancel. Every state may be
#: resumed (SUBMITTING, RENDERING) or assembled by hand (ASSEMBLING): also a run
#: whose submitter or assembly died before it could say so.
ALL_STATES = frozenset(RunState)
MOVES: dict[RunState, frozenset[RunState]] = {
    RunState.SUBMITTING: ALL_STATES,
    RunState.RENDERING: ALL_STATES,
    RunState.SUBMITTED: frozenset({RunState.SUBMITTING}),
    RunState.REFUSED: frozenset({RunState.SUBMITTING}),
    RunState.ASSEMBLING: ALL_STATES,
    RunState.ASSEMBLED: frozenset({RunState.ASSEMBLING}),
    RunState.FAILED: frozenset({RunState.ASSEMBLING, RunState.SUBMITTING}),
    RunState.CANCELLED: frozenset(
        {
            RunState.SUBMITTING,
            RunState.SUBMITTED,
            RunState.RENDERING,
            RunState.ASSEMBLING,
            RunState.FAILED,
        }
    ),
}


class Mode(StrEnum):
    SLURM = "slurm"
    LOCAL = "local"


class RecordError(UsageError):
    """The run record is missing or unreadable."""


class TransitionError(RecordError):
    """A run cannot move from its state to the one asked for."""


@dataclass
class Parameters:
    """What the frames and outputs of a run are.

    Built with :meth:`of`, the one way run settings travel into planning, the
    assembly and the local run: it checks them and fills in the defaults.
    """

    frame_count: int
    frames_per_task: int  # per Slurm array task; 1 where no array runs (local, by hand)
    width: int
    height: int
    fps: int
    gif_width: int
    max_running: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def describe(self) -> str:
        return f"{self.frame_count} frames at {format_size(self.size)}"

    @classmethod
    def of(
        cls,
        frame_count: int = DEFAULT_FRAME_COUNT,
        size: tuple[int, int] = DEFAULT_SIZE,
        gif_width: int | None = None,
        frames_per_task: int = 1,
        max_running: int | None = None,
    ) -> Parameters:
        """A run's parameters, checked: the frame count's range, a GIF no wider than
        the frames (400 px by default, or the frame width)."""
        return cls(
            check_frame_count(frame_count), frames_per_task, size[0], size[1], FPS,
            gif_width_for(size, gif_width), max_running,
        )  # fmt: skip


@dataclass
class Submission:
    """One submission of a Slurm run: the first one, or one per --resume."""

    kind: str  # "start" or "resume"
    time: str
    array: str | None  # the --array index list, e.g. "1-360" or "3,17,200-215"
    frames_per_task: int
    commands: list[list[str]]  # the sbatch commands, exactly as run
    array_job_id: str | None = None
    gif_job_id: str | None = None

    @property
    def job_ids(self) -> list[str]:
        return [job for job in (self.array_job_id, self.gif_job_id) if job]


@dataclass
class OutputFile:
    path: str  # relative to the project folder
    sha256: str
    bytes: int
    frames: int | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class AssemblyMemory:
    """What the assembly's processes used at their peak, and what its job asked for."""

    peaks_mib: dict[str, float]  # by process: python, ffmpeg mp4, ffmpeg palette, ffmpeg gif
    requested_mib: float | None = None  # Slurm's --mem for the job; None: no limit asked

    @property
    def together_mib(self) -> float:
        """An upper bound of the job's total: every process at its peak at once."""
        return sum(self.peaks_mib.values())


@dataclass
class Event:
    time: str
    event: str
    detail: str = ""


@dataclass
class RunRecord:
    run_id: str
    mode: Mode
    state: RunState
    parameters: Parameters
    versions: dict[str, str]
    created: str
    updated: str
    schema_version: int = SCHEMA_VERSION
    submitted: str | None = None  # first submission (Slurm) or start (local)
    started: str | None = None  # first render task's start
    ended: str | None = None  # assembly end
    submitter: dict[str, Any] | None = None  # {"host", "pid"} while submitting or running locally
    submissions: list[Submission] = field(default_factory=list)
    assembly_job_id: str | None = None
    assembly_started: str | None = None
    assembly_memory: AssemblyMemory | None = None
    missing_frames: list[int] = field(default_factory=list)
    error: str | None = None
    outputs: dict[str, OutputFile] = field(default_factory=dict)
    frames_sha256: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def mode_is_slurm(self) -> bool:
        return self.mode is Mode.SLURM

    @property
    def latest(self) -> Submission | None:
        return self.submissions[-1] if self.submissions else None

    def job_ids(self) -> list[str]:
        """Every job id of every submission of this run, oldest first."""
        return [job for submission in self.submissions for job in submission.job_ids]

    def array_job_ids(self) -> list[str]:
        return [s.array_job_id for s in self.submissions if s.array_job_id]

    def move_to(self, state: RunState, event: str, detail: str = "") -> None:
        """Move the run to ``state`` and note ``event``; refuse a move :data:`MOVES` lacks."""
        if self.state not in MOVES[state]:
            raise TransitionError(
                f"run {self.run_id} is {self.state.value}: it cannot become {state.value} "
                f"({event}); see output/run.json"
            )
        self.state = state
        self.note(event, detail)

    def note(self, event: str, detail: str = "") -> None:
        """Add an event to the history, and stamp the update time."""
        self.updated = now()
        self.events.append(Event(self.updated, event, detail))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"], data["state"] = self.mode.value, self.state.value
        return data

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """Build a record from parsed JSON; raise RecordError if it is not one."""
        if not isinstance(data, dict):
            raise RecordError("the run record is not a JSON object")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise RecordError(
                f"the run record has schema version {data.get('schema_version')!r}, "
                f"not {SCHEMA_VERSION}"
            )
        try:
            values = _only_fields(cls, data)
            values["mode"], values["state"] = Mode(data["mode"]), RunState(data["state"])
            values["parameters"] = Parameters(**_only_fields(Parameters, data["parameters"]))
            values["submissions"] = [
                Submission(**_only_fields(Submission, s)) for s in data.get("submissions", [])
            ]
            values["outputs"] = {
                name: OutputFile(**_only_fields(OutputFile, o))
                for name, o in data.get("outputs", {}).items()
            }
            memory = data.get("assembly_memory")
            values["assembly_memory"] = (
                AssemblyMemory(**_only_fields(AssemblyMemory, memory)) if memory else None
            )
            values["events"] = [Event(**_only_fields(Event, e)) for e in data.get("events", [])]
            return cls(**values)
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise RecordError(f"the run record lacks or mistypes a field ({error})") from None


def _only_fields(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {key: value for key, value in data.items() if key in names}


def now() -> str:
    """The local time, to the millisecond, with its UTC offset (ISO 8601)."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """A run id that sorts by time: ``20261121T173505-4821``."""
    return f"{datetime.now():%Y%m%dT%H%M%S}-{secrets.randbelow(10000):04d}"


def versions(slurm_version: str | None = None) -> dict[str, str]:
    """The versions that made the frames and outputs."""
    import matplotlib
    import numpy

    found = {
        "python": platform.python_version(),
        "matplotlib": matplotlib.__version__,
        "numpy": numpy.__version__,
    }
    with contextlib.suppress(Exception):  # ffmpeg's version is a nicety, never a failure
        import imageio_ffmpeg

        found["ffmpeg"] = str(imageio_ffmpeg.get_ffmpeg_version())
    if slurm_version:
        found["slurm"] = slurm_version
    return found


def new_record(mode: Mode, parameters: Parameters, slurm_version: str | None = None) -> RunRecord:
    stamp = now()
    record = RunRecord(
        run_id=new_run_id(), mode=mode, state=RunState.SUBMITTING,
        parameters=parameters, versions=versions(slurm_version), created=stamp, updated=stamp,
        submitter={"host": short_hostname(), "pid": os.getppid()
                   if mode is Mode.SLURM else os.getpid()},
    )  # fmt: skip
    record.note("created", f"{mode.value} run of {parameters.describe()}")
    return record


# ---------------------------------------------------------------- reading and writing
def read_record(paths: ProjectPaths) -> RunRecord | None:
    """The run record of this folder, or None if there is none."""
    try:
        text = paths.run_record.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RecordError(f"{paths.run_record}: cannot read the run record: {error}") from None
    try:
        return RunRecord.from_json(json.loads(text))
    except (json.JSONDecodeError, RecordError) as error:
        raise RecordError(
            f"{paths.run_record}: not a run record of this version ({error}); "
            f"move it away to start a new run"
        ) from None


def require_record(paths: ProjectPaths) -> RunRecord:
    record = read_record(paths)
    if record is None:
        raise RecordError(
            f"there is no run record ({RUN_RECORD}) in {paths.root}: nothing to resume or "
            "cancel; start a run with: bash submit-gif-job"
        )
    return record


def write_record(paths: ProjectPaths, record: RunRecord) -> None:
    """Write ``record`` atomically (callers that read first use :func:`updating`)."""
    paths.output.mkdir(parents=True, exist_ok=True)
    write_json_atomically(paths.run_record, record.to_json())


@contextlib.contextmanager
def record_lock(paths: ProjectPaths) -> Iterator[None]:
    """Hold the record's lock: one read-modify-write at a time, across processes."""
    paths.output.mkdir(parents=True, exist_ok=True)
    with open(paths.record_lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_record(
    paths: ProjectPaths, change: Callable[[RunRecord], None], run_id: str | None = None
) -> RunRecord | None:
    """Apply ``change`` to the record on disk and write it back, under the lock.

    With ``run_id``, only a record of that run is changed (a newer run in the
    folder is left alone). Returns the record written, or None if none was.
    """
    with record_lock(paths):
        record = read_record(paths)
        if record is None or (run_id is not None and record.run_id != run_id):
            return None
        change(record)
        record.updated = now()
        write_record(paths, record)
        return record


def run_is_complete(paths: ProjectPaths, record: RunRecord) -> bool:
    """True if the run was assembled and its outputs are on disk, checksums intact."""
    return record.state == RunState.ASSEMBLED and outputs_verified(paths, record)


def outputs_verified(paths: ProjectPaths, record: RunRecord) -> bool:
    """True if every output in the record is on disk with its recorded checksum."""
    from volcano_gif.files import sha256_of

    if set(record.outputs) != {"mp4", "gif", "archive"}:
        return False
    for output in record.outputs.values():
        path = paths.root / output.path
        if not path.is_file() or sha256_of(path) != output.sha256:
            return False
    return True
