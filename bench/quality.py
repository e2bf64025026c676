"""GIF quality, ours against the original's, from the same frames.

    python -m bench.quality [--frames 360]

Renders the frames once with our renderer, then makes both GIFs from them:
ours (palette from the frames, aspect kept) and the original's (MP4 at 25 fps
in and 30 out, then a GIF of the MP4 scaled to 400x240). Each is compared with
the frames scaled the same way as that GIF, by ffmpeg's psnr filter, over every
frame of the GIF. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from volcano_gif.assembly.outputs import encode_gif, ffmpeg_executable
from volcano_gif.commands import run, run_capturing
from volcano_gif.layout import DEFAULT_GIF_WIDTH, FRAME_PATTERN
from volcano_gif.local.runner import render_frames
from volcano_gif.paths import ProjectPaths

ORIGINAL_GIF_SIZE = (400, 240)


def psnr(ffmpeg: str, frames: list[str], gif: Path, scale: str) -> float:
    """Average PSNR (dB) of ``gif`` against the frames input scaled by ``scale``."""
    graph = f"[0:v]{scale},format=rgb24[ref];[1:v]format=rgb24[gif];[gif][ref]psnr"
    command = [ffmpeg, "-hide_banner", *frames, "-i", str(gif), "-filter_complex", graph]
    said = run_capturing([*command, "-f", "null", "-"])[1]  # the psnr filter's, on stderr
    match = re.search(r"average:([\d.]+|inf)", said)
    if match is None:
        raise RuntimeError(f"no PSNR in ffmpeg's output: {said[-2000:]}")
    return float(match.group(1))


def gif_size(ffmpeg: str, gif: Path) -> tuple[int, int]:
    probe = subprocess.run(
        [ffmpeg, "-hide_banner", "-i", str(gif)], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r"Video: gif.*?, (\d+)x(\d+)", probe)
    if match is None:
        raise RuntimeError(f"cannot read the size of {gif}")
    return int(match.group(1)), int(match.group(2))


def measure(frame_count: int, folder: Path) -> dict[str, object]:
    ffmpeg = ffmpeg_executable()
    paths = ProjectPaths(folder)
    shutil.copytree(Path(__file__).resolve().parent.parent / "data", paths.root / "data")
    failures = render_frames(paths, frame_count)
    if failures:
        raise RuntimeError(f"frames failed to render: {sorted(failures)}")
    ours_input = ["-framerate", "25", "-start_number", "1", "-i", str(paths.images / FRAME_PATTERN)]
    ours = folder / "ours.gif"
    encode_gif(ffmpeg, paths.images, frame_count, ours, DEFAULT_GIF_WIDTH)

    # The original's input names: image1.png, image2.png, ...
    original_images = folder / "original_images"
    original_images.mkdir()
    for number in range(1, frame_count + 1):
        (original_images / f"image{number}.png").symlink_to(paths.images / (FRAME_PATTERN % number))
    mp4, original = folder / "volcano.mp4", folder / "original.gif"
    run(
        [
            ffmpeg,
            "-y",
            "-loglevel",
            "error",
            "-framerate",
            "25",
            "-i",
            str(original_images / "image%d.png"),
            "-r",
            "30",
            "-b",
            "5000k",
            str(mp4),
        ]
    )
    run(
        [
            ffmpeg,
            "-y",
            "-loglevel",
            "error",
            "-i",
            str(mp4),
            "-loop",
            "0",
            "-vf",
            "scale=400:240",
            str(original),
        ]
    )
    # The original GIF has 30/25 as many frames (duplicates); compare it with the
    # frames at its rate and size, which is what it claims to show.
    original_input = ["-framerate", "25", "-i", str(original_images / "image%d.png")]
    width, height = ORIGINAL_GIF_SIZE
    return {
        "frames": frame_count,
        "ours": {
            "size": gif_size(ffmpeg, ours),
            "psnr_db": psnr(ffmpeg, ours_input, ours, f"scale={DEFAULT_GIF_WIDTH}:-1:flags=area"),
            "bytes": ours.stat().st_size,
        },
        "original": {
            "size": gif_size(ffmpeg, original),
            "psnr_db": psnr(ffmpeg, original_input, original, f"fps=30,scale={width}:{height}"),
            "bytes": original.stat().st_size,
        },
        "frames_aspect": 640 / 480,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--frames", type=int, default=360, help="frames (default 360)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="volcano-quality-") as scratch:
        print(json.dumps(measure(args.frames, Path(scratch)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
