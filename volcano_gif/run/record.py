"""The run record, ``output/run.json``: what a run is, where it stands, what it made.

Its fields, its states and the moves between them are defined once, here;
:mod:`volcano_gif.run.lifecycle`, the run's one owner, writes the file and makes
every move. ``volcano_gif/run/run.schema.json`` describes the file for other
tools, and a test holds the two together.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from volcano_gif.layout import DEFAULT_FRAME_COUNT, DEFAULT_SIZE, FPS, UNDER_WAY_STATES
from volcano_gif.numbering import check_frame_count, format_size, gif_width_for

logger = logging.getLogger(__name__)

#: 2: each submission keeps the sbatch options given after ``--``, and a run the
#: options its resume needs (``resume_options``); a run records its kind (a run,
#: or a reproduction: ``volcano-gif reproduce``), its data file's SHA-256, the
#: command that made it, and what a reproduction reproduces. A version-1 record
#: reads as a version-2 one with those at their defaults (:func:`migrated`).
SCHEMA_VERSION = 2
SCHEMA_FILE = Path(__file__).with_name("run.schema.json")
#: What :func:`new_run_id` makes; a run id names folders, so nothing else is used as one.
RUN_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9]{4}$")


class RunState(StrEnum):
    SUBMITTING = "submitting"  # planned; sbatch is being called
    SUBMITTED = "submitted"  # the jobs are queued (Slurm)
    RENDERING = "rendering"  # a local run renders
    ASSEMBLING = "assembling"
    ASSEMBLED = "assembled"  # outputs made and verified, frames archived
    FAILED = "failed"  # see error and missing_frames
    CANCELLED = "cancelled"
    REFUSED = "refused"  # sbatch refused the submission (see error): nothing was queued
    COMPARED = "compared"  # a reproduction's frames were compared (see reproduces)


#: The states of a run whose jobs or processes may be at work: it may fail or be cancelled.
ALL_STATES, UNDER_WAY = frozenset(RunState), frozenset(map(RunState, UNDER_WAY_STATES))
#: The states a run may move to each state from (it is created SUBMITTING, or RENDERING
#: here); :meth:`RunRecord.move_to` refuses the rest. SUBMITTED and REFUSED come only out of
#: a submission, ASSEMBLED (a reproduction: COMPARED) only out of the step after the array;
#: any run may be resumed, or assembled by hand, also one whose process died unheard.
MOVES: dict[RunState, frozenset[RunState]] = {
    RunState.SUBMITTING: ALL_STATES,
    RunState.RENDERING: ALL_STATES,
    RunState.SUBMITTED: frozenset({RunState.SUBMITTING}),
    RunState.REFUSED: frozenset({RunState.SUBMITTING}),
    RunState.ASSEMBLING: ALL_STATES,
    RunState.ASSEMBLED: frozenset({RunState.ASSEMBLING}),
    RunState.COMPARED: frozenset({RunState.ASSEMBLING}),
    RunState.FAILED: UNDER_WAY,
    RunState.CANCELLED: UNDER_WAY | {RunState.FAILED},
}


class Mode(StrEnum):
    SLURM = "slurm"
    LOCAL = "local"


class Kind(StrEnum):
    RUN = "run"  # renders, then assembles the MP4, the GIF and the archive
    REPRODUCE = "reproduce"  # renders a past run's frames again and compares them


class RecordError(RuntimeError):
    """The run record is unreadable, or not what it must be: a failure (exit 1)."""


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
        count, width = check_frame_count(frame_count), gif_width_for(size, gif_width)
        return cls(count, frames_per_task, *size, FPS, width, max_running)


@dataclass
class Submission:
    """One submission of a Slurm run: the first one, or one per --resume."""

    kind: str  # "start" or "resume"
    time: str
    array: str | None  # the --array index list, e.g. "1-360" or "3,17,200-215"
    frames_per_task: int
    commands: list[list[str]]  # the sbatch commands, exactly as run
    array_job_id: str | None = None
    gif_job_id: str | None = None  # the dependent job: the assembly, or a reproduction's comparison
    #: What came after ``--`` for this submission (the run's own, or a resume's additions).
    sbatch_options: list[str] = field(default_factory=list)

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
class FrameDifference:
    """A frame of a reproduction that is not the original run's, and how."""

    frame: int
    recorded_sha256: str | None  # in the original's record; None: it has none for this frame
    archived_sha256: str | None  # of the archive's copy; None: not in it, or no archive
    rendered_sha256: str  # of the frame rendered again
    psnr_db: float | None  # between the new and the archived frame; None: not measured, or equal
    detail: str  # one line: what differs, and by how much


@dataclass
class Reproduction:
    """What a run of kind ``reproduce`` renders again, and how the frames compared."""

    run_id: str  # the original run
    source: str  # the archive (or run record) it was read from, absolute
    source_sha256: str
    archive: str | None = None  # the archive whose frames the new ones are measured against
    identical: bool | None = None  # None until compared
    compared: str | None = None
    differences: list[FrameDifference] = field(default_factory=list)
    #: {name: [in the original's record, here]} for each version that differs
    version_differences: dict[str, list[str | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. the data file differs


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
    kind: Kind = Kind.RUN
    data_sha256: str | None = None  # of data/volcano.csv when the run was made
    command: list[str] | None = None  # the command that made the run, e.g. submit-gif-job ...
    reproduces: Reproduction | None = None  # a reproduction's original run, and the outcome
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
    #: sbatch options the run's resume needs, named with its failure: e.g. ["--mem=1024M"]
    #: after the assembly was killed for memory.
    resume_options: list[str] = field(default_factory=list)
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

    def sbatch_options(self) -> list[str]:
        """The sbatch options of every submission so far, in order: what a resume reuses.

        A later option wins over an earlier one, as it does for sbatch itself. All
        but ``--hold``: a run submitted held was released by hand; its resume is not held.
        """
        return [
            option
            for submission in self.submissions
            for option in submission.sbatch_options
            if not (option == "-H" or (len(option) > 3 and "--hold".startswith(option)))
        ]

    def resume_command(self) -> str:
        """The one command that finishes this run, with the options its failure needs."""
        fix = " -- " + " ".join(self.resume_options) if self.resume_options else ""
        return f"bash submit-gif-job --resume{fix}"

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
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """Build a record from parsed JSON; raise RecordError if it is not one."""
        data = migrated(data)
        try:
            values = _only_fields(cls, data)
            values["mode"], values["state"] = Mode(data["mode"]), RunState(data["state"])
            values["kind"] = Kind(data.get("kind", Kind.RUN))
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
            origin = data.get("reproduces")
            if origin:
                values["reproduces"] = Reproduction(
                    **{
                        **_only_fields(Reproduction, origin),
                        "differences": [
                            FrameDifference(**_only_fields(FrameDifference, d))
                            for d in origin.get("differences", [])
                        ],
                    }
                )
            return cls(**values)
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise RecordError(f"the run record lacks or mistypes a field ({error})") from None


def migrated(data: Any) -> dict[str, Any]:
    """``data`` as a record of this schema version; raise RecordError if it cannot be.

    Version 1 lacks only what version 2 added: no sbatch options were kept, no
    resume options; it has no ``kind``, ``data_sha256``, ``command`` or
    ``reproduces`` either, and is read with their defaults.
    """
    if not isinstance(data, dict):
        raise RecordError("the run record is not a JSON object")
    version = data.get("schema_version")
    if version == SCHEMA_VERSION:
        return data
    if version == 1:
        return {**data, "schema_version": SCHEMA_VERSION, "resume_options": []}
    newer = isinstance(version, int) and version > SCHEMA_VERSION
    raise RecordError(
        f"the run record has schema version {version!r}, not {SCHEMA_VERSION}"
        + ("; it was written by a newer volcano-gif: update this one" if newer else "")
    )


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it has the form :func:`new_run_id` makes, else raise RecordError."""
    if not RUN_ID_RE.match(run_id):
        raise RecordError(f"{run_id!r} is not a run id (such as 20261121T173505-4821)")
    return run_id


def _only_fields(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {key: value for key, value in data.items() if key in names}


def now() -> str:
    """The local time, to the millisecond, with its UTC offset (ISO 8601)."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """A run id that sorts by time: ``20261121T173505-4821``."""
    return f"{datetime.now():%Y%m%dT%H%M%S}-{secrets.randbelow(10000):04d}"
