"""The assembler on a 12-frame run: outputs, read-backs, the record, nothing lost on failure."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tarfile
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import SMALL_FRAME_COUNT
from tests.helpers import project_env, run
from tests.media import gif_facts, mp4_frame_count, video_stream
from volcano_gif.assembly import outputs as outputs_module
from volcano_gif.assembly.archive import ArchiveError, archive_path, write_archive
from volcano_gif.assembly.assembler import FramesNotReadyError, assemble
from volcano_gif.assembly.ffmpeg_commands import (
    concat_list,
    gif_command,
    mp4_command,
    palette_command,
    palette_frames,
)
from volcano_gif.assembly.verify import OutputError
from volcano_gif.layout import frame_name
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.lifecycle import new_record, require_record, write_record
from volcano_gif.run.record import Mode, Parameters, RunState
from volcano_gif.task.data import load_grid
from volcano_gif.task.render import FrameRenderer

N = SMALL_FRAME_COUNT


def _frames_left(paths: ProjectPaths) -> list[str]:
    return sorted(p.name for p in paths.images.iterdir())


def _outputs_left(paths: ProjectPaths) -> list[str]:
    return sorted(
        p.name
        for folder in (paths.gifs, paths.archives)
        if folder.exists()
        for p in folder.iterdir()
    )


@pytest.fixture
def recorded_project(rendered_project: ProjectPaths) -> ProjectPaths:
    """A complete 12-frame run with its run record, as submit-gif-job writes it."""
    record = new_record(Mode.LOCAL, Parameters(N, 1, 640, 480, 25, 400))
    record.state = RunState.RENDERING
    write_record(rendered_project, record)
    return rendered_project


def test_assembles_mp4_gif_and_verified_archive(rendered_project: ProjectPaths) -> None:
    paths = rendered_project
    frame_bytes = {name: (paths.images / name).read_bytes() for name in _frames_left(paths)}
    result = assemble(paths, N, now=datetime(2026, 11, 21, 9, 30, 5))

    assert result.mp4 == paths.root / "output/gifs/volcano.mp4"
    stream = video_stream(result.mp4)
    assert "h264" in stream
    assert "yuv420p" in stream
    assert "640x480" in stream
    assert "25 fps" in stream
    assert mp4_frame_count(result.mp4) == N

    assert result.gif == paths.root / "output/gifs/volcano.gif"
    frames, size, loop, delay = gif_facts(result.gif)
    assert (frames, size, loop, delay) == (N, (400, 300), 0, 40)

    assert result.archive == paths.root / "output/archives/volcano-images-20261121T093005.tar.gz"
    with tarfile.open(result.archive) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive}  # type: ignore[union-attr]
    assert members == {f"images/{name}": data for name, data in frame_bytes.items()}
    # A real .tar.gz (gzip level 0 only stores): GNU tar lists it, CRCs checked.
    assert result.archive.read_bytes()[:2] == b"\x1f\x8b"
    listing = run(["tar", "-tzf", result.archive], cwd=paths.root)
    assert listing.returncode == 0, listing.stderr
    assert sorted(listing.stdout.split()) == sorted(members)

    assert _frames_left(paths) == []
    assert result.frames_deleted == N
    leftovers = [p for p in (paths.root / "output").rglob(".*.tmp")]
    assert leftovers == []


def test_the_record_gets_every_checksum_and_the_archive_a_copy_of_it(
    recorded_project: ProjectPaths,
) -> None:
    paths = recorded_project
    digests = {
        name: hashlib.sha256((paths.images / name).read_bytes()).hexdigest()
        for name in _frames_left(paths)
    }
    result = assemble(paths, N)
    record = require_record(paths)
    assert record.state == "assembled"
    assert record.frames_sha256 == digests
    for kind, path in (("mp4", result.mp4), ("gif", result.gif), ("archive", result.archive)):
        output = record.outputs[kind]
        assert output.path == str(path.relative_to(paths.root))
        assert output.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert output.bytes == path.stat().st_size
    assert (record.outputs["gif"].width, record.outputs["gif"].height) == (400, 300)
    assert record.assembly_started is not None
    assert record.ended is not None
    with tarfile.open(result.archive) as archive:
        copy = json.loads(archive.extractfile("run.json").read())  # type: ignore[union-attr]
    assert copy["run_id"] == record.run_id
    assert copy["frames_sha256"] == digests


def test_archive_names_have_no_colon_and_never_overwrite(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = archive_path(tmp_path, now)
    assert first.name == "volcano-images-20260102T030405.tar.gz"
    first.touch()
    assert archive_path(tmp_path, now).name == "volcano-images-20260102T030405-2.tar.gz"


def test_ffmpeg_commands_are_exact() -> None:
    images, out = Path("/p/images"), Path("/p/out.tmp")
    quiet = ["ff", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    frames_in = ["-framerate", "25", "-start_number", "1", "-i", "/p/images/image%04d.png"]
    common = [*quiet, *frames_in, "-frames:v", "12"]
    assert mp4_command("ff", images, 12, out) == [
        *common,
        "-vf",
        "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-c:v",
        "libx264",
        "-preset",
        "superfast",
        "-pix_fmt",
        "yuv420p",
        "-r",
        "25",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        "/p/out.tmp",
    ]
    assert gif_command("ff", images, 12, out, 400, palette=Path("/t/palette.png")) == [
        *quiet,
        *frames_in,
        "-i",
        "/t/palette.png",
        "-frames:v",
        "12",
        "-filter_complex",
        "[0:v]scale=400:-1:flags=area[frames];"
        "[frames][1:v]paletteuse=dither=none:diff_mode=rectangle",
        "-loop",
        "0",
        "-f",
        "gif",
        "/p/out.tmp",
    ]
    assert palette_command("ff", Path("/t/frames.txt"), Path("/t/palette.png"), 400) == [
        *quiet,
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        "/t/frames.txt",
        "-vf",
        "scale=400:-1:flags=area,palettegen",
        "-update",
        "1",
        "-frames:v",
        "1",
        "/t/palette.png",
    ]


def test_the_palette_comes_from_at_most_36_frames_spread_over_the_turn() -> None:
    assert palette_frames(12) == list(range(1, 13))
    assert palette_frames(360) == list(range(1, 361, 10))
    assert palette_frames(3600) == list(range(1, 3601, 100))
    assert palette_frames(37) == sorted(set(palette_frames(37)))
    assert len(palette_frames(37)) == 36
    assert palette_frames(37)[-1] <= 37
    assert concat_list([Path("/a b/it's/image0001.png")]) == (
        "file '/a b/it'\\''s/image0001.png'\n"
    )


def test_a_project_given_by_a_relative_path_assembles(
    rendered_project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The GIF's palette reads a list of frames: ffmpeg takes relative names in
    # it from the list's own (temporary) folder, so the names must be absolute.
    monkeypatch.chdir(rendered_project.root)
    result = assemble(ProjectPaths(Path(".")), N)
    assert result.frames_deleted == N


def test_missing_frame_is_named_and_the_resume_command_comes_first(
    recorded_project: ProjectPaths,
) -> None:
    paths = recorded_project
    (paths.images / frame_name(5)).unlink()
    with pytest.raises(FramesNotReadyError) as raised:
        assemble(paths, N)
    lines = str(raised.value).splitlines()
    assert lines[0] == (
        "1 of 12 frames are missing or broken (5); nothing was assembled and no frame was deleted"
    )
    assert lines[1] == f"  frame 5: missing: {paths.images / 'image0005.png'}"
    assert lines[2:4] == [
        "finish the run with one command, from the project folder:",
        f"  cd {paths.root} && bash submit-gif-job --resume",
    ]
    assert len(lines) == 5  # nothing to scroll: no by-hand commands that list every frame
    assert len(_frames_left(paths)) == N - 1
    assert _outputs_left(paths) == []
    record = require_record(paths)
    assert (record.state, record.missing_frames) == ("failed", [5])
    assert record.error == lines[0]


def test_broken_frame_is_named(rendered_project: ProjectPaths) -> None:
    paths = rendered_project
    frame = paths.images / frame_name(7)
    frame.write_bytes(frame.read_bytes()[:2000])
    with pytest.raises(FramesNotReadyError, match=r"frame 7: does not decode: .*image0007.png"):
        assemble(paths, N)
    assert len(_frames_left(paths)) == N


def test_a_frame_of_another_run_is_named(rendered_project: ProjectPaths) -> None:
    paths = rendered_project
    FrameRenderer(load_grid(paths.data_file), 24).render(6, paths.images)
    with pytest.raises(
        FramesNotReadyError,
        match=r"frame 6: is frame 6 of 24, 640x480, not a frame of 12 at 640x480: ",
    ):
        assemble(paths, N)


def test_many_missing_frames_are_listed_briefly(rendered_project: ProjectPaths) -> None:
    # Frames 1-12 are there, but they are frames of a 12-frame run: wrong for 60.
    with pytest.raises(FramesNotReadyError) as raised:
        assemble(rendered_project, 60)
    text = str(raised.value)
    assert text.startswith(
        "60 of 60 frames are missing or broken (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, "
        "... (48 more)); nothing was assembled"
    )
    assert "frame 1: is frame 1 of 12, 640x480, not a frame of 60 at 640x480" in text
    assert "  ... and 40 more" in text


def test_the_printed_command_finishes_a_run_that_had_no_record(
    rendered_project: ProjectPaths,
) -> None:
    paths = rendered_project  # frames, but no output/run.json: assembled by hand
    for frame in (3, 4, 9):
        (paths.images / frame_name(frame)).unlink()
    failed = run(
        [sys.executable, "-m", "volcano_gif", "assemble", "--frames", "12", "--root", paths.root],
        cwd=paths.root,
    )
    assert failed.returncode == 1
    assert "3 of 12 frames are missing or broken (3, 4, 9)" in failed.stderr
    (command,) = [line.strip() for line in failed.stderr.splitlines() if "--resume" in line]
    assert command == f"cd {paths.root} && bash submit-gif-job --resume"
    record = require_record(paths)  # written for the resume command
    assert (record.state, record.missing_frames) == ("failed", [3, 4, 9])
    resumed = run(["bash", "-c", command], cwd=paths.root)
    assert resumed.returncode == 0, resumed.stderr
    assert _frames_left(paths) == []
    assert require_record(paths).state == "assembled"


def _fake_ffmpeg(tmp_path: Path, script: str) -> Path:
    fake = tmp_path / "fake-ffmpeg"
    fake.write_text(f"#!/bin/bash\n{script}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_ffmpeg_failure_names_the_output_exit_code_and_message(
    rendered_project: ProjectPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_ffmpeg(tmp_path, 'echo "Unknown encoder libx264" >&2; exit 3')
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(OutputError) as raised:
        assemble(rendered_project, N)
    message = str(raised.value)
    assert message.startswith(f"{rendered_project.mp4}: ffmpeg could not write it (exit code 3)")
    assert "Unknown encoder libx264" in message
    assert message.endswith("no frame was deleted")
    assert len(_frames_left(rendered_project)) == N
    assert _outputs_left(rendered_project) == []


def test_assemble_cli_reports_ffmpeg_failure_in_one_line(
    rendered_project: ProjectPaths, tmp_path: Path
) -> None:
    fake = _fake_ffmpeg(tmp_path, 'echo "boom" >&2; exit 1')
    result = run(
        [sys.executable, "-m", "volcano_gif", "assemble", "--frames", "12"],
        cwd=rendered_project.root,
        env=project_env({"IMAGEIO_FFMPEG_EXE": str(fake)}),
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        f"volcano-gif: error: {rendered_project.mp4}: ffmpeg could not write it (exit code 1): "
        "boom; no frame was deleted"
    ]
    assert len(_frames_left(rendered_project)) == N


@pytest.mark.parametrize(
    ("damage", "output", "problem"),
    [
        ('truncate -s $(($(stat -c %s "$target") / 2)) "$target"', "volcano.mp4", "the MP4 "),
        (': > "$target"', "volcano.gif", "the GIF is empty or missing"),
        (
            'head -c 2000 "$target" > "$target.x" && mv "$target.x" "$target"',
            "volcano.gif",
            "the GIF ",
        ),
    ],
    ids=["truncated-mp4", "empty-gif", "truncated-gif"],
)
def test_an_output_that_does_not_read_back_keeps_every_frame(
    rendered_project: ProjectPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
    output: str,
    problem: str,
) -> None:
    # The real ffmpeg, then the damage to the file it just wrote (reading is left alone).
    real = outputs_module.ffmpeg_executable()
    fake = _fake_ffmpeg(
        tmp_path,
        f'"{real}" "$@" || exit\ntarget="${{@: -1}}"\n'
        f'case "$target" in *.{output}.*.tmp) {damage} ;; esac',
    )
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(OutputError) as raised:
        assemble(rendered_project, N)
    message = str(raised.value)
    assert message.startswith(f"{rendered_project.gifs / output}: {problem}")
    assert message.endswith("no frame was deleted")
    assert len(_frames_left(rendered_project)) == N
    assert _outputs_left(rendered_project) == []  # no partial output under a final name


def test_unverifiable_archive_keeps_every_frame(
    rendered_project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = write_archive

    def drops_a_frame(frames: list[Path], target: Path, copy: object = None) -> dict[str, str]:
        digests = original(frames, target)
        original(frames[:-1], target)  # the archive on disk lacks the last frame
        return digests

    monkeypatch.setattr(outputs_module, "write_archive", drops_a_frame)
    with pytest.raises(ArchiveError, match=r"archive does not match the frames.*image0012\.png"):
        assemble(rendered_project, N)
    assert len(_frames_left(rendered_project)) == N
    assert _outputs_left(rendered_project) == []


def test_files_that_are_not_frames_of_this_run_are_left_alone(
    rendered_project: ProjectPaths,
) -> None:
    stray = rendered_project.images / "notes.txt"
    stray.write_text("mine")
    result = assemble(rendered_project, N)
    assert result.unexpected_files == [stray]
    assert _frames_left(rendered_project) == ["notes.txt"]


def test_killed_tasks_temporaries_are_removed_and_never_archived(
    rendered_project: ProjectPaths,
) -> None:
    paths = rendered_project
    paths.gifs.mkdir(parents=True)
    ours = [
        paths.images / ".image0003.png.n1.4242.tmp",  # a render task killed mid-write
        paths.gifs / ".volcano.gif.n2.77.tmp",  # an assembly killed mid-write
    ]
    theirs = [paths.images / ".notes.txt.n1.5.tmp", paths.images / ".hidden", paths.gifs / "x.tmp"]
    for path in ours + theirs:
        path.write_bytes(b"partial")
    result = assemble(paths, N)
    assert [path.exists() for path in ours] == [False, False]
    assert [path.exists() for path in theirs] == [True, True, True]
    with tarfile.open(result.archive) as archive:
        names = archive.getnames()
    assert len(names) == N
    assert all(name.startswith("images/image") for name in names)


def test_an_odd_frame_size_reaches_every_output(project: Path) -> None:
    paths = ProjectPaths(project)
    FrameRenderer(load_grid(paths.data_file), 6, 101, 77).render_many(range(1, 7), paths.images)
    result = assemble(paths, 6, gif_width=50, size=(101, 77))
    assert "102x78" in video_stream(result.mp4)  # padded to even sides for yuv420p
    assert gif_facts(result.gif)[:2] == (6, (50, 38))


def test_a_wrong_size_is_named(rendered_project: ProjectPaths) -> None:
    with pytest.raises(FramesNotReadyError, match=r"frame 1: is 640x480, not 320x240"):
        assemble(rendered_project, N, size=(320, 240))


def test_os_error_names_the_archive(
    rendered_project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(frames: list[Path], target: Path, copy: object = None) -> dict[str, str]:
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(outputs_module, "write_archive", full)
    with pytest.raises(
        ArchiveError,
        match=r"volcano-images-.*\.tar\.gz: could not write the "
        r"archive \(No space left on device\); no frame was deleted",
    ):
        assemble(rendered_project, N)
    assert len(_frames_left(rendered_project)) == N
