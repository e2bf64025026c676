"""The assembly's three outputs: written under temporary names, then read back.

The MP4 and the GIF are encoded by ffmpeg (:mod:`volcano_gif.assembly.ffmpeg_commands`),
each in a thread, while the frames are packed into the archive; then all three
are read back, concurrently: the archive member by member against the frames'
SHA-256, the MP4 and the GIF frame by frame (count and size). Any failure says
which file and why, and that no frame was deleted.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from volcano_gif.assembly.archive import ArchiveError, verify_archive, write_archive
from volcano_gif.assembly.ffmpeg_commands import (
    concat_list,
    gif_command,
    mp4_command,
    mp4_size,
    palette_command,
    palette_frames,
)
from volcano_gif.assembly.verify import OutputError, verify_media
from volcano_gif.commands import CommandError, on_one_line, run_measured
from volcano_gif.layout import RESUME_COMMAND, frame_name
from volcano_gif.numbering import gif_size
from volcano_gif.paths import ProjectPaths
from volcano_gif.run.failures import (
    Kill,
    assembly_killed_for_memory,
    fix_options,
    job_memory_peak_mib,
    memory_kill_in_this_job,
    oom_kills,
)
from volcano_gif.run.record import Parameters
from volcano_gif.stage_times import StageTimes
from volcano_gif.task.task_timing import requested_memory_mib

#: What the archive keeps of the run record, given the frames' checksums (None: no record).
RecordCopy = Callable[[dict[str, str]], bytes] | None


class KilledForMemoryError(OutputError):
    """The job's cgroup killed one of the assembly's processes: it needs more --mem."""

    def __init__(self, message: str, kill: Kill) -> None:
        super().__init__(message)
        self.resume_options = fix_options([kill])


def ffmpeg_executable() -> str:
    """The ffmpeg of the imageio-ffmpeg wheel (``IMAGEIO_FFMPEG_EXE`` overrides it)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def encode_gif(
    ffmpeg: str, images_dir: Path, frame_count: int, target: Path, width: int
) -> tuple[float, float]:
    """Write the GIF in two streaming passes (palette, then frames); return both peaks (MiB)."""
    with tempfile.TemporaryDirectory(prefix="volcano-gif-palette-") as scratch:
        frame_list, palette = Path(scratch) / "frames.txt", Path(scratch) / "palette.png"
        # Absolute: ffmpeg reads relative names in a list from the list's folder.
        listed = [(images_dir / frame_name(k)).absolute() for k in palette_frames(frame_count)]
        frame_list.write_text(concat_list(listed), encoding="utf-8")
        made = run_measured(palette_command(ffmpeg, frame_list, palette, width))
        used = run_measured(
            gif_command(ffmpeg, images_dir, frame_count, target, width, palette=palette)
        )
    return made.peak_mib, used.peak_mib


def write_outputs(
    paths: ProjectPaths,
    parameters: Parameters,
    record_copy: RecordCopy,
    *,
    frames: list[Path],
    outputs: dict[Path, Path],
    archive: Path,
    times: StageTimes,
) -> dict[str, str]:
    """Encode the MP4 and the GIF (ffmpeg, each in a thread) while packing the archive.

    ``outputs`` maps each output to its temporary name; returns the archive's
    SHA-256 of each member.
    """
    ffmpeg = ffmpeg_executable()
    kills_before = oom_kills()  # so a kill for memory from now on is ffmpeg's
    images, frame_count = paths.images, parameters.frame_count
    mp4 = mp4_command(ffmpeg, images, frame_count, outputs[paths.mp4])

    def encode_mp4() -> None:
        times.peak("ffmpeg mp4", run_measured(mp4).peak_mib)

    def gif() -> None:
        palette_peak, gif_peak = encode_gif(
            ffmpeg, images, frame_count, outputs[paths.gif], parameters.gif_width
        )
        times.peak("ffmpeg palette", palette_peak)
        times.peak("ffmpeg gif", gif_peak)

    with ThreadPoolExecutor(max_workers=3) as pool:
        encodes = [
            pool.submit(times.timed(f"encode_{name}", job))
            for name, job in (("mp4", encode_mp4), ("gif", gif))
        ]
        packing = pool.submit(
            times.timed("archive", _pack), frames, outputs[archive], archive, record_copy
        )
        digests = packing.result()
        for target, encode in zip((paths.mp4, paths.gif), encodes, strict=True):
            try:
                encode.result()
            except CommandError as error:
                raise _ffmpeg_failed(target, error, kills_before) from error
    times["encode"] = max(times["encode_mp4"], times["encode_gif"])
    return digests


def _ffmpeg_failed(target: Path, error: CommandError, kills_before: int | None) -> OutputError:
    """What ffmpeg's failure to write ``target`` means: a kill for memory, or what it said."""
    if memory_kill_in_this_job(error.returncode, kills_before):
        return _killed_for_memory(target)
    said = on_one_line(error.stderr)
    return OutputError(
        f"{target}: ffmpeg could not write it (exit code {error.returncode}): "
        f"{said[-400:] or 'no message'}; no frame was deleted"
    )


def _killed_for_memory(target: Path) -> KilledForMemoryError:
    """ffmpeg went over the job's --mem, and the cgroup's OOM killer killed it."""
    asked = requested_memory_mib()
    kill = assembly_killed_for_memory(os.environ.get("SLURM_JOB_ID", "?"), asked)
    used = job_memory_peak_mib()
    return KilledForMemoryError(
        f"{target}: ffmpeg was killed for memory: the job asked for "
        + (f"{asked:.0f} MiB (--mem)" if asked else "no --mem")
        + (f" and its processes reached {used:.0f} MiB" if used else "")
        + f"; no frame was deleted; finish the run with: {RESUME_COMMAND} -- {kill.fix}",
        kill,
    )


def _pack(
    frames: list[Path], temporary: Path, archive: Path, record_copy: RecordCopy
) -> dict[str, str]:
    try:
        return write_archive(frames, temporary, record_copy)
    except OSError as error:
        raise ArchiveError(
            f"{archive}: could not write the archive ({error.strerror or error}); "
            "no frame was deleted"
        ) from None


def verify_outputs(
    paths: ProjectPaths,
    parameters: Parameters,
    outputs: dict[Path, Path],
    archive: Path,
    digests: dict[str, str],
) -> dict[str, str]:
    """Read the archive, the MP4 and the GIF back, concurrently; describe each."""
    frame_count = parameters.frame_count
    gif_wanted = gif_size(parameters.size, parameters.gif_width)

    def check_archive() -> str:
        verify_archive(outputs[archive], digests)
        return f"archive ({frame_count} frames)"

    def check_mp4() -> str:
        verify_media(outputs[paths.mp4], "mp4", frame_count, mp4_size(parameters.size), paths.mp4)
        return f"MP4 ({frame_count} frames)"

    def check_gif() -> str:
        verify_media(outputs[paths.gif], "gif", frame_count, gif_wanted, paths.gif)
        return f"GIF ({frame_count} frames, {gif_wanted[0]}x{gif_wanted[1]})"

    with ThreadPoolExecutor(max_workers=3) as pool:
        checks = {"archive": check_archive, "mp4": check_mp4, "gif": check_gif}
        futures = {name: pool.submit(check) for name, check in checks.items()}
        return {name: future.result() for name, future in futures.items()}
