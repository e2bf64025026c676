"""Turn the rendered frames into an MP4, a GIF and a verified archive.

The order is what keeps frames safe:

1. every expected frame must exist and decode, or nothing happens at all;
2. the MP4, the GIF and the archive are written to temporary names (the two
   encodes run concurrently with the archive);
3. the archive is read back and every member compared with its frame;
4. only then are the outputs renamed into place and the frames deleted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PIL import Image

from volcano_gif.commands import run_concurrently
from volcano_gif.files import temporary_beside
from volcano_gif.layout import (
    ARCHIVE_PREFIX,
    ARCHIVE_STAMP_FORMAT,
    DEFAULT_GIF_WIDTH,
    FIRST_FRAME,
    FRAME_PATTERN,
    ProjectPaths,
    expected_frames,
    frame_name,
    frame_number,
)
from volcano_gif.rerun import rerender_hint
from volcano_gif.timing import StageTimes

logger = logging.getLogger(__name__)

#: Frames per second of both outputs. GIF delays are whole hundredths of a
#: second, so 25 fps (4/100 s) is exact; the MP4 uses the same rate in and out,
#: so no frame is duplicated or dropped.
FPS = 25
#: gzip level of the frame archive. The PNGs are deflated already: level 1
#: took 0.9 CPU-s for 360 frames to save 5% (29.6 MB against 31.1 MB), so
#: the archive only stores them; gzip still adds its CRC-32 check.
ARCHIVE_GZIP_LEVEL = 0
#: x264 preset of the MP4. For these 360 frames, superfast took 2.9 CPU-s
#: against veryfast's 3.9 s, and made a 2.1 MB file at 47 dB PSNR
#: against 0.9 MB at 43 dB (both at x264's default quality, CRF 23).
MP4_PRESET = "superfast"


class FramesNotReadyError(RuntimeError):
    """Some expected frames are missing or do not decode."""

    def __init__(self, problems: dict[int, str], frame_count: int, hint: str) -> None:
        self.problems = problems
        frames = ", ".join(str(frame) for frame in sorted(problems))
        details = "\n".join(f"  frame {frame}: {problems[frame]}" for frame in sorted(problems))
        super().__init__(
            f"{len(problems)} of {frame_count} frames are missing or broken ({frames}); "
            f"nothing was assembled and no frame was deleted\n{details}\n{hint}"
        )


@dataclass(frozen=True)
class AssemblyResult:
    """What an assembly wrote."""

    mp4: Path
    gif: Path
    archive: Path
    frames_deleted: int
    unexpected_files: list[Path] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)


def ffmpeg_executable() -> str:
    """The ffmpeg of the imageio-ffmpeg wheel (``IMAGEIO_FFMPEG_EXE`` overrides it)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _frame_problem(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """Why the frame at ``path`` is unusable (or None), and its size."""
    if not path.is_file():
        return f"missing: {path}", None
    try:
        with Image.open(path) as image:
            image.load()
            return None, image.size
    except (OSError, SyntaxError, ValueError) as error:
        return f"does not decode: {path} ({error})", None


def check_frames(images_dir: Path, frame_count: int) -> dict[int, str]:
    """Return ``{frame: problem}`` for every expected frame that is missing or broken.

    Every frame is decoded in full (Pillow releases the GIL while it decodes, so
    threads share the work across cores).
    """
    frames = list(expected_frames(frame_count))
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(_frame_problem, (images_dir / frame_name(f) for f in frames)))
    problems: dict[int, str] = {}
    size: tuple[int, int] | None = None
    for frame, (problem, this_size) in zip(frames, results, strict=True):
        if problem is not None:
            problems[frame] = problem
        elif this_size is not None:
            size = size or this_size
            if this_size != size:
                problems[frame] = (
                    f"is {this_size[0]}x{this_size[1]}, not {size[0]}x{size[1]}: "
                    f"{images_dir / frame_name(frame)}"
                )
    return problems


def unexpected_files(images_dir: Path, frame_count: int) -> list[Path]:
    """Files in ``images_dir`` that are not frames of this run (left alone)."""
    expected = set(expected_frames(frame_count))
    return sorted(
        path
        for path in images_dir.iterdir()
        if path.name != ".gitkeep" and frame_number(path.name) not in expected
    )


def ffmpeg_input(images_dir: Path, frame_count: int) -> list[str]:
    """The ffmpeg input options that read exactly frames 1..frame_count."""
    return [
        "-framerate", str(FPS),
        "-start_number", str(FIRST_FRAME),
        "-i", str(images_dir / FRAME_PATTERN),
        "-frames:v", str(frame_count),
    ]  # fmt: skip


def mp4_command(ffmpeg: str, images_dir: Path, frame_count: int, target: Path) -> list[str]:
    """H.264 in yuv420p (playable everywhere), one output frame per input frame."""
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *ffmpeg_input(images_dir, frame_count),
        "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-c:v", "libx264", "-preset", MP4_PRESET, "-pix_fmt", "yuv420p", "-r", str(FPS),
        "-movflags", "+faststart", "-f", "mp4", str(target),
    ]  # fmt: skip


def gif_command(
    ffmpeg: str, images_dir: Path, frame_count: int, target: Path, width: int
) -> list[str]:
    """A looping GIF straight from the frames, with its own palette, aspect kept.

    ``area`` scaling with ``diff_mode=rectangle`` was the fastest of the variants
    measured here. The surface's colours come from viridis, itself a 256-colour
    map, so dithering adds noise and CPU time but no fidelity: without it the GIF
    is about 48 dB PSNR against the frames scaled the same way.
    """
    graph = (
        f"[0:v]scale={width}:-1:flags=area,split[frames][forpalette];"
        "[forpalette]palettegen[palette];"
        "[frames][palette]paletteuse=dither=none:diff_mode=rectangle"
    )
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *ffmpeg_input(images_dir, frame_count),
        "-filter_complex", graph, "-loop", "0", "-f", "gif", str(target),
    ]  # fmt: skip


def archive_path(archives_dir: Path, now: datetime) -> Path:
    """``volcano-images-YYYYmmddTHHMMSS.tar.gz``, with a suffix if that is taken."""
    stem = ARCHIVE_PREFIX + now.strftime(ARCHIVE_STAMP_FORMAT)
    candidate = archives_dir / f"{stem}.tar.gz"
    serial = 2
    while candidate.exists():
        candidate = archives_dir / f"{stem}-{serial}.tar.gz"
        serial += 1
    return candidate


def write_archive(frames: Sequence[Path], target: Path) -> dict[str, str]:
    """Pack ``frames`` into a gzipped tar at ``target`` as ``images/<name>``.

    Returns the SHA-256 of each member as it was read, for :func:`verify_archive`.
    """
    digests: dict[str, str] = {}
    with tarfile.open(target, "w:gz", compresslevel=ARCHIVE_GZIP_LEVEL) as archive:
        for path in frames:
            data = path.read_bytes()
            member = archive.gettarinfo(path, arcname=f"images/{path.name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
            digests[member.name] = hashlib.sha256(data).hexdigest()
    return digests


def verify_archive(archive_file: Path, wanted: dict[str, str]) -> None:
    """Read ``archive_file`` back; raise unless its members are exactly ``wanted``.

    ``wanted`` maps member names to SHA-256 digests of the frames that were packed.
    """
    found: dict[str, str] = {}
    with tarfile.open(archive_file, "r:gz") as archive:
        for member in archive:
            handle = archive.extractfile(member)
            if handle is None:
                raise ArchiveError(f"{archive_file}: member {member.name} is not a file")
            found[member.name] = hashlib.sha256(handle.read()).hexdigest()
    if found != wanted:
        missing = sorted(set(wanted) - set(found))
        extra = sorted(set(found) - set(wanted))
        changed = sorted(name for name in set(wanted) & set(found) if wanted[name] != found[name])
        raise ArchiveError(
            f"{archive_file}: archive does not match the frames "
            f"(missing {missing[:5]}, extra {extra[:5]}, different {changed[:5]}); "
            "no frame was deleted"
        )


class ArchiveError(RuntimeError):
    """The archive could not be verified."""


def assemble(
    paths: ProjectPaths,
    frame_count: int,
    gif_width: int = DEFAULT_GIF_WIDTH,
    now: datetime | None = None,
) -> AssemblyResult:
    """Check the frames, write MP4, GIF and archive, verify, then delete the frames."""
    times = StageTimes()
    images = paths.images
    with times.stage("check"):
        problems = (
            check_frames(images, frame_count)
            if images.is_dir()
            else {
                frame: f"missing: {paths.frame(frame)} (no folder {images})"
                for frame in expected_frames(frame_count)
            }
        )
    if problems:
        raise FramesNotReadyError(
            problems, frame_count, rerender_hint(paths, sorted(problems), frame_count)
        )
    frames = [paths.frame(frame) for frame in expected_frames(frame_count)]
    extras = unexpected_files(images, frame_count)
    for path in extras:
        logger.warning("left alone, not a frame of this %d-frame run: %s", frame_count, path)

    for folder in (paths.gifs, paths.archives):
        folder.mkdir(parents=True, exist_ok=True)
    archive = archive_path(paths.archives, now or datetime.now())
    outputs = {paths.mp4: temporary_beside(paths.mp4), paths.gif: temporary_beside(paths.gif),
               archive: temporary_beside(archive)}  # fmt: skip
    ffmpeg = ffmpeg_executable()
    try:
        # The two encodes (ffmpeg processes) and the archive (a thread) overlap.
        with ThreadPoolExecutor(max_workers=2) as pool:
            encodes = pool.submit(times.timed("encode", run_concurrently), [
                mp4_command(ffmpeg, images, frame_count, outputs[paths.mp4]),
                gif_command(ffmpeg, images, frame_count, outputs[paths.gif], gif_width),
            ])  # fmt: skip
            packing = pool.submit(times.timed("archive", write_archive), frames, outputs[archive])
            digests = packing.result()
            encodes.result()
        logger.info("encoded MP4 and GIF, packed %d frames; verifying the archive", len(frames))
        with times.stage("verify"):
            verify_archive(outputs[archive], digests)
        for target, temporary in outputs.items():
            temporary.replace(target)
    finally:
        for temporary in outputs.values():
            temporary.unlink(missing_ok=True)
    logger.info("archive verified: %s; deleting %d frames", archive, len(frames))
    with times.stage("clean"):
        for path in frames:
            path.unlink()
    logger.info("assembly stages: %s", times.summary())
    return AssemblyResult(paths.mp4, paths.gif, archive, len(frames), extras, times)
