"""The assembler on a 12-frame run: outputs, archive, and nothing lost on failure."""

from __future__ import annotations

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
from volcano_gif import assembler as assemble_module
from volcano_gif.assembler import (
    ArchiveError,
    FramesNotReadyError,
    archive_path,
    assemble,
    gif_command,
    mp4_command,
)
from volcano_gif.commands import CommandError
from volcano_gif.layout import ProjectPaths, frame_name

N = SMALL_FRAME_COUNT


def _frames_left(paths: ProjectPaths) -> list[str]:
    return sorted(p.name for p in paths.images.iterdir())


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


def test_archive_names_have_no_colon_and_never_overwrite(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = archive_path(tmp_path, now)
    assert first.name == "volcano-images-20260102T030405.tar.gz"
    first.touch()
    assert archive_path(tmp_path, now).name == "volcano-images-20260102T030405-2.tar.gz"


def test_ffmpeg_commands_are_exact() -> None:
    images, out = Path("/p/images"), Path("/p/out.tmp")
    common = ["ff", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
              "-framerate", "25", "-start_number", "1", "-i", "/p/images/image%04d.png",
              "-frames:v", "12"]  # fmt: skip
    assert mp4_command("ff", images, 12, out) == [
        *common, "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264",
        "-preset", "superfast", "-pix_fmt", "yuv420p", "-r", "25",
        "-movflags", "+faststart", "-f", "mp4", "/p/out.tmp",
    ]  # fmt: skip
    assert gif_command("ff", images, 12, out, 400) == [
        *common, "-filter_complex",
        "[0:v]scale=400:-1:flags=area,split[frames][forpalette];"
        "[forpalette]palettegen[palette];"
        "[frames][palette]paletteuse=dither=none:diff_mode=rectangle",
        "-loop", "0", "-f", "gif", "/p/out.tmp",
    ]  # fmt: skip


def test_missing_frame_is_named_and_nothing_is_deleted(rendered_project: ProjectPaths) -> None:
    paths = rendered_project
    (paths.images / frame_name(5)).unlink()
    with pytest.raises(FramesNotReadyError) as raised:
        assemble(paths, N)
    message = str(raised.value)
    assert message.startswith("1 of 12 frames are missing or broken (5)")
    assert f"frame 5: missing: {paths.images / 'image0005.png'}" in message
    assert f"{paths.root / 'volcano.py'} --frame-count 12 5" in message
    assert "sbatch --array=5 generate_frames.slurm --frame-count 12 --frames-per-task 1" in message
    assert len(_frames_left(paths)) == N - 1
    assert not (paths.root / "output").exists()


def test_broken_frame_is_named(rendered_project: ProjectPaths) -> None:
    paths = rendered_project
    frame = paths.images / frame_name(7)
    frame.write_bytes(frame.read_bytes()[:2000])
    with pytest.raises(FramesNotReadyError, match=r"frame 7: does not decode: .*image0007.png"):
        assemble(paths, N)
    assert len(_frames_left(paths)) == N


def test_the_printed_rerender_command_repairs_the_run(rendered_project: ProjectPaths) -> None:
    paths = rendered_project
    for frame in (3, 4, 9):
        (paths.images / frame_name(frame)).unlink()
    failed = run([sys.executable, "-m", "volcano_gif", "assemble", "--frame-count", "12",
                  "--root", paths.root], cwd=paths.root)  # fmt: skip
    assert failed.returncode == 1
    assert "3 of 12 frames are missing or broken (3, 4, 9)" in failed.stderr
    command = next(
        line.strip() for line in failed.stderr.splitlines() if "volcano.py --frame-count" in line
    )
    assert command.endswith("--frame-count 12 3 4 9")
    rerender = run(command.split(), cwd=paths.root)
    assert rerender.returncode == 0, rerender.stderr
    again = run([sys.executable, "-m", "volcano_gif", "assemble", "--frame-count", "12",
                 "--root", paths.root], cwd=paths.root)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert _frames_left(paths) == []


def _fake_ffmpeg(tmp_path: Path, script: str) -> Path:
    fake = tmp_path / "fake-ffmpeg"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_ffmpeg_failure_raises_with_command_code_and_stderr(
    rendered_project: ProjectPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_ffmpeg(tmp_path, 'echo "Unknown encoder libx264" >&2; exit 3')
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(CommandError) as raised:
        assemble(rendered_project, N)
    assert raised.value.returncode == 3
    assert raised.value.args_list[0] == str(fake)
    assert "exit code 3" in str(raised.value)
    assert "Unknown encoder libx264" in str(raised.value)
    assert len(_frames_left(rendered_project)) == N
    assert sorted(os.listdir(rendered_project.gifs)) == []
    assert sorted(os.listdir(rendered_project.archives)) == []


def test_assemble_cli_reports_ffmpeg_failure_in_one_place(
    rendered_project: ProjectPaths, tmp_path: Path
) -> None:
    fake = _fake_ffmpeg(tmp_path, 'echo "boom" >&2; exit 1')
    result = run(
        [sys.executable, "-m", "volcano_gif", "assemble", "--frame-count", "12"],
        cwd=rendered_project.root, env=project_env({"IMAGEIO_FFMPEG_EXE": str(fake)}),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("volcano-gif: error: command failed with exit code 1: ")
    assert "boom" in result.stderr
    assert len(_frames_left(rendered_project)) == N


def test_unverifiable_archive_keeps_every_frame(
    rendered_project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = assemble_module.write_archive

    def drops_a_frame(frames: list[Path], target: Path) -> dict[str, str]:
        digests = original(frames, target)
        original(frames[:-1], target)  # the archive on disk lacks the last frame
        return digests

    monkeypatch.setattr(assemble_module, "write_archive", drops_a_frame)
    with pytest.raises(ArchiveError, match=r"archive does not match the frames.*image0012\.png"):
        assemble(rendered_project, N)
    assert len(_frames_left(rendered_project)) == N
    assert sorted(os.listdir(rendered_project.archives)) == []
    assert sorted(os.listdir(rendered_project.gifs)) == []


def test_files_that_are_not_frames_of_this_run_are_left_alone(
    rendered_project: ProjectPaths,
) -> None:
    stray = rendered_project.images / "notes.txt"
    stray.write_text("mine")
    result = assemble(rendered_project, N)
    assert result.unexpected_files == [stray]
    assert _frames_left(rendered_project) == ["notes.txt"]
