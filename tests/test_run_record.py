"""The run record: its fields against the schema, atomic writes, no lost update."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from volcano_gif.errors import UsageError
from volcano_gif.layout import RUN_RECORD
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import (
    new_record,
    read_record,
    require_record,
    update_record,
    write_record,
)
from volcano_gif.run.record import (
    SCHEMA_FILE,
    SCHEMA_VERSION,
    AssemblyMemory,
    Event,
    FrameDifference,
    Kind,
    Mode,
    OutputFile,
    Parameters,
    RecordError,
    Reproduction,
    RunRecord,
    RunState,
    Submission,
    TransitionError,
)

SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())


def _record() -> RunRecord:
    record = new_record(Mode.SLURM, Parameters(36, 1, 640, 480, 25, 400, 4), "22.05.8")
    record.submissions.append(
        Submission(
            "start",
            record.created,
            "1-36%4",
            1,
            [["sbatch", "--parsable", "--array=1-36%4", "generate_frames.slurm"]],
            "12",
            "13",
        )
    )
    record.outputs["gif"] = OutputFile("output/gifs/volcano.gif", "a" * 64, 10, 36, 400, 300)
    record.frames_sha256["image0001.png"] = "b" * 64
    record.assembly_memory = AssemblyMemory({"python": 180.5, "ffmpeg gif": 60.0}, 1024.0)
    return record


def test_a_record_validates_against_the_schema_and_round_trips() -> None:
    record = _record()
    data = record.to_json()
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert RunRecord.from_json(json.loads(json.dumps(data))) == record


@pytest.mark.parametrize(
    ("kind", "schema_path"),
    [
        (RunRecord, []),
        (Parameters, ["properties", "parameters"]),
        (Submission, ["properties", "submissions", "items"]),
        (Event, ["properties", "events", "items"]),
        (OutputFile, ["$defs", "output"]),
        (AssemblyMemory, ["properties", "assembly_memory"]),
        (Reproduction, ["properties", "reproduces", "oneOf", 1]),
        (FrameDifference, ["$defs", "frame_difference"]),
    ],
)
def test_the_schema_names_exactly_the_dataclass_fields(kind: type, schema_path: list[str]) -> None:
    node: dict[str, Any] = SCHEMA
    for key in schema_path:
        node = node[key]
    assert set(node["properties"]) == {field.name for field in dataclasses.fields(kind)}
    assert node.get("additionalProperties") is False


def _reproduction() -> RunRecord:
    record = new_record(
        Mode.LOCAL,
        Parameters(12, 1, 96, 72, 25, 96),
        kind=Kind.REPRODUCE,
        command=["volcano-gif", "reproduce", "x.tar.gz", "--local"],
    )
    record.data_sha256 = "c" * 64
    record.state = RunState.COMPARED
    record.reproduces = Reproduction(
        "20261121T173505-4821",
        "/p/output/archives/x.tar.gz",
        "d" * 64,
        "/p/output/archives/x.tar.gz",
        identical=False,
        compared=record.created,
        differences=[FrameDifference(5, "e" * 64, "f" * 64, "e" * 64, 31.5, "the archive's copy")],
        version_differences={"matplotlib": ["3.8.0", "3.11.2"], "zlib": [None, "1.3"]},
        notes=["a note"],
    )
    return record


def test_a_reproductions_record_validates_against_the_schema_and_round_trips() -> None:
    record = _reproduction()
    data = record.to_json()
    assert (data["kind"], data["state"]) == ("reproduce", "compared")
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert RunRecord.from_json(json.loads(json.dumps(data))) == record


def test_a_new_record_keeps_the_data_files_checksum_and_the_command(tmp_path: Path) -> None:
    data = tmp_path / "volcano.csv"
    data.write_text("V1,V2\n1,2\n")
    record = new_record(
        Mode.LOCAL,
        Parameters.of(12),
        data_file=data,
        command=["volcano-gif", "local", "--frames", "12"],
    )
    assert record.data_sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    assert record.command == ["volcano-gif", "local", "--frames", "12"]
    assert record.kind is Kind.RUN
    assert record.reproduces is None
    assert {"python", "matplotlib", "numpy", "zlib"} <= set(record.versions)
    jsonschema.validate(record.to_json(), SCHEMA, format_checker=jsonschema.FormatChecker())


def _version_1(record: RunRecord) -> dict[str, Any]:
    """``record`` as schema version 1 wrote it: without the fields version 2 added."""
    data = record.to_json()
    for name in ("kind", "data_sha256", "command", "reproduces", "resume_options"):
        del data[name]
    for submission in data["submissions"]:
        del submission["sbatch_options"]
    data["schema_version"] = 1
    return data


def test_a_version_1_record_is_read_with_the_new_fields_at_their_defaults(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path)
    paths.output.mkdir()
    paths.run_record.write_text(json.dumps(_version_1(_record())))
    record = require_record(paths)  # a run started before the upgrade can be resumed
    assert record.schema_version == SCHEMA_VERSION == 2
    assert (record.kind, record.data_sha256, record.command, record.reproduces) == (
        Kind.RUN,
        None,
        None,
        None,
    )
    assert record.frames_sha256 == _record().frames_sha256
    update_record(paths, lambda current: current.note("resumed"))
    written = json.loads(paths.run_record.read_text())
    assert written["schema_version"] == 2
    jsonschema.validate(written, SCHEMA, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    ("version", "says"),
    [
        (3, "schema version 3, not 2; it was written by a newer volcano-gif: update this one"),
        (None, "schema version None, not 2"),
    ],
)
def test_a_record_of_an_unknown_version_is_refused_in_one_line(
    tmp_path: Path, version: int | None, says: str
) -> None:
    paths = ProjectPaths(tmp_path)
    paths.output.mkdir()
    data = {**_record().to_json(), "schema_version": version}
    paths.run_record.write_text(json.dumps(data))
    with pytest.raises(RecordError) as raised:
        read_record(paths)
    assert "\n" not in str(raised.value)
    assert says in str(raised.value)
    if version is not None and version > SCHEMA_VERSION:
        assert str(raised.value).endswith("update this one")
    else:  # damaged: what to do
        assert f"(mv {RUN_RECORD} {RUN_RECORD}.damaged) and start the run again" in str(
            raised.value
        )


def test_the_schema_rejects_a_record_with_a_wrong_field() -> None:
    data = _record().to_json()
    data["state"] = "finished"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)


def test_write_is_atomic_and_leaves_no_temporary(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path)
    write_record(paths, _record())
    assert sorted(p.name for p in paths.output.iterdir()) == ["run.json"]
    assert read_record(paths) == _record().__class__.from_json(
        json.loads(paths.run_record.read_text())
    )


def test_a_broken_record_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path)
    paths.output.mkdir()
    paths.run_record.write_text('{"schema_version": 1, "run_id": ')
    with pytest.raises(RecordError) as raised:
        read_record(paths)
    assert "\n" not in str(raised.value)
    assert "is damaged (not valid JSON: " in str(raised.value)
    assert "it was cut short or edited. Move it away" in str(raised.value)
    assert "if its jobs are still queued, cancel them first: bash submit-gif-job --cancel" in str(
        raised.value
    )


def test_no_record_means_nothing_to_resume(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"no run record \(output/run.json\) in .*bash submit"):
        require_record(ProjectPaths(tmp_path))


def _add_events(root: str, worker: int) -> None:
    paths = ProjectPaths(Path(root))
    for index in range(40):

        def add(record: RunRecord, detail: str = str(index)) -> None:
            record.note(f"worker {worker}", detail)

        update_record(paths, add)


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path)
    write_record(paths, _record())
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_events, args=(str(tmp_path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
    events = require_record(paths).events
    for worker in range(3):
        assert [e.detail for e in events if e.event == f"worker {worker}"] == [
            str(index) for index in range(40)
        ]


def test_an_update_for_another_run_changes_nothing(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path)
    write_record(paths, _record())
    before = paths.run_record.read_text()
    assert update_record(paths, lambda record: record.note("x"), run_id="someone-else") is None
    assert paths.run_record.read_text() == before


#: Every move a run can never make, written out as the lifecycle's spec.
IMPOSSIBLE_MOVES = {
    (before, after)
    for after, allowed_from in {
        "submitted": {"submitting"},
        "refused": {"submitting"},
        "assembled": {"assembling"},
        "compared": {"assembling"},
        "failed": {"assembling", "submitting", "submitted", "rendering"},
        "cancelled": {"submitting", "submitted", "rendering", "assembling", "failed"},
    }.items()
    for before in {state.value for state in RunState} - allowed_from
}


@pytest.mark.parametrize("before", [state.value for state in RunState])
@pytest.mark.parametrize("after", [state.value for state in RunState])
def test_the_lifecycle_allows_every_move_but_the_impossible_ones(before: str, after: str) -> None:
    record = _record()
    record.state = RunState(before)
    if (before, after) in IMPOSSIBLE_MOVES:
        with pytest.raises(TransitionError, match=f"is {before}: it cannot become {after}"):
            record.move_to(RunState(after), "test move")
        assert record.state == before
    else:
        record.move_to(RunState(after), "test move", "detail")
        assert (record.state, record.events[-1].event) == (after, "test move")


def test_a_refused_move_says_so_in_one_line() -> None:
    record = _record()
    record.state = RunState.ASSEMBLED
    with pytest.raises(TransitionError) as raised:
        record.move_to(RunState.CANCELLED, "cancelled")
    assert str(raised.value) == (
        f"run {record.run_id} is assembled: it cannot become cancelled (cancelled); "
        "see output/run.json"
    )


def test_parameters_of_checks_and_fills_in_a_runs_settings() -> None:
    assert Parameters.of() == Parameters(360, 1, 640, 480, 25, 400)
    assert Parameters.of(12, (96, 72)) == Parameters(12, 1, 96, 72, 25, 96)
    assert Parameters.of(24, (640, 480), 200, 6, 2) == Parameters(24, 6, 640, 480, 25, 200, 2)
    with pytest.raises(UsageError, match="frame count 0 is out of range"):
        Parameters.of(0)
    with pytest.raises(UsageError, match="--gif-width 700 is wider than the frames"):
        Parameters.of(12, (640, 480), 700)


def test_a_version_1_record_reads_as_version_2_with_no_options_kept(tmp_path: Path) -> None:
    data = _record().to_json()
    data["schema_version"] = 1
    del data["resume_options"]
    for submission in data["submissions"]:
        del submission["sbatch_options"]
    paths = ProjectPaths(tmp_path)
    paths.output.mkdir()
    paths.run_record.write_text(json.dumps(data))
    record = require_record(paths)
    assert (record.schema_version, record.resume_options) == (2, [])
    assert [s.sbatch_options for s in record.submissions] == [[]]
    assert record.resume_command() == "bash submit-gif-job --resume"
    record.resume_options = ["--mem=1024M"]
    assert record.resume_command() == "bash submit-gif-job --resume -- --mem=1024M"
