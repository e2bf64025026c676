"""Turn the rendered frames into an MP4, a GIF and a verified archive.

The order is what keeps frames safe:

1. every expected frame must exist, decode and be this run's frame (its PNG
   label says so), or nothing happens at all;
2. the MP4, the GIF and the archive are written to temporary names (the two
   encodes run concurrently with the archive);
3. all three are read back: the archive member by member against the frames'
   SHA-256, the MP4 and the GIF frame by frame (count and size);
4. only then are the outputs renamed into place, the run record updated with
   every checksum, and the frames deleted.

A failure at any step leaves every frame where it was, and says which file
and why. The run record (``output/run.json``) follows each outcome.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path

from volcano_gif.assembly.archive import ArchiveError
from volcano_gif.assembly.archive import archive_path
from volcano_gif.assembly.archive import verify_archive
from volcano_gif.assembly.archive import write_archive
from volcano_gif.assembly.verify import OutputError
from volcano_gif.assembly.verify import verify_media
from volcano_gif.commands import CommandError
from volcano_gif.commands import run_measured
from volcano_gif.files import remove_stale_temporaries
from volcano_gif.files import sha256_of
from volcano_gif.files import temporary_beside
from volcano_gif.files import temporary_target
from volcano_gif.layout import ARCHIVE_PREFIX
from volcano_gif.layout import DEFAULT_SIZE
from volcano_gif.layout import FIRST_FRAME
from volcano_gif.layout import FPS
from volcano_gif.layout import FRAME_PATTERN
from volcano_gif.layout import GIF_NAME
from volcano_gif.layout import MP4_NAME
from volcano_gif.layout import RESUME_COMMAND
from volcano_gif.layout import ProjectPaths
from volcano_gif.layout import expected_frames
from volcano_gif.layout import frame_name
from volcano_gif.layout import frame_number
from volcano_gif.layout import gif_size
from volcano_gif.run.record import AssemblyMemory
from volcano_gif.run.record import Mode
from volcano_gif.run.record import OutputFile
from volcano_gif.run.record import Parameters
from volcano_gif.run.record import RecordError
from volcano_gif.run.record import RunRecord
from volcano_gif.run.record import RunState
from volcano_gif.run.record import new_record
from volcano_gif.run.record import now as timestamp
from volcano_gif.run.record import read_record
from volcano_gif.run.record import update_record
from volcano_gif.run.record import write_record
from volcano_gif.task.frames import check_frames
from volcano_gif.task.task_timing import load_run_timings
from volcano_gif.task.task_timing import requested_memory_mib
from volcano_gif.timing import StageTimes
from volcano_gif.timing import peak_memory_mib

logger = logging.getLogger(__name__)

#: x264 preset of the MP4. For these 360 frames, superfast took 2.9 CPU-s
#: against veryfast's 3.9 s, and made a 2.1 MB file at 47 dB PSNR
#: against 0.9 MB at 43 dB (both at x264's default quality, CRF 23).
MP4_PRESET = "superfast"
#: Frames listed one per line in a missing-frames error; the rest are counted.
LISTED_PROBLEMS = 20

__all__ = [
    "ArchiveError", "AssemblyResult", "FramesNotReadyError", "OutputError", "assemble",
    "write_archive",
]  # fmt: skip


def resume_hint(paths: ProjectPaths) -> str:
    """The one command that finishes a run with missing frames, however it was started."""
    return (
        "finish the run with one command, from the project folder:\n"
        f"  cd {shlex.quote(str(paths.root))} && {RESUME_COMMAND}\n"
        "(it renders only these frames, as one array on Slurm or here for a local run, "
        "then assembles again)"
    )


class FramesNotReadyError(RuntimeError):
    """Some expected frames are missing, broken, or another run's."""

    def __init__(self, problems: dict[int, str], frame_count: int, hint: str) -> None:
        self.problems = problems
        frames = sorted(problems)
        listed = "\n".join(f"  frame {frame}: {problems[frame]}" for frame in frames[:20])
        more = len(frames) - LISTED_PROBLEMS
        if more > 0:
            listed += f"\n  ... and {more} more"
        super().__init__(
            f"{len(problems)} of {frame_count} frames are missing or broken "
            f"({_short_list(frames)}); nothing was assembled and no frame was deleted\n"
            f"{listed}\n{hint}"
        )


def _short_list(frames: list[int], limit: int = 12) -> str:
    shown = ", ".join(str(frame) for frame in frames[:limit])
    return shown + (f", ... ({len(frames) - limit} more)" if len(frames) > limit else "")


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


def unexpected_files(images_dir: Path, frame_count: int) -> list[Path]:
    """Files in ``images_dir`` that are neither frames of this run nor our temporaries."""
    expected = set(expected_frames(frame_count))
    return sorted(
        path
        for path in images_dir.iterdir()
        if path.name != ".gitkeep"
        and frame_number(path.name) not in expected
        and temporary_target(path.name) is None
    )


def ffmpeg_input(images_dir: Path, frame_count: int) -> list[str]:
    """The ffmpeg input options that read exactly frames 1..frame_count."""
    return [
        "-framerate", str(FPS),
        "-start_number", str(FIRST_FRAME),
        "-i", str(images_dir / FRAME_PATTERN),
        "-frames:v", str(frame_count),
    ]  # fmt: skip


def mp4_size(size: tuple[int, int]) -> tuple[int, int]:
    """H.264 in yuv420p needs even sides: the MP4 pads the frames by one pixel if not."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def mp4_command(ffmpeg: str, images_dir: Path, frame_count: int, target: Path) -> list[str]:
    """H.264 in yuv420p (playable everywhere), one output frame per input frame."""
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *ffmpeg_input(images_dir, frame_count),
        "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-c:v", "libx264", "-preset", MP4_PRESET, "-pix_fmt", "yuv420p", "-r", str(FPS),
        "-movflags", "+faststart", "-f", "mp4", str(target),
    ]  # fmt: skip


#: Frames, spread evenly over the turn, that the GIF's palette is made from.
#: 36 views 10 degrees apart see every colour of the surface: on the 360 default
#: frames the GIF scored 48.32 dB PSNR against the frames with a palette from
#: all 360, from every 2nd, every 10th and every 30th frame alike, and the
#: palette pass took 0.19 CPU-s from 36 frames against 1.0 s from 360.
PALETTE_FRAMES = 36


def palette_frames(frame_count: int) -> list[int]:
    """At most :data:`PALETTE_FRAMES` frame numbers, evenly spread over 1..frame_count."""
    count = min(frame_count, PALETTE_FRAMES)
    return sorted({FIRST_FRAME + (k * frame_count) // count for k in range(count)})


def concat_list(frames: list[Path]) -> str:
    """An ffmpeg concat-demuxer list of ``frames``, each quoted as ffmpeg wants."""
    return "".join("file '" + str(path).replace("'", "'\\''") + "'\n" for path in frames)


def palette_command(ffmpeg: str, frame_list: Path, target: Path, width: int) -> list[str]:
    """The GIF's palette from the frames in ``frame_list`` (a concat list), into a PNG.

    palettegen keeps only a colour histogram, so memory does not grow with frames.
    """
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(frame_list),
        "-vf", f"scale={width}:-1:flags=area,palettegen",
        "-update", "1", "-frames:v", "1", str(target),
    ]  # fmt: skip


def gif_command(
    ffmpeg: str, images_dir: Path, frame_count: int, target: Path, width: int, *, palette: Path
) -> list[str]:
    """A looping GIF streamed from the frames with the ``palette`` PNG, aspect kept.

    Memory stays flat: each frame is scaled, mapped and written in turn. (One
    graph that also makes the palette, ``split`` + ``palettegen`` + ``paletteuse``,
    must hold every scaled frame until palettegen has seen the last: 2 GB at
    3600 frames.) ``area`` scaling with ``diff_mode=rectangle`` was the fastest
    of the variants measured here. The surface's colours come from viridis,
    itself a 256-colour map, so dithering adds noise and CPU time but no
    fidelity: without it the GIF is about 48 dB PSNR against the frames scaled
    the same way.
    """
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-framerate", str(FPS), "-start_number", str(FIRST_FRAME),
        "-i", str(images_dir / FRAME_PATTERN), "-i", str(palette), "-frames:v", str(frame_count),
        "-filter_complex",
        f"[0:v]scale={width}:-1:flags=area[frames];"
        "[frames][1:v]paletteuse=dither=none:diff_mode=rectangle",
        "-loop", "0", "-f", "gif", str(target),
    ]  # fmt: skip


def encode_gif(
    ffmpeg: str, images_dir: Path, frame_count: int, target: Path, width: int
) -> tuple[float, float]:
    """Write the GIF in two streaming passes (palette, then frames); return both peaks (MiB)."""
    with tempfile.TemporaryDirectory(prefix="volcano-gif-palette-") as scratch:
        frame_list, palette = Path(scratch) / "frames.txt", Path(scratch) / "palette.png"
        frame_list.write_text(
            # Absolute: ffmpeg reads relative names in a list from the list's folder.
            concat_list(
                [(images_dir / frame_name(k)).absolute() for k in palette_frames(frame_count)]
            ),
            encoding="utf-8",
        )
        made = run_measured(palette_command(ffmpeg, frame_list, palette, width))
        used = run_measured(
            gif_command(ffmpeg, images_dir, frame_count, target, width, palette=palette)
        )
    return made.peak_mib, used.peak_mib


# ------------------------------------------------------------------ run record
def _record_of_this_run(paths: ProjectPaths, parameters: Parameters) -> RunRecord | None:
    """The folder's run record, if it describes the frames being assembled."""
    try:
        record = read_record(paths)
    except RecordError as error:
        logger.warning("%s; assembling without updating it", error)
        return None
    if record is None:
        return None
    wanted = (record.parameters.frame_count, record.parameters.size)
    if wanted != (parameters.frame_count, parameters.size):
        logger.warning(
            "output/run.json describes run %s (%s), not these %s: left as it is",
            record.run_id, record.parameters.describe(), parameters.describe(),
        )  # fmt: skip
        return None
    return record


@contextmanager
def _recording_outcome(
    paths: ProjectPaths, run_id: str | None, parameters: Parameters
) -> Iterator[None]:
    """Record the assembly's start, and its failure if it fails (success is the caller's).

    A run without a record (its jobs submitted with plain sbatch, say) gets one
    when frames are missing, so that the resume command printed works for it too.
    """
    if run_id is None:
        try:
            yield
        except FramesNotReadyError as error:
            _adopt_unrecorded_run(paths, parameters, sorted(error.problems), str(error))
            raise
        return
    job = os.environ.get("SLURM_JOB_ID")

    def started(record: RunRecord) -> None:
        record.assembly_job_id = job or record.assembly_job_id
        record.assembly_started = timestamp()
        record.error = None
        record.move_to(RunState.ASSEMBLING, "assembly started", f"job {job}" if job else "")

    update_record(paths, started, run_id)
    try:
        yield
    except BaseException as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        missing = sorted(error.problems) if isinstance(error, FramesNotReadyError) else []

        def failed(record: RunRecord) -> None:
            record.error = first_line
            record.missing_frames = missing
            record.ended = timestamp()
            record.move_to(RunState.FAILED, "assembly failed", first_line)

        try:
            update_record(paths, failed, run_id)
        except (OSError, RecordError) as record_error:
            logger.warning("could not record the failure in output/run.json: %s", record_error)
        raise


def _adopt_unrecorded_run(
    paths: ProjectPaths, parameters: Parameters, missing: list[int], error: str
) -> None:
    """Write a record for a run that had none: failed, with its missing frames."""
    if paths.run_record.exists():  # another run's record: never overwritten
        return
    job = os.environ.get("SLURM_JOB_ID")
    record = new_record(Mode.SLURM if job else Mode.LOCAL, parameters)
    record.submitter = None
    record.assembly_job_id = job
    record.error = error.splitlines()[0]
    record.missing_frames = missing
    record.ended = timestamp()
    record.move_to(RunState.FAILED, "assembly failed", f"a run with no record: {record.error}")
    try:
        write_record(paths, record)
    except (OSError, RecordError) as record_error:
        logger.warning("could not write output/run.json for --resume: %s", record_error)


# --------------------------------------------------------------------- assembly
def assemble(
    paths: ProjectPaths,
    frame_count: int,
    gif_width: int | None = None,
    now: datetime | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> AssemblyResult:
    """Check the frames, write MP4, GIF and archive, verify all three, then delete the frames.

    ``gif_width`` defaults to 400 pixels (or the frame width, if narrower);
    ``now`` dates the archive's name.
    """
    parameters = Parameters.of(frame_count, size, gif_width)
    record = _record_of_this_run(paths, parameters)
    run_id = record.run_id if record else None
    with _recording_outcome(paths, run_id, parameters):
        return _assemble(paths, parameters, record, now or datetime.now())


def _assemble(
    paths: ProjectPaths, parameters: Parameters, record: RunRecord | None, when: datetime
) -> AssemblyResult:
    times = StageTimes()
    images, frame_count, size = paths.images, parameters.frame_count, parameters.size
    with times.stage("check"):
        problems = (
            check_frames(images, frame_count, size)
            if images.is_dir()
            else {
                frame: f"missing: {paths.frame(frame)} (no folder {images})"
                for frame in expected_frames(frame_count)
            }
        )
    if problems:
        raise FramesNotReadyError(problems, frame_count, resume_hint(paths))
    logger.info("checked %d frames: all there, complete, of this run", frame_count)
    frames = [paths.frame(frame) for frame in expected_frames(frame_count)]
    extras = unexpected_files(images, frame_count)
    for path in extras:
        logger.warning("left alone, not a frame of this %d-frame run: %s", frame_count, path)

    for folder in (paths.gifs, paths.archives):
        folder.mkdir(parents=True, exist_ok=True)
    archive = archive_path(paths.archives, when)
    outputs = {paths.mp4: temporary_beside(paths.mp4), paths.gif: temporary_beside(paths.gif),
               archive: temporary_beside(archive)}  # fmt: skip
    try:
        digests = _write_outputs(
            paths, parameters, record, frames=frames, outputs=outputs, archive=archive, times=times
        )
        logger.info("wrote the MP4, the GIF and the archive; reading all three back")
        with times.stage("verify"):
            facts = _verify_outputs(paths, parameters, outputs, archive, digests)
        for target, temporary in outputs.items():
            temporary.replace(target)
    finally:
        for temporary in outputs.values():
            temporary.unlink(missing_ok=True)
    logger.info("verified %s", ", ".join(facts.values()))
    times.peak("python", peak_memory_mib())
    memory = AssemblyMemory(dict(times.peaks_mib), requested_memory_mib())
    logger.info(
        "peak memory: %s%s",
        times.memory_summary(),
        (f"; the job asked for {memory.requested_mib:.0f} MiB" if memory.requested_mib else ""),
    )
    if record is not None:
        _record_success(paths, record.run_id, archive, digests, memory)
    with times.stage("clean"):
        for path in frames:
            path.unlink()
        stale = _remove_stale_temporaries(paths)
    logger.info(
        "deleted the %d frames, now in %s%s", len(frames), paths.relative(archive),
        f"; removed {len(stale)} temporary files of interrupted tasks" if stale else "",
    )  # fmt: skip
    logger.info("assembly stages: %s", times.summary())
    return AssemblyResult(paths.mp4, paths.gif, archive, len(frames), extras, times)


def _write_outputs(
    paths: ProjectPaths,
    parameters: Parameters,
    record: RunRecord | None,
    *,
    frames: list[Path],
    outputs: dict[Path, Path],
    archive: Path,
    times: StageTimes,
) -> dict[str, str]:
    """Encode the MP4 and the GIF (ffmpeg, each in a thread) while packing the archive."""
    ffmpeg = ffmpeg_executable()
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
        encodes = [pool.submit(times.timed(f"encode_{name}", job))
                   for name, job in (("mp4", encode_mp4), ("gif", gif))]  # fmt: skip
        packing = pool.submit(
            times.timed("archive", _pack), frames, outputs[archive], archive,
            _record_copy(record),
        )  # fmt: skip
        digests = packing.result()
        for target, encode in zip((paths.mp4, paths.gif), encodes, strict=True):
            try:
                encode.result()
            except CommandError as error:
                said = " / ".join(
                    line.strip() for line in error.stderr.splitlines() if line.strip()
                )
                raise OutputError(
                    f"{target}: ffmpeg could not write it (exit code {error.returncode}): "
                    f"{said[-400:] or 'no message'}; no frame was deleted"
                ) from error
    times["encode"] = max(times["encode_mp4"], times["encode_gif"])
    return digests


def _pack(
    frames: list[Path],
    temporary: Path,
    archive: Path,
    record_copy: Callable[[dict[str, str]], bytes] | None,
) -> dict[str, str]:
    try:
        return write_archive(frames, temporary, record_copy)
    except OSError as error:
        raise ArchiveError(
            f"{archive}: could not write the archive ({error.strerror or error}); "
            "no frame was deleted"
        ) from None


def _record_copy(record: RunRecord | None) -> Callable[[dict[str, str]], bytes] | None:
    """The run record as the archive keeps it: with the frames' checksums."""
    if record is None:
        return None

    def copy(digests: dict[str, str]) -> bytes:
        data = record.to_json()
        data["state"] = RunState.ASSEMBLING
        data["frames_sha256"] = {name.rsplit("/", 1)[-1]: sha for name, sha in digests.items()}
        return (json.dumps(data, indent=2) + "\n").encode()

    return copy


def _verify_outputs(
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
        verify_media(outputs[paths.mp4], "mp4", frame_count, mp4_size(parameters.size),
                     paths.mp4)  # fmt: skip
        return f"MP4 ({frame_count} frames)"

    def check_gif() -> str:
        verify_media(outputs[paths.gif], "gif", frame_count, gif_wanted, paths.gif)
        return f"GIF ({frame_count} frames, {gif_wanted[0]}x{gif_wanted[1]})"

    with ThreadPoolExecutor(max_workers=3) as pool:
        checks = {"archive": check_archive, "mp4": check_mp4, "gif": check_gif}
        futures = {name: pool.submit(check) for name, check in checks.items()}
        return {name: future.result() for name, future in futures.items()}


def _record_success(
    paths: ProjectPaths,
    run_id: str,
    archive: Path,
    digests: dict[str, str],
    memory: AssemblyMemory,
) -> None:
    """Record the verified outputs, every checksum and the memory used, before any frame
    is deleted."""
    mp4_facts = _output_file(paths, paths.mp4)
    gif_facts = _output_file(paths, paths.gif)
    archive_facts = _output_file(paths, archive)

    def assembled(record: RunRecord) -> None:
        parameters = record.parameters
        mp4_facts.frames, (mp4_facts.width, mp4_facts.height) = (
            parameters.frame_count, mp4_size(parameters.size))  # fmt: skip
        gif_facts.frames, (gif_facts.width, gif_facts.height) = (
            parameters.frame_count, gif_size(parameters.size, parameters.gif_width))  # fmt: skip
        archive_facts.frames = parameters.frame_count
        record.outputs = {"mp4": mp4_facts, "gif": gif_facts, "archive": archive_facts}
        record.frames_sha256 = {
            name.rsplit("/", 1)[-1]: sha for name, sha in digests.items()
            if name.startswith("images/")
        }  # fmt: skip
        record.missing_frames = []
        record.error = None
        record.assembly_memory = memory
        timings, _ = load_run_timings(paths.timing, record.array_job_ids(), record.run_id)
        if timings and record.mode_is_slurm:  # started: when the first task's process did
            first = min(float(str(timing["process_start"])) for timing in timings)
            record.started = (
                datetime.fromtimestamp(first).astimezone().isoformat(timespec="milliseconds")
            )
        record.ended = timestamp()
        record.move_to(
            RunState.ASSEMBLED,
            "assembled",
            f"{paths.relative(paths.gif)}, {paths.relative(archive)}",
        )

    update_record(paths, assembled, run_id)


def _output_file(paths: ProjectPaths, path: Path) -> OutputFile:
    return OutputFile(paths.relative(path), sha256_of(path), path.stat().st_size)


def _remove_stale_temporaries(paths: ProjectPaths) -> list[Path]:
    """Remove what killed tasks and assemblies left: only our own temporary names."""
    return [
        *remove_stale_temporaries(paths.images, lambda name: frame_number(name) is not None),
        *remove_stale_temporaries(paths.gifs, lambda name: name in {MP4_NAME, GIF_NAME}),
        *remove_stale_temporaries(paths.archives, lambda name: name.startswith(ARCHIVE_PREFIX)),
    ]
