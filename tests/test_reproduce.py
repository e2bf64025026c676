"""Was it reproducible? ``volcano-gif verify`` and ``volcano-gif reproduce`` on a local run.

One local run of 12 small frames is made once; each test works on its own copy
of that project folder, and changes its archive (a frame, the record) the way
a mistake or a different machine would. The Slurm side is checked exactly with
the fakes on PATH here, and for real in tests/test_reproduce_slurm.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import matplotlib
import numpy as np
import pytest
from PIL import Image

from tests.fakes import fake_slurm_env, sbatch_calls
from tests.helpers import REPO, copy_project, project_env, run
from volcano_gif.layout import FRAME_LABEL_KEY, frame_name
from volcano_gif.paths import ProjectPaths
from volcano_gif.reproduce.compare import psnr_db
from volcano_gif.run.guard import holding_folder
from volcano_gif.run.lifecycle import require_record, update_record
from volcano_gif.run.record import SCHEMA_FILE, Kind, RunState
from volcano_gif.task.png import encode_rgb

FRAMES = 12
SIZE = "96x72"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
#: The frame these tests change, and the block of its pixels they paint black.
CHANGED = 5
BLOCK = (slice(30, 35), slice(40, 45))


def volcano_gif(
    project: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m volcano_gif ARGS`` in the project folder."""
    return run([sys.executable, "-m", "volcano_gif", *args], cwd=project, env=env)


@pytest.fixture(scope="module")
def made_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder after a local run of 12 frames at 96x72 (made once)."""
    project = copy_project(tmp_path_factory.mktemp("run") / "project")
    result = volcano_gif(project, "local", "--frames", str(FRAMES), "--size", SIZE)
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture
def project(made_run: Path, tmp_path: Path) -> Path:
    """This test's own copy of the project folder after the run."""
    return Path(shutil.copytree(made_run, tmp_path / "project", symlinks=True))


def archive_of(project: Path) -> Path:
    (archive,) = (project / "output/archives").glob("volcano-images-*.tar.gz")
    return archive


def run_id_of(project: Path) -> str:
    return require_record(ProjectPaths(project)).run_id


def scratch_of(project: Path) -> ProjectPaths:
    return ProjectPaths(project / "output/reproduce" / run_id_of(project))


def repack(
    archive: Path,
    target: Path,
    change: Callable[[str, bytes], bytes | None],
    *,
    gzip: bool = True,
) -> Path:
    """Write ``archive`` again as ``target``, each member's bytes through ``change``
    (None leaves the member out)."""
    with (
        tarfile.open(archive, "r:gz") as source,
        tarfile.open(target, "w:gz") if gzip else tarfile.open(target, "w") as copy,
    ):
        for member in source:
            handle = source.extractfile(member)
            assert handle is not None
            data = change(member.name, handle.read())
            if data is not None:
                member.size = len(data)
                copy.addfile(member, io.BytesIO(data))
    return target


def painted(png: bytes) -> bytes:
    """The frame ``png`` with a 5x5 block painted black: still a labelled frame."""
    with Image.open(io.BytesIO(png)) as image:
        label = image.info[FRAME_LABEL_KEY]
        pixels = np.array(image.convert("RGB"))
    pixels[BLOCK] = 0
    return encode_rgb(pixels, 1, {FRAME_LABEL_KEY: label})


def changed_record(change: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], bytes]:
    """A ``repack`` change that edits the archive's run.json."""

    def edit(name: str, data: bytes) -> bytes:
        if name != "run.json":
            return data
        record = json.loads(data)
        change(record)
        return json.dumps(record).encode()

    return edit


def with_frame_painted(name: str, data: bytes) -> bytes:
    return painted(data) if name == f"images/{frame_name(CHANGED)}" else data


def submitted_on_slurm(project: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The project's archive and fake Slurm's environment, once it is reproduced on Slurm."""
    archive, env = archive_of(project), fake_slurm_env(tmp_path)
    assert volcano_gif(project, "reproduce", archive, env=env).returncode == 0
    return archive, env


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The result's one line of error: no traceback, nothing on stdout."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("volcano-gif: error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def snapshot(project: Path) -> dict[str, str]:
    """SHA-256 of every file in the project folder but Python's caches and the reproductions."""
    return {
        str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(project.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not path.is_relative_to(project / "output/reproduce")
    }


# ------------------------------------------------------------------ the good case
def test_a_local_runs_archive_verifies_and_reproduces_identically(project: Path) -> None:
    archive, run_id = archive_of(project), run_id_of(project)
    verified = volcano_gif(project, "verify", archive.relative_to(project))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines() == [
        f"{archive.relative_to(project)}: verified: run {run_id}, all 12 frames as its record "
        "says; output/run.json's checksums of output/gifs/volcano.mp4, "
        "output/gifs/volcano.gif and the archive match"
    ]

    reproduced = volcano_gif(project, "reproduce", archive, "--local")
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    scratch = scratch_of(project)
    record = require_record(scratch)
    lines = reproduced.stdout.splitlines()
    assert lines[0] == (
        f"run {run_id} rendered again as run {record.run_id}: 12 frames of 96x72 in "
        f"output/reproduce/{run_id}"
    )
    assert lines[1].startswith(f"versions: as in the record (matplotlib {matplotlib.__version__}")
    assert lines[2:] == [
        f"identical: all 12 frames have the SHA-256 in run {run_id}'s record and its archive"
    ]
    # The reproduction is a run of its own: its record points at the original.
    original = require_record(ProjectPaths(project))
    assert (record.kind, record.state, record.mode) == (Kind.REPRODUCE, "compared", "local")
    assert record.reproduces is not None
    assert (record.reproduces.run_id, record.reproduces.identical) == (run_id, True)
    assert record.reproduces.source == str(archive)
    assert record.reproduces.source_sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert record.frames_sha256 == original.frames_sha256
    assert record.data_sha256 == original.data_sha256 is not None
    assert record.command == ["volcano-gif", "reproduce", str(archive), "--local"]
    assert original.command == ["volcano-gif", "local", "--frames", "12", "--size", SIZE]
    data = json.loads(scratch.run_record.read_text())
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())

    # Asked again, it says so and prints the outcome again, rendering nothing.
    frames = {path: path.stat().st_mtime_ns for path in scratch.images.iterdir()}
    again = volcano_gif(project, "reproduce", archive, "--local")
    assert again.returncode == 0, again.stderr
    assert again.stdout == reproduced.stdout
    assert "was reproduced already" in again.stderr
    assert {path: path.stat().st_mtime_ns for path in scratch.images.iterdir()} == frames


def test_a_run_record_is_a_source_too_and_finds_its_archive(project: Path) -> None:
    result = volcano_gif(project, "reproduce", "output/run.json", "--local")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical: all 12 frames" in result.stdout
    assert "and its archive" in result.stdout  # found beside the record, and compared with
    record = require_record(scratch_of(project))
    assert record.reproduces is not None
    assert record.reproduces.archive == str(archive_of(project))


def test_the_projects_own_run_and_outputs_are_byte_identical_after_a_reproduce(
    project: Path,
) -> None:
    before = snapshot(project)
    assert {"output/run.json", "output/gifs/volcano.gif", "output/gifs/volcano.mp4"} <= set(before)
    result = volcano_gif(project, "reproduce", archive_of(project), "--local")
    assert result.returncode == 0, result.stderr
    assert snapshot(project) == before
    assert list((project / "images").iterdir()) == []  # the project's images/ stays empty
    assert len(list(scratch_of(project).images.iterdir())) == FRAMES


# ------------------------------------------------------------------ changed frames
def test_one_changed_frame_is_named_by_verify_and_by_reproduce(
    project: Path, tmp_path: Path
) -> None:
    archive = archive_of(project)
    tampered = repack(archive, tmp_path / "tampered.tar.gz", with_frame_painted)
    verified = volcano_gif(project, "verify", tampered)
    assert verified.returncode == 1
    lines = verified.stdout.splitlines()
    frame_lines = [line for line in lines if ": frame " in line]
    assert len(frame_lines) == 1, verified.stdout
    assert re.fullmatch(
        rf"{tampered}: frame {CHANGED}: SHA-256 [0-9a-f]{{12}}\.\.\. in the archive, "
        r"[0-9a-f]{12}\.\.\. in the record: not the frame that was rendered",
        frame_lines[0],
    )
    # ... and output/run.json, the same run's, recorded another archive.
    assert f"{tampered}: the archive's SHA-256 is not the one output/run.json recorded" in (
        verified.stdout
    )
    assert lines[-1] == (
        f"{tampered}: not verified: 2 problems in run {run_id_of(project)}'s archive (12 frames)"
    )

    # Reproduced already from the run's own archive: asked of this one, it compares again.
    assert volcano_gif(project, "reproduce", archive, "--local").returncode == 0
    frames = {path: path.stat().st_mtime_ns for path in scratch_of(project).images.iterdir()}
    reproduced = volcano_gif(project, "reproduce", tampered, "--local")
    assert reproduced.returncode == 1, reproduced.stderr
    assert {path: path.stat().st_mtime_ns for path in scratch_of(project).images.iterdir()} == (
        frames
    )
    (line,) = [line for line in reproduced.stdout.splitlines() if line.startswith("frame ")]
    assert re.fullmatch(
        rf"frame {CHANGED}: the archive's copy is not the frame its record names \(changed after "
        r"the run\?\); this render matches the record: PSNR \d+\.\d dB against the archived "
        r"frame, 25 of 6912 pixels differ",
        line,
    )
    assert reproduced.stdout.splitlines()[-1] == f"not identical: 1 of 12 frames differ ({CHANGED})"
    record = require_record(scratch_of(project))
    assert record.reproduces is not None
    assert record.reproduces.identical is False
    (difference,) = record.reproduces.differences
    assert difference.frame == CHANGED
    assert difference.rendered_sha256 == difference.recorded_sha256 != difference.archived_sha256


def test_a_frame_that_came_out_differently_is_measured_by_psnr(
    project: Path, tmp_path: Path
) -> None:
    """As if frame 5 had been rendered differently elsewhere: archive and record agree on it."""
    archive = archive_of(project)
    name = frame_name(CHANGED)
    with tarfile.open(archive, "r:gz") as source:
        handle = source.extractfile(f"images/{name}")
        assert handle is not None
        original = handle.read()
    other = painted(original)

    def elsewhere(member: str, data: bytes) -> bytes:
        if member == f"images/{name}":
            return other
        if member == "run.json":
            record = json.loads(data)
            record["frames_sha256"][name] = hashlib.sha256(other).hexdigest()
            return json.dumps(record).encode()
        return data

    made_elsewhere = repack(archive, tmp_path / "elsewhere.tar.gz", elsewhere)
    reviewer = tmp_path / "reviewer"  # no output/run.json there: only the archive is checked
    reviewer.mkdir()
    verified = volcano_gif(project, "verify", made_elsewhere, "--root", reviewer)
    assert verified.returncode == 0, verified.stdout
    assert "the MP4 and the GIF are not checked: no output/run.json in" in verified.stdout

    reproduced = volcano_gif(project, "reproduce", made_elsewhere, "--local")
    assert reproduced.returncode == 1, reproduced.stderr
    (line,) = [line for line in reproduced.stdout.splitlines() if line.startswith("frame ")]
    with Image.open(io.BytesIO(original)) as first, Image.open(io.BytesIO(other)) as second:
        expected = psnr_db(np.asarray(first.convert("RGB")), np.asarray(second.convert("RGB")))
    assert line == (
        f"frame {CHANGED}: differs from the record: PSNR {expected:.1f} dB against the archived "
        "frame, 25 of 6912 pixels differ"
    )
    record = require_record(scratch_of(project))
    assert record.reproduces is not None
    (difference,) = record.reproduces.differences
    assert difference.psnr_db == pytest.approx(expected)
    assert difference.recorded_sha256 == difference.archived_sha256 != difference.rendered_sha256


def test_another_matplotlib_version_in_the_record_is_reported(
    project: Path, tmp_path: Path
) -> None:
    def older(record: dict[str, Any]) -> None:
        record["versions"]["matplotlib"] = "3.8.0"

    archive = repack(archive_of(project), tmp_path / "older.tar.gz", changed_record(older))
    result = volcano_gif(project, "reproduce", archive, "--local")
    assert result.returncode == 0, result.stdout + result.stderr  # the frames are identical
    lines = result.stdout.splitlines()
    assert lines[1] == (
        f"versions: matplotlib 3.8.0 in the record, {matplotlib.__version__} here: its Agg "
        "renderer draws the pixels"
    )
    assert lines[-1].startswith("identical: all 12 frames")
    record = require_record(scratch_of(project))
    assert record.reproduces is not None
    assert record.reproduces.version_differences == {
        "matplotlib": ["3.8.0", matplotlib.__version__]
    }


def test_a_byte_changed_in_the_file_fails_gzips_checksum_and_names_the_frame(
    project: Path, tmp_path: Path
) -> None:
    archive = archive_of(project)
    raw = bytearray(archive.read_bytes())
    with tarfile.open(archive, "r:gz") as source:
        handle = source.extractfile(f"images/{frame_name(CHANGED)}")
        assert handle is not None
        frame = handle.read()
    at = raw.find(frame[-200:-100])  # the archive stores the frames (gzip level 0)
    assert at > 0
    raw[at + 50] ^= 0xFF
    flipped = tmp_path / "flipped.tar.gz"
    flipped.write_bytes(raw)
    result = volcano_gif(project, "verify", flipped)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{flipped}: its gzip stream does not check out (CRC check failed" in result.stdout
    assert f"{flipped}: frame {CHANGED}: SHA-256 " in result.stdout
    assert sum(": frame " in line for line in result.stdout.splitlines()) == 1


# ------------------------------------------------------- files that are not archives
def _truncated(archive: Path, target: Path) -> Path:
    target.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return target


def _foreign(archive: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as foreign:
        foreign.add(REPO / "README.md", arcname="README.md")
    return target


def _plain_tar(archive: Path, target: Path) -> Path:
    return repack(archive, target, lambda name, data: data, gzip=False)


def _text(archive: Path, target: Path) -> Path:
    target.write_text("not an archive\n")
    return target


def _empty(archive: Path, target: Path) -> Path:
    target.write_bytes(b"")
    return target


def _record_not_json(archive: Path, target: Path) -> Path:
    return repack(archive, target, lambda name, data: b"{oops" if name == "run.json" else data)


def _record_of_nothing(archive: Path, target: Path) -> Path:
    return repack(archive, target, lambda n, data: b'{"hello": 1}' if n == "run.json" else data)


def _record_from_the_future(archive: Path, target: Path) -> Path:
    return repack(archive, target, changed_record(lambda record: record.update(schema_version=3)))


def _run_id_that_is_a_path(archive: Path, target: Path) -> Path:
    return repack(archive, target, changed_record(lambda record: record.update(run_id="../../x")))


def _frame_count_out_of_range(archive: Path, target: Path) -> Path:
    def edit(record: dict[str, Any]) -> None:
        record["parameters"]["frame_count"] = 0

    return repack(archive, target, changed_record(edit))


def _missing(archive: Path, target: Path) -> Path:
    return target


BAD_FILES = {
    "truncated": (_truncated, "not a volcano-gif archive that reads back (Compressed file ended"),
    "foreign": (_foreign, "not a volcano-gif archive: it holds no run.json"),
    "plain tar": (_plain_tar, "not a volcano-gif archive that reads back (not a gzip file)"),
    "text": (_text, "not a volcano-gif archive that reads back (not a gzip file)"),
    "empty": (_empty, "not a volcano-gif archive that reads back (empty file)"),
    "record not JSON": (_record_not_json, "run.json: not a run record: not JSON"),
    "record of nothing": (_record_of_nothing, "schema version None, not 2"),
    "newer schema": (_record_from_the_future, "written by a newer volcano-gif: update this one"),
    "run id a path": (_run_id_that_is_a_path, "'../../x' is not a run id"),
    "frame count 0": (_frame_count_out_of_range, "frame count 0 is out of range"),
    "missing": (_missing, "no such file"),
}


@pytest.mark.parametrize("command", ["verify", "reproduce"])
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_file_that_is_not_a_runs_archive_gets_one_line_and_no_traceback(
    project: Path, tmp_path: Path, kind: str, command: str
) -> None:
    make, says = BAD_FILES[kind]
    bad = make(archive_of(project), tmp_path / "bad.tar.gz")
    result = volcano_gif(project, command, bad, *(["--local"] if command == "reproduce" else []))
    line = one_line_error(result)
    assert says in line
    assert str(bad) in line
    assert result.returncode == (2 if kind == "missing" else 1)
    assert not (project / "output/reproduce").exists()


# ------------------------------------------------------------------ older records
def _version_1(record: dict[str, Any]) -> None:
    """``record`` as version 1 wrote it: without version 2's fields, and without zlib."""
    for name in ("kind", "data_sha256", "command", "reproduces", "resume_options"):
        del record[name]
    for submission in record["submissions"]:
        del submission["sbatch_options"]
    del record["versions"]["zlib"]
    record["schema_version"] = 1


def test_a_version_1_archive_says_so_and_its_frames_are_still_checked(
    project: Path, tmp_path: Path
) -> None:
    archive = archive_of(project)
    older = repack(archive, tmp_path / "v1.tar.gz", changed_record(_version_1))
    note = (
        f"{older}: its run.json has schema version 1, older than this volcano-gif's 2: the "
        "frames are checked against its frames_sha256, but it records neither the data file's "
        "SHA-256 nor the command that made the run"
    )
    result = volcano_gif(project, "verify", older, "--root", tmp_path)
    assert result.returncode == 0, result.stdout
    assert note in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1].startswith(f"{older}: verified: run ")

    def both(name: str, data: bytes) -> bytes:
        return with_frame_painted(name, changed_record(_version_1)(name, data))

    older_and_changed = repack(archive, tmp_path / "v1-changed.tar.gz", both)
    result = volcano_gif(project, "verify", older_and_changed, "--root", tmp_path)
    assert result.returncode == 1
    assert f"{older_and_changed}: frame {CHANGED}: SHA-256 " in result.stdout

    reproduced = volcano_gif(project, "reproduce", older, "--local")
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    lines = reproduced.stdout.splitlines()
    assert (
        "note: the original record has no SHA-256 of data/volcano.csv (schema version 1): the "
        "data cannot be checked"
    ) in lines
    assert (
        f"versions: zlib is not in the record ({zlib.ZLIB_RUNTIME_VERSION} here): it compresses "
        "the PNG data: the bytes, not the pixels"
    ) in lines


def test_the_data_file_is_checked_against_the_record(project: Path) -> None:
    data = project / "data/volcano.csv"
    data.write_text(data.read_text().replace("\n100,", "\n101,", 1))
    result = volcano_gif(project, "reproduce", archive_of(project), "--local")
    assert result.returncode == 1  # other heights: other frames
    assert "note: data/volcano.csv is not the original run's: SHA-256 " in result.stdout
    assert re.search(r"^not identical: \d+ of 12 frames differ", result.stdout, re.MULTILINE)


# --------------------------------------------------------------- resume and the lock
def test_an_interrupted_reproduction_is_finished_by_the_same_command(project: Path) -> None:
    archive = archive_of(project)
    assert volcano_gif(project, "reproduce", archive, "--local").returncode == 0
    scratch = scratch_of(project)
    for frame in (2, 7):
        scratch.frame(frame).unlink()
    kept = {path.name: path.stat().st_mtime_ns for path in scratch.images.iterdir()}

    # The comparison on its own (what the Slurm job runs) finds them missing.
    compared = volcano_gif(project, "compare", "--root", scratch.root)
    assert compared.returncode == 1
    assert compared.stderr.splitlines()[0] == (
        "volcano-gif: error: 2 of 12 frames of the reproduction are missing or broken; nothing "
        "was compared"
    )
    assert f"  frame 2: missing: {scratch.frame(2)}" in compared.stderr
    assert f"  cd {project} && volcano-gif reproduce {archive}" in compared.stderr
    record = require_record(scratch)
    assert (record.state, record.missing_frames) == ("failed", [2, 7])

    finished = volcano_gif(project, "reproduce", archive, "--local")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "identical: all 12 frames" in finished.stdout
    assert "rendering: 2/2 frames" in finished.stderr
    resumed = require_record(scratch)
    assert resumed.run_id == record.run_id  # the same reproduction, finished
    assert any(
        event.event == "resumed" and event.detail.startswith("2 frames to render")
        for event in resumed.events
    )
    assert {
        name: mtime
        for name, mtime in (
            (path.name, path.stat().st_mtime_ns) for path in scratch.images.iterdir()
        )
        if name in kept
    } == kept

    forced = volcano_gif(project, "reproduce", archive, "--local", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "rendering: 12/12 frames" in forced.stderr
    assert require_record(scratch).run_id != record.run_id  # a new reproduction


def test_a_second_reproduction_of_a_run_is_refused_while_one_is_under_way(project: Path) -> None:
    scratch = scratch_of(project)
    with holding_folder(scratch, f"a reproduction of run {run_id_of(project)}"):
        result = volcano_gif(project, "reproduce", archive_of(project), "--local")
    line = one_line_error(result)
    assert result.returncode == 1
    assert f"a reproduction of run {run_id_of(project)} (pid " in line
    assert f") is under way in {scratch.root}" in line


# ------------------------------------------------------------- Slurm, with fakes
def test_on_slurm_it_submits_the_array_and_a_comparison_after_it(
    project: Path, tmp_path: Path
) -> None:
    env = fake_slurm_env(tmp_path)
    archive = archive_of(project)
    scratch = scratch_of(project).root
    result = volcano_gif(
        project, "reproduce", archive, "--frames-per-task", "5", "--", "--qos=debug", env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "frames job: 1001 (array 1-3)",
        "compare job: 1002 (afterany:1001)",
    ]
    record = require_record(ProjectPaths(scratch))
    array = [
        "--parsable",
        "--array=1-3",
        f"--output={scratch}/output/slurm_files/%x-%A_%a.out",
        f"--error={scratch}/output/slurm_files/%x-%A_%a.err",
        f"--comment=volcano-gif:reproduce:{run_id_of(project)}",
        "--qos=debug",
        "generate_frames.slurm",
        "--root",
        str(scratch),
        "--frames",
        "12",
        "--frames-per-task",
        "5",
        "--run-id",
        record.run_id,
        "--size",
        SIZE,
    ]
    compare = [
        "--parsable",
        "--dependency=afterany:1001",
        f"--output={scratch}/output/slurm_files/%x-%j.out",
        f"--error={scratch}/output/slurm_files/%x-%j.err",
        f"--comment=volcano-gif:reproduce:{run_id_of(project)}",
        "--qos=debug",
        "compare_frames.slurm",
        "--root",
        str(scratch),
    ]
    calls = sbatch_calls(tmp_path / "slurm.log")
    assert [call["args"] for call in calls] == [array, compare]
    assert {call["cwd"] for call in calls} == {str(project)}  # where volcano.py is
    assert (record.kind, record.mode, record.state) == ("reproduce", "slurm", "submitted")
    (submission,) = record.submissions
    assert submission.commands == [["sbatch", *array], ["sbatch", *compare]]
    assert submission.sbatch_options == ["--qos=debug"]
    assert (submission.array_job_id, submission.gif_job_id) == ("1001", "1002")
    assert (submission.kind, submission.frames_per_task) == ("start", 5)
    assert record.versions["slurm"] == "22.05.8"
    assert (Path(scratch) / "output/slurm_files").is_dir()
    assert list((Path(scratch) / ".cache/scenes").glob("scene-*.npz"))  # before any task starts
    jsonschema.validate(record.to_json(), SCHEMA, format_checker=jsonschema.FormatChecker())


def test_on_slurm_frames_per_task_defaults_to_the_runs(project: Path, tmp_path: Path) -> None:
    def four_per_task(record: dict[str, Any]) -> None:
        record["parameters"]["frames_per_task"] = 4  # as if the run was made on Slurm so

    archive = repack(archive_of(project), tmp_path / "f4.tar.gz", changed_record(four_per_task))
    result = volcano_gif(project, "reproduce", archive, env=fake_slurm_env(tmp_path))
    assert result.returncode == 0, result.stderr
    (array, _) = sbatch_calls(tmp_path / "slurm.log")
    assert "--array=1-3" in array["args"]
    at = array["args"].index("--frames-per-task")
    assert array["args"][at + 1] == "4"


def test_on_slurm_a_resume_submits_only_the_missing_frames_with_the_options_so_far(
    project: Path, tmp_path: Path
) -> None:
    archive = archive_of(project)
    assert volcano_gif(project, "reproduce", archive, "--local").returncode == 0
    scratch = scratch_of(project)
    for frame in (3, 11):
        scratch.frame(frame).unlink()
    update_record(scratch, lambda record: record.move_to(RunState.RENDERING, "died"))
    env = fake_slurm_env(tmp_path, FAKE_SBATCH_ANSWERS="1001,1002,1003,1004")
    first = volcano_gif(
        project, "reproduce", archive, "--frames-per-task", "2", "--", "--qos=debug", env=env
    )
    assert first.returncode == 0, first.stderr
    array, compare = sbatch_calls(tmp_path / "slurm.log")
    assert "--array=2,6" in array["args"]
    assert "--dependency=afterany:1001" in compare["args"]
    record = require_record(scratch)
    assert [s.kind for s in record.submissions] == ["resume"]
    assert record.state == "submitted"

    # Its jobs ended without a comparison (say): the same command again, with one more option.
    update_record(scratch, lambda record: record.move_to(RunState.CANCELLED, "stopped"))
    again = volcano_gif(project, "reproduce", archive, "--", "--mem=1G", env=env)
    assert again.returncode == 0, again.stderr
    calls = sbatch_calls(tmp_path / "slurm.log")[2:]
    assert len(calls) == 2
    for call in calls:
        assert call["args"].index("--qos=debug") < call["args"].index("--mem=1G")
    assert [s.sbatch_options for s in require_record(scratch).submissions] == [
        ["--qos=debug"],
        ["--mem=1G"],
    ]


def test_on_slurm_a_reproduction_with_jobs_in_the_queue_is_refused(
    project: Path, tmp_path: Path
) -> None:
    archive, env = submitted_on_slurm(project, tmp_path)
    env["FAKE_SQUEUE_OUTPUT"] = ";".join(
        f"{job}|{state}|{name}|volcano-gif:reproduce:{run_id_of(project)}|{project}"
        for job, state, name in (("1001", "RUNNING", "generate_frames"), ("1002", "PENDING", "x"))
    )
    again = volcano_gif(project, "reproduce", archive, env=env)
    line = one_line_error(again)
    assert again.returncode == 1
    assert "still has jobs in the queue: 1001 (RUNNING), 1002 (PENDING)" in line
    assert f"volcano-gif watch --root {scratch_of(project).root}" in line
    assert len(sbatch_calls(tmp_path / "slurm.log")) == 2  # nothing more was submitted


@pytest.mark.parametrize(
    ("call", "state", "says"),
    [
        (1, "refused", "sbatch: error: invalid partition specified: nope"),
        (2, "failed", "the frame array 1001 was submitted, its comparison job was not"),
    ],
)
def test_on_slurm_a_refused_submission_is_one_line_and_recorded(
    project: Path, tmp_path: Path, call: int, state: str, says: str
) -> None:
    env = fake_slurm_env(tmp_path, FAKE_SBATCH_FAIL_CALL=str(call))
    result = volcano_gif(project, "reproduce", archive_of(project), env=env)
    line = one_line_error(result)
    assert result.returncode == 1
    assert says in line
    record = require_record(scratch_of(project))
    assert record.state == state
    assert len(record.submissions) == call - 1


def test_watching_a_reproduction_whose_jobs_left_says_what_to_do(
    project: Path, tmp_path: Path
) -> None:
    archive, env = submitted_on_slurm(project, tmp_path)
    scratch = scratch_of(project)
    result = volcano_gif(project, "watch", "--root", scratch.root, "--interval", "0.1", env=env)
    assert result.returncode == 1
    assert "compare job 1002: gone, run submitted" in result.stderr
    assert (
        f"reproduction {require_record(scratch).run_id} did not compare its frames: the compare "
        "job 1002 left Slurm's memory without recording an outcome"
    ) in result.stderr
    assert require_record(scratch).state == "failed"  # the record agrees with the queue
    assert f"  cd {project} && volcano-gif reproduce {archive}" in result.stderr


# ------------------------------------------------------------------ small parts
def test_psnr_is_infinite_for_equal_frames_and_known_for_known_ones() -> None:
    black = np.zeros((2, 2, 3), dtype=np.uint8)
    assert math.isinf(psnr_db(black, black.copy()))
    assert psnr_db(black, np.full_like(black, 255)) == 0.0
    one = black.copy()
    one[0, 0, 0] = 1  # mse 1/12
    assert psnr_db(black, one) == pytest.approx(10 * math.log10(255**2 * 12))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_db(black, np.zeros((2, 3, 3), dtype=np.uint8))


@pytest.mark.parametrize("command", ["verify", "reproduce", "compare"])
def test_every_new_command_has_help(tmp_path: Path, command: str) -> None:
    result = volcano_gif(tmp_path, command, "--help", env=project_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: volcano-gif ")


def test_watch_and_local_together_are_refused_in_one_line(project: Path) -> None:
    result = volcano_gif(project, "reproduce", archive_of(project), "--local", "--watch")
    assert "--watch follows Slurm jobs" in one_line_error(result)
    assert result.returncode == 2


# ------------------------------------------------------------------ the guide's page
SECTION = (REPO / "docs/guide/reproducibility.md").read_text()
#: The archive the guide's commands name; a test puts the real one in its place.
SHOWN_ARCHIVE = "output/archives/volcano-images-20261121T093005.tar.gz"


def _shown_commands() -> list[list[str]]:
    block = SECTION.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split() for line in block.splitlines() if line.strip()]


def test_the_guide_s_reproducibility_commands_run(made_run: Path, tmp_path: Path) -> None:
    commands = _shown_commands()
    assert len(commands) == 4
    for index, words in enumerate(commands):
        project = Path(shutil.copytree(made_run, tmp_path / f"project{index}"))
        archive = str(archive_of(project).relative_to(project))
        assert words[:1] == ["volcano-gif"]
        args = [archive if word == SHOWN_ARCHIVE else word for word in words[1:]]
        slurm = tmp_path / f"slurm{index}"
        slurm.mkdir()
        env = project_env() if "--local" in args or args[0] == "verify" else (fake_slurm_env(slurm))
        result = volcano_gif(project, *args, env=env)
        if "--watch" in args:  # fake jobs never run: the watch says how to finish it, exit 1
            assert result.returncode == 1, result.stderr
            assert "did not compare its frames" in result.stderr
        else:
            assert result.returncode == 0, f"{words}: {result.stdout}{result.stderr}"
        submitted = sbatch_calls(slurm / "slurm.log")
        assert len(submitted) == (0 if env.get("FAKE_SLURM_LOG") is None else 2), words
        if "--qos=debug" in args:
            assert all("--qos=debug" in call["args"] for call in submitted)
            assert "--frames-per-task" in submitted[0]["args"]


def _shape(text: str) -> list[str]:
    """Lines with ids, checksums and numbers made alike, to compare their wording."""
    text = re.sub(r"\b[0-9a-f]{12}\.\.\.", "HASH...", text)
    text = re.sub(r"volcano-images-\d{8}T\d{6}\.tar\.gz", "ARCHIVE", text)
    return re.sub(r"\d+(\.\d+)?", "N", text).splitlines()


def test_the_guide_s_example_is_what_the_commands_print(project: Path) -> None:
    archive = archive_of(project)

    def example(name: str, data: bytes) -> bytes:
        data = with_frame_painted(name, data)
        if name == "run.json":
            record = json.loads(data)
            record["versions"]["matplotlib"] = "3.10.0"
            data = json.dumps(record).encode()
        return data

    changed = repack(archive, archive.with_name("changed.tar.gz"), example)
    changed.replace(archive)  # the archive itself was changed, as on the page
    shown = SECTION.split("```text\n", 1)[1].split("```", 1)[0]
    printed = []
    for line in shown.splitlines():
        if line.startswith("$ "):
            words = line[2:].split()
            printed.append(line)
            args = [
                str(archive.relative_to(project)) if w == SHOWN_ARCHIVE else w for w in words[1:]
            ]
            printed += volcano_gif(project, *args).stdout.splitlines()
    assert _shape("\n".join(printed)) == _shape(shown)
