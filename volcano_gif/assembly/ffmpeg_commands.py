"""The ffmpeg command lines of the assembly: the MP4, the GIF's palette and the GIF.

Pure functions, with no process started, so that every command can be checked
exactly in tests (as :mod:`volcano_gif.submit.plan` is for sbatch); the
assembly's :mod:`volcano_gif.assembly.outputs` runs them.
"""

from __future__ import annotations

from pathlib import Path

from volcano_gif.layout import FIRST_FRAME, FPS, FRAME_PATTERN

#: x264 preset of the MP4. For these 360 frames, superfast took 2.9 CPU-s
#: against veryfast's 3.9 s, and made a 2.1 MB file at 47 dB PSNR
#: against 0.9 MB at 43 dB (both at x264's default quality, CRF 23).
MP4_PRESET = "superfast"

#: Frames, spread evenly over the turn, that the GIF's palette is made from.
#: 36 views 10 degrees apart see every colour of the surface: on the 360 default
#: frames the GIF scored 48.32 dB PSNR against the frames with a palette from
#: all 360, from every 2nd, every 10th and every 30th frame alike, and the
#: palette pass took 0.19 CPU-s from 36 frames against 1.0 s from 360.
PALETTE_FRAMES = 36


def quiet_ffmpeg(ffmpeg: str) -> list[str]:
    """``ffmpeg`` that reads no terminal, says only errors and overwrites its output."""
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def frames_input(images_dir: Path) -> list[str]:
    """The ffmpeg input options that read the frames from frame 1 on, at the run's rate."""
    return [
        *f"-framerate {FPS} -start_number {FIRST_FRAME} -i".split(),
        str(images_dir / FRAME_PATTERN),
    ]


def ffmpeg_input(images_dir: Path, frame_count: int) -> list[str]:
    """The ffmpeg input options that read exactly frames 1..frame_count."""
    return [*frames_input(images_dir), "-frames:v", str(frame_count)]


def mp4_size(size: tuple[int, int]) -> tuple[int, int]:
    """H.264 in yuv420p needs even sides: the MP4 pads the frames by one pixel if not."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def mp4_command(ffmpeg: str, images_dir: Path, frame_count: int, target: Path) -> list[str]:
    """H.264 in yuv420p (playable everywhere), one output frame per input frame."""
    return [
        *quiet_ffmpeg(ffmpeg),
        *ffmpeg_input(images_dir, frame_count),
        *f"-vf pad=ceil(iw/2)*2:ceil(ih/2)*2 -c:v libx264 -preset {MP4_PRESET}".split(),
        *f"-pix_fmt yuv420p -r {FPS} -movflags +faststart -f mp4".split(),
        str(target),
    ]


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
        *quiet_ffmpeg(ffmpeg),
        *["-f", "concat", "-safe", "0", "-i"],
        str(frame_list),
        *f"-vf scale={width}:-1:flags=area,palettegen -update 1 -frames:v 1".split(),
        str(target),
    ]


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
        *quiet_ffmpeg(ffmpeg),
        *frames_input(images_dir),
        *["-i", str(palette), "-frames:v", str(frame_count), "-filter_complex"],
        f"[0:v]scale={width}:-1:flags=area[frames];"
        "[frames][1:v]paletteuse=dither=none:diff_mode=rectangle",
        *["-loop", "0", "-f", "gif"],
        str(target),
    ]
